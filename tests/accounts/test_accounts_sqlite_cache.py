"""The SQLite store's screening caches follow every change, by this store or anyone else.

Screening facts and the ids of the accounts that could pay are served from
memory; these tests change each of them through this store, through a second
store on the same file (another connection) and through a separate process,
and check that the very next authorization sees the change. Balances are never
cached: money moved elsewhere is seen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from account_helpers import NY_NONE, T0, TX_AC, card_deposit, make_facilities

from accounts import (
    AccountService,
    AccountsPolicy,
    Authorization,
    Book,
    CallRequest,
    InvalidState,
    LedgerTransaction,
    Leg,
    Person,
    ReceivableStatus,
    Refusal,
    RefusalReason,
    Restriction,
    SqliteAccountStore,
    StoreUnavailable,
)
from accounts.sqlite_store import SCHEMA_VERSION
from rating import Product

OTHER = "+15125550142"  # another Texas number


def call(n: int, number: str = TX_AC, pin: str = "100001") -> CallRequest:
    return CallRequest(call_id=f"call-{n}", facility_id="tx", pin=pin, dialled=number, at=T0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "accounts.sqlite3"


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SqliteAccountStore]:
    s = SqliteAccountStore(path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteAccountStore]:
    async with opened(path) as s:
        yield s


@pytest.fixture
async def other(path: Path, store: SqliteAccountStore) -> AsyncIterator[SqliteAccountStore]:
    """A second store on the same file: its commits come from another connection."""
    async with opened(path) as s:
        yield s


def service_on(store: SqliteAccountStore) -> AccountService:
    return AccountService(store, make_facilities(), AccountsPolicy())


@pytest.fixture
async def service(store: SqliteAccountStore) -> AccountService:
    svc = service_on(store)
    await store.add_person(Person(facility_id="tx", pin="100001"))
    account = await svc.open_advance_connect([TX_AC], T0, account_id="ac1")
    await svc.deposit(account.id, "25.00", "card", "dep-1", T0)
    return svc


async def outcome(service: AccountService, n: int, number: str = TX_AC) -> object:
    """The authorization's product, or its refusal reason; a granted hold is released.

    Where no account pays, facility ``tx`` offers a Single Call.
    """
    result = await service.authorize(call(n, number))
    if isinstance(result, Refusal):
        return result.reason
    assert isinstance(result, Authorization)
    await service.release(result.reservation_id, T0)
    return result.product


def run_elsewhere(path: Path, *statements: str) -> None:
    """Commit ``statements`` from a separate process (as ``ics accounts`` would)."""
    script = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA busy_timeout=5000')\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "for sql in sys.argv[2:]:\n"
        "    db.execute(sql)\n"
        "db.execute('COMMIT')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path), *statements], check=True)


async def test_repeated_screening_reads_no_screening_tables(
    service: AccountService, store: SqliteAccountStore
) -> None:
    assert await outcome(service, 1) is Product.ADVANCE_CONNECT
    read: list[str] = []
    store.db.set_trace_callback(read.append)
    try:
        assert await outcome(service, 2) is Product.ADVANCE_CONNECT
    finally:
        store.db.set_trace_callback(None)
    selects = " ".join(sql for sql in read if sql.lstrip().upper().startswith("SELECT"))
    for table in ("people", "facility_blocks", "self_blocks", "account_numbers", "receivables"):
        assert table not in selects, (table, selects)
    # ... but the account's money is read afresh, with the version that guards the cache.
    assert "accounts" in selects and "data_version" in selects


async def test_own_writes_change_the_next_screening(
    service: AccountService, store: SqliteAccountStore
) -> None:
    assert await outcome(service, 1) is Product.ADVANCE_CONNECT
    await store.set_facility_block("tx", TX_AC, prefix=False, blocked=True)
    assert await outcome(service, 2) is RefusalReason.BLOCKED
    await store.set_facility_block("tx", TX_AC, prefix=False, blocked=False)
    await store.set_self_block(TX_AC, None, True)
    assert await outcome(service, 3) is RefusalReason.SELF_BLOCKED
    await store.set_self_block(TX_AC, None, False)
    await store.add_restriction("tx", "100001", Restriction(kind="suspended"))
    assert await outcome(service, 4) is RefusalReason.PERSON_RESTRICTED
    await store.set_restrictions("tx", "100001", ())
    await store.mark_released("tx", "100001", T0 - timedelta(days=1))
    assert await outcome(service, 5) is RefusalReason.PERSON_RELEASED


async def test_own_writes_change_who_pays(
    service: AccountService, store: SqliteAccountStore
) -> None:
    assert await outcome(service, 1, OTHER) is Product.SINGLE_CALL
    await store.attach_number("ac1", OTHER)
    assert await outcome(service, 2, OTHER) is Product.ADVANCE_CONNECT
    await store.detach_number("ac1", OTHER)
    assert await outcome(service, 3, OTHER) is Product.SINGLE_CALL
    await service.request_closure("ac1", T0)
    assert await outcome(service, 4) is Product.SINGLE_CALL


async def test_another_connection_changes_screening_and_payer(
    service: AccountService, other: SqliteAccountStore
) -> None:
    assert await outcome(service, 1) is Product.ADVANCE_CONNECT
    assert await outcome(service, 2, OTHER) is Product.SINGLE_CALL
    await other.set_facility_block("tx", "+1512", prefix=True, blocked=True)
    assert await outcome(service, 3) is RefusalReason.BLOCKED
    await other.set_facility_block("tx", "+1512", prefix=True, blocked=False)
    assert await outcome(service, 4) is Product.ADVANCE_CONNECT
    await other.attach_number("ac1", OTHER)
    assert await outcome(service, 5, OTHER) is Product.ADVANCE_CONNECT
    await other.set_self_block(OTHER, "tx", True)
    assert await outcome(service, 6, OTHER) is RefusalReason.SELF_BLOCKED


async def test_another_process_changes_screening_and_payer(
    service: AccountService, path: Path
) -> None:
    assert await outcome(service, 1) is Product.ADVANCE_CONNECT
    run_elsewhere(path, 'UPDATE people SET restrictions = \'[{"kind": "lockdown"}]\'')
    assert await outcome(service, 2) is RefusalReason.PERSON_RESTRICTED
    run_elsewhere(path, "UPDATE people SET restrictions = '[]'")
    assert await outcome(service, 3) is Product.ADVANCE_CONNECT
    run_elsewhere(path, f"DELETE FROM account_numbers WHERE number = '{TX_AC}'")
    assert await outcome(service, 4) is Product.SINGLE_CALL
    run_elsewhere(
        path,
        f"INSERT INTO account_numbers (number, product, account_id)"
        f" VALUES ('{TX_AC}', 'advance_connect', 'ac1')",
        f"INSERT INTO privileged_numbers (number) VALUES ('{TX_AC}')",
    )
    result = await service.authorize(call(5))
    assert isinstance(result, Authorization) and result.privileged


async def test_balances_are_never_cached(
    service: AccountService, store: SqliteAccountStore, other: SqliteAccountStore
) -> None:
    first = await service.authorize(call(1))
    assert isinstance(first, Authorization)
    await service.release(first.reservation_id, T0)
    # Spend the balance down from another connection: the next call must see it.
    account = await store.get_account("ac1")
    await other.post(
        LedgerTransaction(
            kind="refund",
            at=T0,
            account_id="ac1",
            legs=(
                Leg(Book.ACCOUNT, "ac1", -(account.balance_units - 600)),
                Leg(Book.FUNDS_OUT, "card", account.balance_units - 600),
            ),
        )
    )
    second = await service.authorize(call(2))
    assert isinstance(second, Authorization)
    assert second.reservation.amount_units <= 600 < first.reservation.amount_units
    # And a process that empties it outright leaves nothing to hold.
    run_elsewhere(path_of(store), "UPDATE accounts SET status = 'closed' WHERE id = 'ac1'")
    assert await outcome(service, 3) is Product.SINGLE_CALL


def path_of(store: SqliteAccountStore) -> Path:
    return Path(store.path)


async def test_single_call_bar_follows_receivable_changes(
    store: SqliteAccountStore, other: SqliteAccountStore
) -> None:
    await store.add_person(Person(facility_id="tx", pin="100001"))
    svc = service_on(store)
    facts = await store.payer_candidates("tx", "100001", NY_NONE, T0)
    assert not facts.single_call_barred
    result = await svc.authorize(call(1, NY_NONE))
    assert isinstance(result, Authorization) and result.single_call_offer
    settled = await svc.settle(result.reservation_id, 120, T0 + timedelta(minutes=2))
    assert settled.receivable_id is not None
    await other.settle_receivable(settled.receivable_id, ReceivableStatus.FAILED, method="", at=T0)
    assert (await store.payer_candidates("tx", "100001", NY_NONE, T0)).single_call_barred
    assert await outcome(svc, 2, NY_NONE) is RefusalReason.NO_PAYER


# -- schema version ---------------------------------------------------------------


async def test_new_file_carries_the_schema_version(store: SqliteAccountStore) -> None:
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_newer_schema_is_refused_with_a_clear_error(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    store = SqliteAccountStore(path)
    with pytest.raises(StoreUnavailable, match="newer than"):
        await store.open()
    # Nothing was changed: still the newer version, no tables created.
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    db.close()


async def test_an_older_file_is_upgraded_and_keeps_its_money(path: Path) -> None:
    async with opened(path) as store:
        svc = service_on(store)
        await store.add_person(Person(facility_id="tx", pin="100001"))
        account = await svc.open_advance_connect([TX_AC], T0, account_id="ac1")
        await svc.deposit(account.id, "25.00", "card", "dep-1", T0)
        auth = await svc.authorize(call(1))
        assert isinstance(auth, Authorization)
        await svc.settle(auth.reservation_id, 90, T0 + timedelta(minutes=2))
    # Make it a file of the layout before versioning (version 0, an index of every
    # leg by ref and book) with the version 1 index too.
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX ledger_entries_ref ON ledger_entries (ref, book)")
    db.execute(
        "CREATE INDEX ledger_entries_by_ref ON ledger_entries (ref)"
        " WHERE book NOT IN ('revenue', 'fees', 'tax')"
    )
    db.execute("PRAGMA user_version=0")
    db.commit()
    db.close()

    async with opened(path) as again:
        names = {r[0] for r in again.db.execute("SELECT name FROM sqlite_master")}
        assert not {"ledger_entries_by_ref", "ledger_entries_ref"} & names
        assert again.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        account = await again.get_account("ac1")
        assert account.balance_units == await again.book_balance(Book.ACCOUNT, "ac1")
        assert await again.book_balance(Book.HOLD, "ac1") == 0
        assert sum((await again.book_totals()).values()) == 0


async def test_account_balances_are_read_through_the_account_index(
    store: SqliteAccountStore,
) -> None:
    plans = []
    for book in (Book.ACCOUNT, Book.HOLD):
        store.db.set_trace_callback(plans.append)
        await store.book_balance(book, "ac1")
        store.db.set_trace_callback(None)
    assert len(plans) == 2
    for sql in plans:
        detail = " ".join(str(r[3]) for r in store.db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "ledger_transactions_account" in detail, detail
        assert "SCAN" not in detail, detail


async def test_payers_read_with_screening_serve_only_the_same_task_with_no_write_between(
    service: AccountService, store: SqliteAccountStore, other: SqliteAccountStore
) -> None:
    await outcome(service, 1)  # fills the caches
    before = (await store.get_account("ac1")).balance_units

    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    await store.screening_facts("tx", "100001", TX_AC)
    candidates = await store.payer_candidates("tx", "100001", TX_AC, T0)
    store.db.set_trace_callback(None)
    # One statement read the version and the account: screening's. (Lines starting
    # "--" are statements SQLite runs inside it.)
    ours = [sql for sql in statements if not sql.startswith("--")]
    assert len(ours) == 1 and "data_version" in ours[0] and "accounts" in ours[0]
    assert candidates.advance_connect is not None
    assert candidates.advance_connect.balance_units == before

    # A write in between (a deposit by this store): the payers are read again.
    await store.screening_facts("tx", "100001", TX_AC)
    await service.deposit("ac1", "1.00", "card", "dep-2", T0)
    candidates = await store.payer_candidates("tx", "100001", TX_AC, T0)
    assert candidates.advance_connect is not None
    assert candidates.advance_connect.balance_units == before + 10_000

    # Another task's payer read does not take this task's screening read.
    await store.screening_facts("tx", "100001", TX_AC)
    await other.post(card_deposit("ac1", 10_000, "dep-3"))
    elsewhere = await asyncio.create_task(store.payer_candidates("tx", "100001", TX_AC, T0))
    assert elsewhere.advance_connect is not None
    assert elsewhere.advance_connect.balance_units == before + 20_000


async def test_a_settled_reservation_reads_as_its_row_does(
    service: AccountService, store: SqliteAccountStore, other: SqliteAccountStore
) -> None:
    local_time = timezone(timedelta(hours=-6))
    first = await service.authorize(replace(call(1), at=T0.astimezone(local_time)))
    assert isinstance(first, Authorization)
    await store.heartbeat(first.reservation_id, 30, T0 + timedelta(seconds=40))
    settled = await service.settle(first.reservation_id, 95, T0 + timedelta(minutes=2))
    assert settled.reservation == await store.get_reservation(first.reservation_id)
    assert settled.reservation.heartbeat_seconds == 30

    # Settled meanwhile through another connection: refused here, nothing moves twice.
    second = await service.authorize(call(2))
    assert isinstance(second, Authorization)
    await other.settle(second.reservation_id, talked_seconds=0, charge_legs=(), at=T0)
    balance = (await store.get_account("ac1")).balance_units
    with pytest.raises(InvalidState):
        await store.settle(second.reservation_id, talked_seconds=60, charge_legs=(), at=T0)
    assert (await store.get_account("ac1")).balance_units == balance


async def test_maintenance_run_on_the_writer_empties_the_caches(
    service: AccountService, store: SqliteAccountStore
) -> None:
    assert await outcome(service, 1) is Product.ADVANCE_CONNECT
    await store.run_on_writer(
        lambda db: db.execute(
            f"INSERT INTO self_blocks (number, facility_id) VALUES ('{TX_AC}', '*')"
        )
    )
    assert await outcome(service, 2) is RefusalReason.SELF_BLOCKED
