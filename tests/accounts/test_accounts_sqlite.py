"""What only the SQLite store promises: the database guards the ledger, and the file lasts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from account_helpers import T0, TX_AC, card_deposit

from accounts import (
    Account,
    Book,
    InsufficientFunds,
    InvalidState,
    LedgerTransaction,
    Leg,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
    SqliteAccountStore,
    StoreUnavailable,
    postings,
)
from rating import Product


async def seeded(path: Path) -> SqliteAccountStore:
    store = SqliteAccountStore(path)
    await store.open()
    await store.create_account(
        Account(id="a1", product=Product.ADVANCE_CONNECT, created_at=T0, numbers=(TX_AC,))
    )
    await store.post(card_deposit("a1", 10_000, "k1"))
    return store


async def test_ledger_rows_cannot_be_updated_or_deleted(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    await store.close()
    db = sqlite3.connect(tmp_path / "a.sqlite3")
    for sql in (
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transactions SET kind = 'x'",
        "DELETE FROM ledger_transactions",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
    assert db.execute("SELECT SUM(amount) FROM ledger_entries").fetchone() == (0,)
    db.close()


async def test_data_survives_reopen_and_runs_in_wal(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    await store.close()
    again = SqliteAccountStore(tmp_path / "a.sqlite3", synchronous="FULL")
    await again.open()
    assert again.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert (await again.get_account("a1")).balance_units == 10_000
    assert await again.book_balance(Book.ACCOUNT, "a1") == 10_000
    await again.close()


async def test_closed_or_unopenable_store_is_unavailable(tmp_path: Path) -> None:
    store = SqliteAccountStore(tmp_path / "a.sqlite3")
    with pytest.raises(StoreUnavailable):
        await store.get_account("a1")
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable):
        await SqliteAccountStore(tmp_path / "dir.sqlite3").open()
    with pytest.raises(ValueError, match="checkpoint_interval"):
        SqliteAccountStore(tmp_path / "b.sqlite3", checkpoint_interval=0)
    with pytest.raises(ValueError, match="synchronous"):
        SqliteAccountStore(tmp_path / "b.sqlite3", synchronous="OFF")  # type: ignore[arg-type]


async def test_background_checkpoints_copy_the_log_into_the_database(tmp_path: Path) -> None:
    store = SqliteAccountStore(tmp_path / "a.sqlite3", checkpoint_interval=0.01)
    await store.open()
    await store.create_account(
        Account(id="a1", product=Product.ADVANCE_CONNECT, created_at=T0, numbers=(TX_AC,))
    )
    # Wait (bounded) for the background thread's checkpoint; NOOP only reports.
    copied_all = False
    for _ in range(500):
        _busy, log, copied = store.db.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
        if log > 0 and log == copied:
            copied_all = True
            break
        await asyncio.sleep(0.01)
    assert copied_all
    await store.close()
    # A clean close leaves no log behind.
    wal = tmp_path / "a.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0


async def test_a_full_or_read_only_disk_answers_unavailable_and_changes_nothing(
    tmp_path: Path,
) -> None:
    from account_helpers import make_facilities

    from accounts import AccountService, CallRequest, Person, Refusal, RefusalReason

    store = await seeded(tmp_path / "a.sqlite3")
    await store.add_person(Person(facility_id="tx", pin="1"))
    service = AccountService(store, make_facilities())
    # The file may not grow any more: writes fail as on a full disk once pages run out.
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    await store.run_on_writer(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))
    deposited = 0
    failed = False
    for n in range(200):
        try:
            await service.deposit("a1", "1.00", "card", f"k{n}-" + "x" * 1500, T0)
        except StoreUnavailable:
            failed = True
            break
        deposited += 10_000
    assert failed
    account = await store.get_account("a1")
    assert account.balance_units == 10_000 + deposited
    assert account.balance_units == await store.book_balance(Book.ACCOUNT, "a1")
    # A file system remounted read-only: the call is refused with 503, nothing is held.
    await store.run_on_writer(lambda db: db.execute("PRAGMA query_only = ON"))
    refusal = await service.authorize(CallRequest("c1", "tx", "1", TX_AC, T0))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.STORE_UNAVAILABLE
    await store.run_on_writer(lambda db: db.execute("PRAGMA query_only = OFF"))
    assert await store.open_reservations() == []
    assert (await store.get_account("a1")).held_units == 0
    await store.close()


async def test_the_log_starts_over_under_steady_writes_and_stays_bounded(
    tmp_path: Path,
) -> None:
    # A short restart length, and a checkpointer that runs often: the writer never
    # pauses on its own, so without the restart the log would only ever grow.
    store = SqliteAccountStore(
        tmp_path / "a.sqlite3", checkpoint_interval=0.005, restart_frames=64
    )
    await store.open()
    await store.create_account(
        Account(id="a1", product=Product.ADVANCE_CONNECT, created_at=T0, numbers=(TX_AC,))
    )
    wal = tmp_path / "a.sqlite3-wal"
    # Bounded: stop once the log has started over (and been cut back) a few times.
    restarts = 0
    size = posts = 0
    while restarts < 3 and posts < 20_000:
        await store.post(card_deposit("a1", 100, f"k{posts}-" + "x" * 600))
        posts += 1
        previous, size = size, wal.stat().st_size
        restarts += size < previous
    # An ever-growing log is never cut back while writes go on.
    assert restarts == 3, (posts, size)
    account = await store.get_account("a1")
    assert account.balance_units == posts * 100
    assert await store.book_balance(Book.ACCOUNT, "a1") == posts * 100
    await store.close()
    with pytest.raises(ValueError, match="restart_frames"):
        SqliteAccountStore(tmp_path / "b.sqlite3", restart_frames=0)


def _deposit(n: int, amount: int = 100, key: str | None = None) -> LedgerTransaction:
    return card_deposit("a1", amount, key or f"g{n}")


async def test_concurrent_writes_share_one_commit_and_each_stands_alone(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    commits = store.writer.commits
    # Twenty deposits in one loop turn, one of them reusing a key: it alone fails.
    # The first commits at once, the other nineteen together.
    results = await asyncio.gather(
        *(store.post(_deposit(n, key="k1" if n == 7 else None)) for n in range(20)),
        return_exceptions=True,
    )
    assert store.writer.commits == commits + 2
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and "k1" in str(failed[0])
    assert isinstance(results[7], Exception)
    account = await store.get_account("a1")
    assert account.balance_units == 10_000 + 19 * 100
    assert account.balance_units == await store.book_balance(Book.ACCOUNT, "a1")
    assert sum((await store.book_totals()).values()) == 0
    await store.close()


async def test_a_failed_group_commit_fails_every_write_of_the_group(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    # The file may not grow: a group of large deposits cannot all fit, and the
    # ones whose statements ran are undone with the rest.
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    await store.run_on_writer(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))
    results = await asyncio.gather(
        *(store.post(_deposit(n, key=f"big{n}-" + "x" * 3000)) for n in range(40)),
        return_exceptions=True,
    )
    kept = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, StoreUnavailable) for r in results if isinstance(r, Exception))
    assert len(kept) < 40
    account = await store.get_account("a1")
    assert account.balance_units == 10_000 + 100 * len(kept)
    assert account.balance_units == await store.book_balance(Book.ACCOUNT, "a1")
    assert sum((await store.book_totals()).values()) == 0
    await store.close()


async def test_a_write_cancelled_before_its_turn_changes_nothing(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    first = asyncio.ensure_future(store.post(_deposit(1)))
    second = asyncio.ensure_future(store.post(_deposit(2)))
    await asyncio.sleep(0)  # the first is written at once, the second waits for the group
    assert first.done()
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await first
    await store.post(_deposit(3))
    assert (await store.get_account("a1")).balance_units == 10_000 + 200
    keys = [t.idempotency_key for t in await store.transactions(account_id="a1")]
    assert keys == ["k1", "g1", "g3"]
    await store.close()


async def test_an_urgent_write_commits_at_once_even_while_others_wait(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    commits = store.writer.commits
    first = asyncio.ensure_future(store.post(_deposit(1)))
    second = asyncio.ensure_future(store.post(_deposit(2)))
    urgent = asyncio.ensure_future(
        store.writer.write(
            lambda db: db.execute("SELECT balance FROM accounts WHERE id = 'a1'").fetchone()[0],
            urgent=True,
        )
    )
    await asyncio.sleep(0)
    # The first deposit went at once, the second waited for its group; the urgent
    # write did not wait: it took the second with it, in one commit.
    assert first.done() and urgent.done()
    assert urgent.result() == 10_000 + 200
    await second
    assert store.writer.commits == commits + 2
    await store.close()


async def test_a_group_uses_savepoints_only_when_one_of_its_writes_fails(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    await asyncio.gather(*(store.post(_deposit(n)) for n in range(10)))
    assert not [s for s in statements if "SAVEPOINT" in s]

    def half_then_fail(db: sqlite3.Connection) -> None:
        # Changes the balance, then fails: the change must not survive.
        db.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 'a1'")
        raise ValueError("refused after writing")

    writes = [store.post(_deposit(n)) for n in range(10, 15)]
    results = await asyncio.gather(
        *writes[:2], store.writer.write(half_then_fail), *writes[2:], return_exceptions=True
    )
    store.db.set_trace_callback(None)
    assert [type(r).__name__ for r in results].count("ValueError") == 1
    assert isinstance(results[2], ValueError)
    assert [s for s in statements if "SAVEPOINT" in s]
    account = await store.get_account("a1")
    assert account.balance_units == 10_000 + 15 * 100  # and not the +1
    assert account.balance_units == await store.book_balance(Book.ACCOUNT, "a1")
    await store.close()


#: Statements that only frame a transaction (the group writer's), not counted.
_FRAMING = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


async def _statements_of(store: SqliteAccountStore, step: Awaitable[object]) -> list[str]:
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    try:
        await step
    finally:
        store.db.set_trace_callback(None)
    return [s for s in seen if not s.lstrip().upper().startswith(_FRAMING)]


def _reservation(n: int, **fields: Any) -> Reservation:
    return Reservation(
        id=f"r{n}",
        call_id=f"c{n}",
        product=fields.pop("product", Product.ADVANCE_CONNECT),
        facility_id="tx",
        number_e164=TX_AC,
        created_at=T0,
        max_seconds=600,
        **fields,
    )


def _refund(amount: int) -> Refund:
    return Refund(
        id="f1",
        account_id="a1",
        amount_units=amount,
        method=RefundMethod.CHECK,
        status=RefundStatus.PENDING_REVIEW,
        requested_at=T0,
    )


async def test_reserve_and_settle_issue_four_statements_each(tmp_path: Path) -> None:
    """The hot path: the hold is one guarded UPDATE, a row and a ledger entry of two legs;
    the settlement one claim of the reservation, one UPDATE of the account and the entry."""
    store = await seeded(tmp_path / "a.sqlite3")
    reserve = await _statements_of(
        store, store.reserve(_reservation(1, amount_units=5_000, account_id="a1"), floor_units=0)
    )
    assert [s.split()[0] for s in reserve] == ["UPDATE", "INSERT", "INSERT", "INSERT"]
    settle = await _statements_of(
        store,
        store.settle(
            "r1",
            talked_seconds=60,
            charge_legs=[Leg(Book.REVENUE, "advance_connect", 600)],
            at=T0,
        ),
    )
    assert [s.split()[0] for s in settle] == ["UPDATE", "UPDATE", "INSERT", "INSERT"]
    account = await store.get_account("a1")
    assert (account.balance_units, account.held_units) == (10_000 - 600, 0)
    assert account.last_call_at == T0 and account.last_call_facility == "tx"
    await store.close()


async def test_a_refund_is_created_in_one_guarded_update_of_the_balance(tmp_path: Path) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    refund = _refund(10_001)
    with pytest.raises(InsufficientFunds, match="below its floor of 0"):
        await store.create_refund(refund, at=T0)
    assert await store.list_refunds() == []
    ok = replace(refund, amount_units=10_000)
    # The refund row, the balance (checked in its WHERE), the ledger entry and its legs;
    # then the refund read back.
    steps = await _statements_of(store, store.create_refund(ok, at=T0))
    assert [s.split()[0] for s in steps] == ["INSERT", "UPDATE", "INSERT", "INSERT", "SELECT"]
    assert (await store.get_account("a1")).balance_units == 0
    await store.close()


async def test_a_plan_whose_record_moved_on_is_refused_whole(tmp_path: Path) -> None:
    """The expected state is checked when the plan is applied, not only when it is made."""
    store = await seeded(tmp_path / "a.sqlite3")
    refund = _refund(1_000)
    await store.create_refund(refund, at=T0)
    stale = postings.plan_refund_decision(refund, RefundStatus.REJECTED, at=T0)
    await store.decide_refund("f1", RefundStatus.APPROVED, at=T0)

    def apply(db: sqlite3.Connection) -> None:
        store._apply(db, stale, "2026-03-02T15:00:00.000000+00:00")

    with pytest.raises(InvalidState, match="no longer pending_review"):
        await store.writer.write(apply)
    # Nothing of the stale plan stands: no money back to the account, still approved.
    assert (await store.get_account("a1")).balance_units == 9_000
    assert (await store.get_refund("f1")).status is RefundStatus.APPROVED
    assert [t.kind for t in await store.transactions(account_id="a1")] == ["deposit", "refund"]
    await store.close()


async def test_a_settle_plan_applies_once_and_then_finds_the_reservation_settled(
    tmp_path: Path,
) -> None:
    store = await seeded(tmp_path / "a.sqlite3")
    held = await store.reserve(_reservation(1, amount_units=5_000, account_id="a1"), floor_units=0)
    charge = postings.CallCharge.checked(60, [Leg(Book.REVENUE, "advance_connect", 600)])
    plan = postings.plan_settle(held, charge, at=T0)
    when = "2026-03-02T15:00:00.000000+00:00"

    def apply(db: sqlite3.Connection) -> None:
        store._apply(db, plan, when)

    await store.writer.write(apply)
    assert plan.reservation is not None
    assert await store.get_reservation("r1") == plan.reservation.record
    with pytest.raises(InvalidState, match="no longer open with 5000 units held"):
        await store.writer.write(apply)
    account = await store.get_account("a1")
    assert (account.balance_units, account.held_units) == (10_000 - 600, 0)
    assert [t.kind for t in await store.transactions(account_id="a1")] == [
        "deposit",
        "reserve",
        "call",
    ]
    await store.close()
