"""Plans applied on a real Redis: all or nothing, replays, and records that change meanwhile."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis_servers import SERVERS, unique_prefix

from accounts import (
    Account,
    Book,
    InvalidState,
    LedgerTransaction,
    Leg,
    ReceivableStatus,
    RedisAccountStore,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
)
from accounts.redis.apply import SEPARATOR, AtomicWrite, PlanConflict, answer
from accounts.redis.verify import verify_store
from rating import Product

pytestmark = pytest.mark.e2e

AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
NUMBER = "+15125550100"
DEPOSIT = 50_000


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[RedisAccountStore, RedisAccountStore]]:
    """Two stores on one Redis and one prefix, as two controller nodes see it."""
    url, prefix = SERVERS.single().url, unique_prefix()
    a, b = RedisAccountStore(url, prefix=prefix), RedisAccountStore(url, prefix=prefix)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _funded(store: RedisAccountStore, account_id: str = "ac1") -> None:
    await store.create_account(
        Account(id=account_id, product=Product.ADVANCE_CONNECT, created_at=AT, numbers=(NUMBER,))
    )
    await store.post(
        LedgerTransaction(
            kind="deposit",
            at=AT,
            account_id=account_id,
            idempotency_key=f"dep-{account_id}",
            legs=(
                Leg(Book.ACCOUNT, account_id, DEPOSIT),
                Leg(Book.FUNDS_IN, "card", -DEPOSIT),
            ),
        )
    )


def _meanwhile(
    node: RedisAccountStore, reader: str, other_node_acts: Coroutine[Any, Any, object]
) -> list[str]:
    """Make ``node``'s first read by ``reader`` let another node act before the write.

    Answers the statuses ``node`` read, in order.
    """
    read = getattr(node, reader)
    reads: list[str] = []

    async def read_then_the_other_node_acts(record_id: str) -> Any:
        found = await read(record_id)
        reads.append(found.status)
        if len(reads) == 1:
            await other_node_acts
        return found

    setattr(node, reader, read_then_the_other_node_acts)
    return reads


async def test_a_refused_check_writes_nothing_and_a_passing_one_writes_everything(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    store, _ = nodes
    wallet, stream = store._t("x:test", "wallet"), store._t("x:test", "stream")
    await store.client.hset(wallet, mapping={"balance": 100, "held": 0})

    def move(units: int, token: str) -> AtomicWrite:
        w = AtomicWrite()
        w.read(wallet, "balance")
        w.replay(wallet, "token", token)
        w.at_least(wallet, (("balance", 1), ("held", -1)), units, "insufficient", "too little")
        w.incr(wallet, "balance", -units).incr(wallet, "held", units)
        w.hset(wallet, {"token": token})
        return w.append(stream, f"moved {units}")

    refused = move(101, "t1")
    result = list(await store._scripts["apply"](refused.keys, refused.args))
    assert result == ["insufficient", "too little"]
    assert await store.client.hgetall(wallet) == {"balance": "100", "held": "0"}
    assert await store.client.exists(stream) == 0

    applied = move(60, "t2")
    assert answer(await store._scripts["apply"](applied.keys, applied.args), "move") == [
        "ok", "", "100",
    ]  # fmt: skip
    after = {"balance": "40", "held": "60", "token": "t2"}
    assert await store.client.hgetall(wallet) == after
    assert await store.client.xlen(stream) == 1
    # The same write again (a reply lost, the command re-sent) changes nothing.
    again = list(await store._scripts["apply"](applied.keys, applied.args))
    assert again == ["ok", "replayed", "40"]
    assert await store.client.hgetall(wallet) == after
    assert await store.client.xlen(stream) == 1


async def test_a_check_said_after_a_write_still_runs_before_it(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    store, _ = nodes
    record = store._t("x:test", "record")
    await store.client.hset(record, mapping={"status": "open", "count": 1})
    w = AtomicWrite().incr(record, "count", 5).equals(record, "status", "closed")
    assert w.ops[0] == "E"
    with pytest.raises(PlanConflict):
        answer(await store._scripts["apply"](w.keys, w.args), "record")
    assert await store.client.hgetall(record) == {"status": "open", "count": "1"}


async def test_text_holding_the_separator_or_any_character_is_written_as_it_was_given(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    store, _ = nodes
    record = store._t("x:test", "odd")
    odd = f"a{SEPARATOR}b\x1e[\"c\"]\u00e9\U0001f4de"
    for value in (odd, "plain", ""):
        w = AtomicWrite().hset(record, ["v", value, "w", "x"]).equals(record, "w", "")
        assert answer(await store._scripts["apply"](w.keys, w.args), "odd") == ["ok", ""]
        assert await store.client.hgetall(record) == {"v": value, "w": "x"}
        await store.client.delete(record)
    # The separator in a message too: the refusal carries it back whole.
    w = AtomicWrite().exists(record, "notfound", odd)
    assert list(await store._scripts["apply"](w.keys, w.args)) == ["notfound", odd]


async def test_a_refund_decided_by_another_node_meanwhile_is_planned_again(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    a, b = nodes
    await _funded(a)
    refund = Refund("rf1", "ac1", 20_000, RefundMethod.CARD, RefundStatus.PENDING_REVIEW, AT)
    await a.create_refund(refund, at=AT)
    reads = _meanwhile(a, "_refund", b.decide_refund(
        "rf1", RefundStatus.REJECTED, at=AT + timedelta(minutes=1)
    ))  # fmt: skip
    with pytest.raises(InvalidState, match="is rejected, cannot be approved"):
        await a.decide_refund("rf1", RefundStatus.APPROVED, at=AT + timedelta(minutes=2))
    assert reads == [RefundStatus.PENDING_REVIEW, RefundStatus.REJECTED]
    assert (await b.get_refund("rf1")).status is RefundStatus.REJECTED
    # The money went back once, by the rejection alone.
    assert (await b.get_account("ac1")).balance_units == DEPOSIT
    kinds = [tx.kind for tx in await b.transactions(account_id="ac1")]
    assert kinds == ["deposit", "refund", "refund_rejected"]
    report = await verify_store(b)
    assert report.ok, report.problems


async def test_a_receivable_failed_meanwhile_is_confirmed_on_the_second_plan(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    a, b = nodes
    single = Reservation(
        id="r-single", call_id="c-single", product=Product.SINGLE_CALL, facility_id="tx",
        number_e164=NUMBER, created_at=AT, max_seconds=300,
    )  # fmt: skip
    await a.reserve(single, floor_units=0)
    await a.settle(
        "r-single",
        talked_seconds=60,
        charge_legs=(Leg(Book.REVENUE, str(Product.SINGLE_CALL), 900),),
        at=AT + timedelta(minutes=1),
        receivable_id="rcv1",
    )
    reads = _meanwhile(a, "_receivable", b.settle_receivable(
        "rcv1", ReceivableStatus.FAILED, method="card", at=AT + timedelta(minutes=2)
    ))  # fmt: skip
    settled = await a.settle_receivable(
        "rcv1", ReceivableStatus.CONFIRMED, method="card", at=AT + timedelta(minutes=3)
    )
    # The first plan (pending -> confirmed) met a failed receivable; the second
    # (failed -> confirmed, which the table allows) applied.
    assert reads[:2] == [ReceivableStatus.PENDING, ReceivableStatus.FAILED]
    assert settled.status is ReceivableStatus.CONFIRMED
    assert await b.client.scard(b._t(f"n:{NUMBER}", "failed")) == 0
    assert await b.book_balance(Book.RECEIVABLE, "rcv1") == 0
    kinds = [tx.kind for tx in await b.transactions()]
    assert kinds.count("receivable_paid") == 1


async def test_a_reservation_held_by_the_earlier_scripts_is_settled(
    nodes: tuple[RedisAccountStore, RedisAccountStore],
) -> None:
    """The key layout is the one the per-step scripts wrote: their open holds still settle."""
    a, b = nodes
    await _funded(a)
    tag, amount = "a:ac1", 3_000
    r = Reservation(
        id="r-old", call_id="c-old", product=Product.ADVANCE_CONNECT, facility_id="tx",
        number_e164=NUMBER, created_at=AT, max_seconds=300, amount_units=amount,
        account_id="ac1", pin="100001",
    )  # fmt: skip
    entry = {
        "id": 7, "kind": "reserve", "at": "2026-03-03T20:00:00.000000+00:00",
        "account_id": "ac1", "idempotency_key": None, "call_id": "c-old", "seconds": None,
        "memo": "", "legs": [["account", "ac1", -amount], ["hold", "ac1", amount]],
    }  # fmt: skip
    # What reserve.lua and its id claims wrote for one hold.
    pipe = a.client.pipeline(transaction=True)
    pipe.hset(a._res(tag, r.id), mapping={
        "token": "old-token", "d": a._reservation_data(r), "amount": amount,
        "max_seconds": 300, "status": "open", "heartbeat_seconds": 0, "heartbeat_at": "",
    })  # fmt: skip
    pipe.sadd(a._t(tag, "open"), r.id)
    pipe.set(a._t(tag, "call", r.call_id), r.id)
    pipe.set(a._k("loc", "res", r.id), tag)
    pipe.set(a._k("loc", "call", r.call_id), r.id)
    pipe.hincrby(a._acct("ac1"), "balance", -amount)
    pipe.hincrby(a._acct("ac1"), "held", amount)
    pipe.xadd(a._ledger(tag), {"t": json.dumps(entry)})
    await pipe.execute()
    assert [o.id for o in await b.open_reservations()] == ["r-old"]
    assert (await verify_store(b)).ok

    settled = await b.settle(
        "r-old",
        talked_seconds=120,
        charge_legs=(Leg(Book.REVENUE, str(Product.ADVANCE_CONNECT), 1_200),),
        at=AT + timedelta(minutes=2),
    )
    assert settled.charged_units == 1_200
    account = await b.get_account("ac1")
    assert (account.balance_units, account.held_units) == (DEPOSIT - 1_200, 0)
    assert account.last_call_facility == "tx"
    assert await b.open_reservations() == []
    report = await verify_store(b)
    assert report.ok, report.problems
