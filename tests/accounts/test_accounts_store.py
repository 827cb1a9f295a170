"""Contract of the store primitives: every store must pass these unchanged."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from account_helpers import T0, TX_AC, card_deposit

from accounts import (
    Account,
    AccountStore,
    Book,
    CallDetailRecord,
    CallOutcome,
    CdrFilter,
    DuplicateRequest,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    LedgerTransaction,
    Leg,
    NotFound,
    Person,
    ReceivableStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
    Restriction,
    Subscription,
    UnknownAccount,
)
from rating import Product


def ac(account_id: str = "a1", number: str = TX_AC) -> Account:
    return Account(
        id=account_id, product=Product.ADVANCE_CONNECT, created_at=T0, numbers=(number,)
    )


def deposit(account_id: str, units: int, key: str) -> LedgerTransaction:
    return card_deposit(account_id, units, key, memo="card")


def reservation(rid: str, account_id: str | None, amount: int, **kw: object) -> Reservation:
    fields: dict[str, object] = {
        "id": rid,
        "call_id": f"call-{rid}",
        "product": Product.ADVANCE_CONNECT,
        "facility_id": "tx",
        "number_e164": TX_AC,
        "created_at": T0,
        "max_seconds": 600,
        "amount_units": amount,
        "account_id": account_id,
    }
    fields.update(kw)
    return Reservation(**fields)  # type: ignore[arg-type]


async def test_account_round_trip_and_lookups(store: AccountStore) -> None:
    created = await store.create_account(ac())
    assert created.numbers == (TX_AC,)
    assert created.balance_units == 0
    assert (await store.get_account("a1")) == created
    assert [a.id for a in await store.list_accounts(number_e164=TX_AC)] == ["a1"]
    assert await store.list_accounts(product=Product.DIRECT_BILL) == []
    assert not await store.is_empty()


async def test_duplicate_account_and_number_conflicts(store: AccountStore) -> None:
    await store.create_account(ac())
    with pytest.raises(DuplicateRequest):
        await store.create_account(ac())
    # A number has at most one account per product ...
    with pytest.raises(InvalidState):
        await store.create_account(ac("a2"))
    assert [a.id for a in await store.list_accounts()] == ["a1"]
    # ... but may have one of each product.
    await store.create_account(
        Account(id="d1", product=Product.DIRECT_BILL, created_at=T0, numbers=(TX_AC,))
    )
    assert {a.id for a in await store.list_accounts(number_e164=TX_AC)} == {"a1", "d1"}


async def test_unknown_account(store: AccountStore) -> None:
    with pytest.raises(UnknownAccount):
        await store.get_account("nope")
    with pytest.raises(UnknownAccount):
        await store.post(deposit("nope", 100, "k"))
    assert await store.transactions() == []


async def test_post_updates_balance_and_refuses_reused_key(store: AccountStore) -> None:
    await store.create_account(ac())
    tx = await store.post(deposit("a1", 250_000, "dep-1"))
    assert tx.id is not None
    assert (await store.get_account("a1")).balance_units == 250_000
    with pytest.raises(DuplicateRequest):
        await store.post(deposit("a1", 250_000, "dep-1"))
    assert (await store.get_account("a1")).balance_units == 250_000
    assert len(await store.transactions(account_id="a1")) == 1
    assert await store.book_balance(Book.ACCOUNT, "a1") == 250_000


async def test_post_floor_refuses_and_changes_nothing(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 10_000, "d"))
    spend = LedgerTransaction(
        kind="adjust",
        at=T0,
        account_id="a1",
        legs=(Leg(Book.ACCOUNT, "a1", -20_000), Leg(Book.REVENUE, "x", 20_000)),
    )
    with pytest.raises(InsufficientFunds):
        await store.post(spend, floors={"a1": 0})
    assert (await store.get_account("a1")).balance_units == 10_000
    assert await store.book_totals() == {
        ("account", "a1"): 10_000,
        ("funds_in", "card"): -10_000,
    }


async def test_an_account_leg_outside_its_accounts_transaction_is_refused(
    store: AccountStore,
) -> None:
    await store.create_account(ac())
    await store.create_account(ac("a2", "+15125550111"))
    for account_id in (None, "a2"):
        for book in (Book.ACCOUNT, Book.HOLD):
            with pytest.raises(InvalidRequest, match="belongs in a transaction of that account"):
                await store.post(
                    LedgerTransaction(
                        kind="deposit",
                        at=T0,
                        account_id=account_id,
                        legs=(Leg(book, "a1", 100), Leg(Book.FUNDS_IN, "card", -100)),
                    )
                )
    assert (await store.get_account("a1")).balance_units == 0
    assert await store.book_totals() == {}


def test_unbalanced_transaction_is_refused() -> None:
    with pytest.raises(ValueError, match="does not balance"):
        LedgerTransaction(kind="x", at=T0, legs=(Leg(Book.ACCOUNT, "a", 1),))


async def test_reserve_settle_moves_money_exactly(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 50_000, "d"))
    r = await store.reserve(reservation("r1", "a1", 36_000), floor_units=0)
    account = await store.get_account("a1")
    assert (account.balance_units, account.held_units) == (14_000, 36_000)
    r = await store.heartbeat("r1", 120, T0 + timedelta(seconds=125))
    assert r.heartbeat_seconds == 120
    # Heartbeats never go backwards.
    r = await store.heartbeat("r1", 60, T0 + timedelta(seconds=126))
    assert r.heartbeat_seconds == 120
    settled = await store.settle(
        "r1",
        talked_seconds=180,
        charge_legs=[Leg(Book.REVENUE, "advance_connect", 1_800)],
        at=T0 + timedelta(minutes=4),
    )
    assert settled.charged_units == 1_800
    account = await store.get_account("a1")
    assert (account.balance_units, account.held_units) == (48_200, 0)
    assert account.last_call_at == T0 + timedelta(minutes=4)
    assert await store.book_balance(Book.HOLD, "a1") == 0
    assert await store.open_reservations() == []
    with pytest.raises(InvalidState):
        await store.settle("r1", talked_seconds=0, charge_legs=[], at=T0)
    with pytest.raises(InvalidState):
        await store.heartbeat("r1", 200, T0)
    with pytest.raises(NotFound):
        await store.heartbeat("nope", 1, T0)
    with pytest.raises(NotFound):
        await store.settle("nope", talked_seconds=1, charge_legs=[], at=T0)
    # A heartbeat never records more than the call may last.
    await store.reserve(reservation("r2", "a1", 100), floor_units=0)
    assert (await store.heartbeat("r2", 10_000, T0)).heartbeat_seconds == 600


async def test_reserve_refuses_beyond_floor(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 10_000, "d"))
    with pytest.raises(InsufficientFunds):
        await store.reserve(reservation("r1", "a1", 10_001), floor_units=0)
    assert await store.open_reservations() == []
    assert (await store.get_account("a1")).balance_units == 10_000
    # A credit account may go down to its floor, not below.
    await store.create_account(
        Account(
            id="d1",
            product=Product.DIRECT_BILL,
            created_at=T0,
            numbers=("+13105550100",),
            credit_limit_units=300_000,
        )
    )
    await store.reserve(reservation("r2", "d1", 300_000), floor_units=-300_000)
    with pytest.raises(InsufficientFunds):
        await store.reserve(reservation("r3", "d1", 100), floor_units=-300_000)


async def test_settle_never_charges_more_than_reserved(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 10_000, "d"))
    await store.reserve(reservation("r1", "a1", 5_000), floor_units=0)
    with pytest.raises(InvalidRequest):
        await store.settle(
            "r1", talked_seconds=60, charge_legs=[Leg(Book.REVENUE, "x", 5_001)], at=T0
        )
    with pytest.raises(InvalidRequest):
        await store.settle(
            "r1", talked_seconds=60, charge_legs=[Leg(Book.ACCOUNT, "a1", 1)], at=T0
        )
    assert (await store.get_reservation("r1")).status == "open"
    assert (await store.get_account("a1")).held_units == 5_000


async def test_reserve_duplicates_and_closed_accounts(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 10_000, "d"))
    await store.reserve(reservation("r1", "a1", 1_000), floor_units=0)
    with pytest.raises(DuplicateRequest):
        await store.reserve(reservation("r1", "a1", 1_000), floor_units=0)
    with pytest.raises(DuplicateRequest):
        await store.reserve(reservation("r2", "a1", 1_000, call_id="call-r1"), floor_units=0)
    await store.update_account("a1", status="closing")
    with pytest.raises(InvalidState):
        await store.reserve(reservation("r3", "a1", 1_000), floor_units=0)
    assert (await store.get_account("a1")).held_units == 1_000


async def test_subscription_seconds_are_held_and_used(store: AccountStore) -> None:
    sub = Subscription(
        id="s1",
        number_e164=TX_AC,
        facility_id="tx",
        starts_at=T0,
        ends_at=T0 + timedelta(days=30),
        price_units=100_000,
        covered_seconds=1_200,
    )
    await store.add_subscription(sub, method="card", idempotency_key="sub-1", at=T0)
    assert await store.book_balance(Book.REVENUE, "subscription") == 100_000
    await store.reserve(
        reservation("r1", None, 0, subscription_id="s1", max_seconds=900), floor_units=0
    )
    with pytest.raises(InsufficientFunds):
        await store.reserve(
            reservation("r2", None, 0, subscription_id="s1", max_seconds=301), floor_units=0
        )
    await store.settle("r1", talked_seconds=400, charge_legs=[], at=T0)
    s = await store.get_subscription("s1")
    assert (s.used_seconds, s.held_seconds, s.remaining_seconds) == (400, 0, 800)
    candidates = await store.payer_candidates("tx", "1", TX_AC, T0 + timedelta(days=1))
    assert candidates.subscription is not None and candidates.subscription.id == "s1"
    expired = await store.payer_candidates("tx", "1", TX_AC, T0 + timedelta(days=31))
    assert expired.subscription is None


async def test_single_call_settle_records_receivable(store: AccountStore) -> None:
    await store.reserve(
        reservation("r1", None, 0, product=Product.SINGLE_CALL, number_e164="+12125550100"),
        floor_units=0,
    )
    await store.settle(
        "r1",
        talked_seconds=300,
        charge_legs=[Leg(Book.REVENUE, "single_call", 12_500)],
        at=T0,
        receivable_id="rcv-1",
    )
    rec = await store.get_receivable("rcv-1")
    assert (rec.amount_units, rec.status) == (12_500, ReceivableStatus.PENDING)
    assert await store.book_balance(Book.RECEIVABLE, "rcv-1") == -12_500
    failed = await store.settle_receivable("rcv-1", ReceivableStatus.FAILED, method="", at=T0)
    assert failed.status is ReceivableStatus.FAILED
    assert (await store.payer_candidates("tx", "1", "+12125550100", T0)).single_call_barred
    paid = await store.settle_receivable(
        "rcv-1", ReceivableStatus.CONFIRMED, method="card", at=T0
    )
    assert paid.status is ReceivableStatus.CONFIRMED
    assert await store.book_balance(Book.RECEIVABLE, "rcv-1") == 0
    assert not (await store.payer_candidates("tx", "1", "+12125550100", T0)).single_call_barred
    with pytest.raises(InvalidState):
        await store.settle_receivable("rcv-1", ReceivableStatus.FAILED, method="", at=T0)


async def test_refund_transitions(store: AccountStore) -> None:
    await store.create_account(ac())
    await store.post(deposit("a1", 30_000, "d"))
    refund = Refund(
        id="f1",
        account_id="a1",
        amount_units=30_000,
        method=RefundMethod.CARD,
        status=RefundStatus.PENDING_REVIEW,
        requested_at=T0,
    )
    with pytest.raises(InsufficientFunds):
        await store.create_refund(replace(refund, amount_units=30_001), at=T0)
    await store.create_refund(refund, at=T0)
    assert (await store.get_account("a1")).balance_units == 0
    assert await store.book_balance(Book.REFUND_PAYABLE, "f1") == 30_000
    with pytest.raises(InvalidState):
        await store.decide_refund("f1", RefundStatus.PAID, at=T0)
    rejected = await store.decide_refund("f1", RefundStatus.REJECTED, at=T0)
    assert rejected.status is RefundStatus.REJECTED
    assert (await store.get_account("a1")).balance_units == 30_000
    await store.create_refund(replace(refund, id="f2", status=RefundStatus.APPROVED), at=T0)
    await store.decide_refund("f2", RefundStatus.PAID, at=T0)
    assert await store.book_balance(Book.FUNDS_OUT, "card") == 30_000
    assert [r.id for r in await store.list_refunds(status=RefundStatus.PAID)] == ["f2"]
    with pytest.raises(NotFound):
        await store.decide_refund("nope", RefundStatus.PAID, at=T0)


async def test_people_and_screening_facts(store: AccountStore) -> None:
    await store.add_person(Person(facility_id="tx", pin="1", language="es"))
    with pytest.raises(DuplicateRequest):
        await store.add_person(Person(facility_id="tx", pin="1"))
    person = await store.set_allowed_number("tx", "1", TX_AC, True)
    assert person.allowed_numbers == {TX_AC}
    until = T0 + timedelta(days=3)
    person = await store.set_restrictions("tx", "1", [Restriction("suspension", until, "fight")])
    assert person.restrictions == (Restriction("suspension", until, "fight"),)
    await store.set_facility_block("tx", "+1900", prefix=True, blocked=True)
    await store.set_facility_block("tx", "+15125550199", prefix=False, blocked=True)
    await store.set_self_block("+15125550111", "tx", True)
    await store.set_self_block("+15125550112", None, True)
    await store.set_privileged("+15125550123", True, "attorney")

    f = await store.screening_facts("tx", "1", "+19005550100")
    assert (f.facility_blocked, f.self_blocked, f.privileged) == (True, False, False)
    assert f.person is not None and f.person.language == "es"
    f = await store.screening_facts("tx", "1", "+15125550199")
    assert f.facility_blocked
    f = await store.screening_facts("al", "1", "+15125550199")
    assert not f.facility_blocked and f.person is None
    assert (await store.screening_facts("tx", "1", "+15125550111")).self_blocked
    assert not (await store.screening_facts("al", "1", "+15125550111")).self_blocked
    assert (await store.screening_facts("al", "1", "+15125550112")).self_blocked
    assert (await store.screening_facts("tx", "9", "+15125550123")).privileged
    # The called party can remove their own block.
    await store.set_self_block("+15125550112", None, False)
    assert not (await store.screening_facts("al", "1", "+15125550112")).self_blocked
    assert await store.list_facility_blocks("tx") == [("+15125550199", False), ("+1900", True)]
    released = await store.mark_released("tx", "1", T0)
    assert released.released_at == T0


def cdr(call_id: str, minute: int, **kw: object) -> CallDetailRecord:
    fields: dict[str, object] = {
        "call_id": call_id,
        "facility_id": "tx",
        "pin": "100001",
        "number_e164": TX_AC,
        "jurisdiction": "intrastate",
        "product": "advance_connect",
        "payer_account_id": "a1",
        "setup_at": T0 + timedelta(minutes=minute),
        "answer_at": T0 + timedelta(minutes=minute, seconds=5),
        "accept_at": T0 + timedelta(minutes=minute, seconds=12),
        "end_at": T0 + timedelta(minutes=minute + 3),
        "talked_seconds": 168,
        "billed_seconds": 180,
        "charge_units": 1_800,
        "fee_units": 0,
        "tax_units": 0,
        "total_units": 1_800,
        "outcome": CallOutcome.COMPLETED,
        "disconnect_reason": "caller hung up",
        "disconnect_side": "caller",
    }
    fields.update(kw)
    return CallDetailRecord(**fields)  # type: ignore[arg-type]


async def test_cdrs(store: AccountStore) -> None:
    first = cdr("c1", 0)
    assert await store.add_cdr(first) == first
    with pytest.raises(DuplicateRequest):
        await store.add_cdr(first)
    await store.add_cdr(cdr("c2", 10, facility_id="al", privileged=True, recording_path=None))
    await store.add_cdr(cdr("c3", 20, recovered=True, answer_at=None))
    assert await store.get_cdr("c3") == cdr("c3", 20, recovered=True, answer_at=None)
    with pytest.raises(NotFound):
        await store.get_cdr("c9")
    assert [c.call_id for c in await store.list_cdrs()] == ["c1", "c2", "c3"]
    assert [c.call_id for c in await store.list_cdrs(CdrFilter(facility_id="tx"))] == ["c1", "c3"]
    window = CdrFilter(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=20))
    assert [c.call_id for c in await store.list_cdrs(window)] == ["c2"]
    assert [c.call_id for c in await store.list_cdrs(CdrFilter(limit=1))] == ["c1"]
