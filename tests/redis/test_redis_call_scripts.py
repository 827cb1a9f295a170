"""A call's own scripts (hold.lua, settle.lua) write exactly what the generic apply.lua
writes for the same plan, and refuse what it refuses: each case is applied to two stores
from the same start, one through each, and everything under both prefixes is compared."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis_servers import SERVERS, unique_prefix

from accounts import (
    Account,
    AccountStatus,
    Book,
    LedgerTransaction,
    Leg,
    RedisAccountStore,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
    Subscription,
)
from accounts.errors import InvalidRequest
from accounts.postings import CallCharge, Plan, plan_refund_create, plan_reserve, plan_settle
from accounts.redis.call_scripts import hold_args, settle_args
from rating import Product

pytestmark = pytest.mark.e2e

AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
NUMBER = "+15125550100"
FACILITY = "tx-state-prison"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisAccountStore, RedisAccountStore]]:
    """Two stores on one Redis under two prefixes: one for each way of applying."""
    url = SERVERS.single().url
    stores = RedisAccountStore(url, prefix=unique_prefix()), RedisAccountStore(
        url, prefix=unique_prefix()
    )
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def _start(store: RedisAccountStore, *, balance: int, status: AccountStatus,
                 covered_seconds: int) -> None:  # fmt: skip
    await store.create_account(
        Account(id="ac1", product=Product.ADVANCE_CONNECT, created_at=AT, numbers=(NUMBER,))
    )
    if balance:
        await store.post(
            LedgerTransaction(
                kind="deposit",
                at=AT,
                account_id="ac1",
                idempotency_key="dep-1",
                legs=(Leg(Book.ACCOUNT, "ac1", balance), Leg(Book.FUNDS_IN, "card", -balance)),
            )
        )
    if status is not AccountStatus.OPEN:
        await store.update_account("ac1", status=status)
    if covered_seconds:
        await store.add_subscription(
            Subscription(
                id="sub1",
                number_e164=NUMBER,
                facility_id=FACILITY,
                starts_at=AT - timedelta(days=1),
                ends_at=AT + timedelta(days=29),
                price_units=100_000,
                covered_seconds=covered_seconds,
            ),
            method="card",
            idempotency_key="sub-1",
            at=AT - timedelta(days=1),
        )


async def _snapshot(store: RedisAccountStore) -> dict[str, Any]:
    """Every key under the store's prefix, as comparable values: tokens and ledger ids
    (random per write and per node) left out, expiry as "expires or not"."""
    client, out = store.client, {}
    async for key in client.scan_iter(match=f"{store.prefix}:*"):
        kind = await client.type(key)
        value: Any
        if kind == "hash":
            value = {
                f: v for f, v in (await client.hgetall(key)).items()
                if f not in ("token", "settle_token")
            }  # fmt: skip
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "string":
            value = await client.get(key)
        else:
            value = []
            for _, entry in await client.xrange(key):
                tx = json.loads(entry["t"])
                del tx["id"]
                value.append(tx)
        out[key.removeprefix(store.prefix)] = (kind, value, await client.ttl(key) > 0)
    return out


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The keys whose value changed, with the new value (None: the key is gone)."""
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: None for k in before if k not in after})
    return changed


def _call_script(
    store: RedisAccountStore, plan: Plan, tag: str
) -> tuple[str, list[str], list[str]]:
    """The call's own script for ``plan``, with its keys and arguments."""
    assert plan.reservation is not None
    if plan.reservation.expected is None:
        return "hold", *store._hold_command(plan, tag)
    return "settle", *store._settle_command(plan, tag)


async def _by_apply(store: RedisAccountStore, plan: Plan, tag: str) -> list[Any]:
    write = store._plan_write(plan, tag)
    return list(await store._scripts["apply"](write.keys, write.args))


def _reservation(n: int, *, amount: int = 0, account: bool = True,
                 subscription: bool = False) -> Reservation:  # fmt: skip
    return Reservation(
        id=f"r{n}",
        call_id=f"call-{n}",
        product=Product.SUBSCRIPTION if subscription else Product.ADVANCE_CONNECT,
        facility_id=FACILITY,
        number_e164=NUMBER,
        created_at=AT + timedelta(minutes=n),
        max_seconds=900,
        amount_units=amount,
        account_id="ac1" if account and not subscription else None,
        subscription_id="sub1" if subscription else None,
        pin="100001",
    )


def _charge(units: int, talked: int) -> CallCharge:
    legs = (Leg(Book.REVENUE, str(Product.ADVANCE_CONNECT), units),) if units else ()
    return CallCharge.checked(talked, legs)


@dataclass(frozen=True)
class Case:
    name: str
    balance: int = 50_000
    status: AccountStatus = AccountStatus.OPEN
    covered_seconds: int = 0
    amount: int = 10_500
    floor: int = 0
    subscription: bool = False
    account: bool = True
    #: (charge units, talked seconds) of the settlement; None: hold only.
    settle: tuple[int, int] | None = (6_300, 360)
    #: Units the settlement's plan expects held (None: what was held).
    expected_held: int | None = None


CASES = [
    Case("account hold and charge"),
    Case("account hold and release", settle=(0, 0)),
    Case("account hold, charged in full", settle=(10_500, 900)),
    Case("account hold at its floor exactly", balance=20_500, floor=10_000),
    Case("account hold below its floor", balance=20_499, floor=10_000, settle=None),
    Case("account with too little", balance=10_499, settle=None),
    Case("closed account", status=AccountStatus.CLOSED, settle=None),
    Case("free call on an account", amount=0, settle=(0, 60)),
    Case("subscription hold and use", covered_seconds=3_600, subscription=True, amount=0,
         settle=(0, 300)),
    Case("subscription that cannot cover", covered_seconds=899, subscription=True, amount=0,
         settle=None),
    Case("Single Call with a charge", account=False, amount=0, settle=(900, 60)),
    Case("Single Call not answered", account=False, amount=0, settle=(0, 0)),
    Case("settlement of a hold that moved", settle=(0, 0), expected_held=10_499),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_calls_scripts_write_what_the_generic_script_writes(
    pair: tuple[RedisAccountStore, RedisAccountStore], case: Case
) -> None:
    call_store, apply_store = pair
    for store in pair:
        await _start(store, balance=case.balance, status=case.status,
                     covered_seconds=case.covered_seconds)  # fmt: skip
    r = _reservation(1, amount=case.amount, account=case.account, subscription=case.subscription)
    tag = f"a:{r.account_id}" if r.account_id else f"n:{NUMBER}"
    steps = [plan_reserve(r, floor_units=case.floor)]
    if case.settle is not None:
        units, talked = case.settle
        held = r if case.expected_held is None else replace(r, amount_units=case.expected_held)
        receivable = "rcv-1" if units and not case.account else None
        steps.append(
            plan_settle(
                held, _charge(units, talked), at=AT + timedelta(minutes=20),
                receivable_id=receivable,
            )
        )
    # What the set-up wrote differs in its tokens: compare what the steps change.
    start = [await _snapshot(store) for store in pair]
    for plan in steps:
        name, keys, args = _call_script(call_store, plan, tag)
        by_call = list(await call_store._scripts[name](keys, args))
        by_apply = await _by_apply(apply_store, plan, tag)
        # The same answer: the status and what it carries, or the refusal's code and message.
        assert by_call[:2] == by_apply[:2], plan.step
        assert by_call[2:] == by_apply[2:] or by_call[0] != "ok", plan.step
        assert _changes(start[0], await _snapshot(call_store)) == _changes(
            start[1], await _snapshot(apply_store)
        ), plan.step
        if by_call[0] != "ok":
            break
        # The same write again (a reply lost, the command re-sent) is a replay: no change.
        before = await _snapshot(call_store)
        again = list(await call_store._scripts[name](keys, args))
        assert again[:2] == ["ok", "replayed"]
        assert await _snapshot(call_store) == before


def test_a_plan_of_another_step_is_not_a_calls_hold_or_settlement() -> None:
    refund = Refund(id="f1", account_id="ac1", amount_units=100, method=RefundMethod.CARD,
                    status=RefundStatus.APPROVED, requested_at=AT)  # fmt: skip
    refund_plan = plan_refund_create(refund, at=AT)
    with pytest.raises(InvalidRequest):
        hold_args(refund_plan, token="t", ledger_entry="", reservation_fields=())
    with pytest.raises(InvalidRequest):
        settle_args(refund_plan, token="t", ledger_entry="", keep_seconds=1, settled_at="")
    hold = plan_reserve(_reservation(2, amount=100), floor_units=0)
    with pytest.raises(InvalidRequest):
        settle_args(hold, token="t", ledger_entry="", keep_seconds=1, settled_at="")
