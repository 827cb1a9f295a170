"""Properties of the posting plans, checked on the plans themselves with no store."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from account_helpers import CA_DB, T0, TX_AC, make_facilities
from hypothesis import given
from hypothesis import strategies as st

from accounts import postings
from accounts.errors import InvalidRequest, InvalidState
from accounts.model import (
    Book,
    Leg,
    Receivable,
    ReceivableStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
    ReservationStatus,
    Subscription,
)
from accounts.postings import (
    NO_CHARGE,
    RECEIVABLE_TRANSITIONS,
    REFUND_TRANSITIONS,
    CallCharge,
    Plan,
    plan_receivable_settlement,
    plan_refund_create,
    plan_refund_decision,
    plan_release,
    plan_reserve,
    plan_settle,
    plan_subscription_purchase,
)
from accounts.pricing import CallPricer
from rating import Product

AT = T0 + timedelta(minutes=20)
units = st.integers(0, 10_000_000)
positive = st.integers(1, 10_000_000)
seconds = st.integers(1, 7_200)
earning_books = st.sampled_from(postings.EARNING_BOOKS)
charge_legs = st.lists(
    st.builds(Leg, earning_books, st.just("advance_connect"), st.integers(0, 2_000_000)),
    max_size=4,
)


def reservation(n: int, product: Product, **fields: Any) -> Reservation:
    base = Reservation(
        id=f"r{n}",
        call_id=f"c{n}",
        product=product,
        facility_id="tx",
        number_e164=TX_AC,
        created_at=T0,
        max_seconds=600,
    )
    return dataclasses.replace(base, **fields)


def money_reservation(amount: int, max_seconds: int = 600, account: str = "a1") -> Reservation:
    return reservation(
        1,
        Product.ADVANCE_CONNECT,
        max_seconds=max_seconds,
        amount_units=amount,
        account_id=account,
    )


def subscription_reservation(max_seconds: int) -> Reservation:
    return reservation(2, Product.SUBSCRIPTION, max_seconds=max_seconds, subscription_id="s1")


def single_call_reservation(max_seconds: int = 600) -> Reservation:
    return reservation(3, Product.SINGLE_CALL, max_seconds=max_seconds, number_e164=CA_DB)


def book_sums(plan: Plan) -> Counter[tuple[Book, str]]:
    sums: Counter[tuple[Book, str]] = Counter()
    if plan.transaction is not None:
        for leg in plan.transaction.legs:
            sums[(leg.book, leg.ref)] += leg.amount_units
    return sums


def assert_consistent(plan: Plan) -> None:
    """Legs add to zero, and the account and hold legs are exactly the balance change."""
    if plan.transaction is None:
        assert plan.balance is None or (plan.balance.balance_units, plan.balance.held_units) == (
            0,
            0,
        )
        return
    assert sum(leg.amount_units for leg in plan.transaction.legs) == 0
    sums = book_sums(plan)
    if plan.balance is not None:
        account = plan.balance.account_id
        assert sums[(Book.ACCOUNT, account)] == plan.balance.balance_units
        assert sums[(Book.HOLD, account)] == plan.balance.held_units
        for leg in plan.transaction.legs:
            if leg.book in (Book.ACCOUNT, Book.HOLD):
                assert leg.ref == account == plan.transaction.account_id
    else:
        assert not any(leg.book in (Book.ACCOUNT, Book.HOLD) for leg in plan.transaction.legs)


# -- reserve -------------------------------------------------------------------------
@given(units, seconds, st.integers(-1_000_000, 1_000_000))
def test_reserve_moves_the_amount_into_the_hold(amount: int, max_seconds: int, floor: int) -> None:
    r = money_reservation(amount, max_seconds)
    plan = plan_reserve(r, floor_units=floor)
    assert_consistent(plan)
    assert plan.balance == postings.BalanceChange(
        "a1", balance_units=-amount, held_units=amount, floor_units=floor, must_be_open=True
    )
    assert plan.reservation == postings.ReservationChange(r, expected=None)
    assert plan.at == r.created_at
    if amount:
        assert plan.transaction is not None and plan.transaction.kind == "reserve"
        assert book_sums(plan)[(Book.HOLD, "a1")] == amount
    else:
        assert plan.transaction is None


@given(seconds)
def test_reserve_of_subscription_seconds_moves_no_money(max_seconds: int) -> None:
    plan = plan_reserve(subscription_reservation(max_seconds), floor_units=0)
    assert plan.transaction is None and plan.balance is None
    assert plan.seconds == postings.SecondsChange(
        "s1", held_seconds=max_seconds, needs_seconds=max_seconds
    )


def test_reserve_refuses_malformed_reservations() -> None:
    with pytest.raises(InvalidRequest, match="non-negative amount"):
        plan_reserve(money_reservation(-1), floor_units=0)
    with pytest.raises(InvalidRequest, match="positive seconds"):
        plan_reserve(money_reservation(10, max_seconds=0), floor_units=0)
    with pytest.raises(InvalidRequest, match="needs an account"):
        plan_reserve(dataclasses.replace(single_call_reservation(), amount_units=5), floor_units=0)
    with pytest.raises(InvalidRequest, match="open and has no heartbeat"):
        plan_reserve(
            dataclasses.replace(money_reservation(10), heartbeat_seconds=3), floor_units=0
        )
    with pytest.raises(InvalidRequest, match="open and has no heartbeat"):
        plan_reserve(
            dataclasses.replace(money_reservation(10), status=ReservationStatus.SETTLED),
            floor_units=0,
        )


# -- settle and release --------------------------------------------------------------
@given(units, st.integers(0, 7_200), charge_legs)
def test_settle_on_an_account_charges_at_most_the_hold_and_releases_it(
    amount: int, talked: int, legs: list[Leg]
) -> None:
    r = money_reservation(amount)
    charge = CallCharge.checked(talked, legs)
    if charge.units > amount:
        with pytest.raises(InvalidRequest, match="exceeds"):
            plan_settle(r, charge, at=AT)
        return
    plan = plan_settle(r, charge, at=AT)
    assert_consistent(plan)
    assert plan.balance is not None
    # The hold is released exactly; what is not charged returns to the balance.
    assert plan.balance.held_units == -amount
    assert plan.balance.balance_units == amount - charge.units >= 0
    assert plan.balance.floor_units is None and not plan.balance.must_be_open
    assert plan.balance.call_facility == ("tx" if talked else None)
    sums = book_sums(plan)
    earned = sum(v for (book, _), v in sums.items() if book in postings.EARNING_BOOKS)
    if amount:
        assert plan.transaction is not None and plan.transaction.kind == "call"
        assert earned == charge.units
        assert plan.transaction.seconds == talked
    else:
        assert plan.transaction is None
    settled = plan.reservation
    assert settled is not None
    assert settled.expected is ReservationStatus.OPEN
    assert settled.expected_held_units == amount
    assert settled.record.status is ReservationStatus.SETTLED
    assert settled.record.charged_units == charge.units
    assert settled.record.talked_seconds == talked
    assert settled.record.settled_at == AT


@given(st.integers(1, 7_200), st.integers(0, 7_200))
def test_a_priced_call_never_costs_more_than_its_reserve(max_seconds: int, talked: int) -> None:
    """Reserve the price of the longest call, settle the price of the talked time."""
    facilities = make_facilities()
    pricer = CallPricer(facilities)
    facility = facilities["tx"]
    called = pricer.classify(facility, TX_AC)
    product = Product.ADVANCE_CONNECT
    held = pricer.quote(facility, called, product, max_seconds, T0).total_units
    billed = min(talked, max_seconds)
    q = pricer.quote(facility, called, product, billed, T0)
    legs = [
        Leg(Book.REVENUE, str(product), q.charge_units),
        Leg(Book.FEES, str(product), q.fees_units),
        Leg(Book.TAX, str(product), q.taxes_units),
    ]
    r = plan_reserve(money_reservation(held, max_seconds), floor_units=0).reservation
    assert r is not None
    plan = plan_settle(r.record, CallCharge.checked(billed, legs), at=AT)
    assert plan.reservation is not None
    assert plan.reservation.record.charged_units == q.total_units <= held
    assert plan.balance is not None and plan.balance.balance_units == held - q.total_units


@given(units, st.integers(-1_000_000, 0))
def test_reserve_then_settle_costs_the_account_exactly_the_charge(
    amount: int, floor: int
) -> None:
    r = money_reservation(amount)
    reserve = plan_reserve(r, floor_units=floor)
    charge = CallCharge.checked(60, [Leg(Book.REVENUE, "advance_connect", amount // 2)])
    settle = plan_settle(r, charge, at=AT)
    assert reserve.balance is not None and settle.balance is not None
    assert reserve.balance.held_units + settle.balance.held_units == 0
    assert reserve.balance.balance_units + settle.balance.balance_units == -(amount // 2)


@given(units)
def test_release_charges_nothing_and_returns_the_whole_hold(amount: int) -> None:
    plan = plan_release(money_reservation(amount), at=AT)
    assert_consistent(plan)
    assert plan.balance is not None
    assert (plan.balance.balance_units, plan.balance.held_units) == (amount, -amount)
    assert plan.balance.call_facility is None
    assert plan.reservation is not None and plan.reservation.record.charged_units == 0
    assert plan == plan_settle(money_reservation(amount), NO_CHARGE, at=AT)


@given(seconds, st.integers(0, 20_000))
def test_settle_of_a_subscription_uses_at_most_the_seconds_held(
    max_seconds: int, talked: int
) -> None:
    plan = plan_settle(subscription_reservation(max_seconds), CallCharge(talked, 0, ()), at=AT)
    assert plan.transaction is None and plan.balance is None and plan.receivable is None
    assert plan.seconds == postings.SecondsChange(
        "s1", held_seconds=-max_seconds, used_seconds=min(talked, max_seconds)
    )
    with pytest.raises(InvalidRequest, match="no money charge"):
        plan_settle(
            subscription_reservation(max_seconds),
            CallCharge.checked(talked, [Leg(Book.REVENUE, "subscription", 1)]),
            at=AT,
        )


@given(st.integers(0, 7_200), charge_legs)
def test_settle_of_a_single_call_owes_the_charge_as_a_receivable(
    talked: int, legs: list[Leg]
) -> None:
    r = single_call_reservation()
    charge = CallCharge.checked(talked, legs)
    plan = plan_settle(r, charge, at=AT, receivable_id="rcv-c3")
    assert_consistent(plan)
    assert plan.balance is None and plan.seconds is None
    if not charge.units:
        assert plan.transaction is None and plan.receivable is None
        return
    assert plan.transaction is not None and plan.transaction.kind == "single_call"
    assert book_sums(plan)[(Book.RECEIVABLE, "rcv-c3")] == -charge.units
    assert plan.receivable == postings.ReceivableChange(
        Receivable(
            id="rcv-c3",
            number_e164=CA_DB,
            call_id="c3",
            facility_id="tx",
            amount_units=charge.units,
            created_at=AT,
        ),
        expected=None,
    )
    with pytest.raises(InvalidRequest, match="needs a receivable id"):
        plan_settle(r, charge, at=AT)


def test_settle_refuses_a_settled_reservation_and_bad_charges() -> None:
    settled = dataclasses.replace(money_reservation(100), status=ReservationStatus.SETTLED)
    with pytest.raises(InvalidState, match="already settled"):
        plan_settle(settled, NO_CHARGE, at=AT)
    with pytest.raises(InvalidRequest, match="must not be negative"):
        CallCharge.checked(-1, [])
    with pytest.raises(InvalidRequest, match="non-negative earning"):
        CallCharge.checked(5, [Leg(Book.ACCOUNT, "a1", 5)])
    with pytest.raises(InvalidRequest, match="non-negative earning"):
        CallCharge.checked(5, [Leg(Book.REVENUE, "advance_connect", -5)])
    # Zero legs are dropped from what is posted.
    charge = CallCharge.checked(5, [Leg(Book.REVENUE, "x", 5), Leg(Book.TAX, "x", 0)])
    assert charge.legs == (Leg(Book.REVENUE, "x", 5),)


def test_plans_are_frozen_and_check_their_balance_change() -> None:
    plan = plan_release(money_reservation(100), at=AT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.at = T0  # type: ignore[misc]
    assert plan.balance is not None
    with pytest.raises(ValueError, match="does not match the legs"):
        dataclasses.replace(plan, balance=dataclasses.replace(plan.balance, balance_units=99))
    with pytest.raises(ValueError, match="without a balance change"):
        dataclasses.replace(plan, balance=None)


# -- refunds -------------------------------------------------------------------------
def refund(amount: int, status: RefundStatus = RefundStatus.PENDING_REVIEW) -> Refund:
    return Refund(
        id="f1",
        account_id="a1",
        amount_units=amount,
        method=RefundMethod.CHECK,
        status=status,
        requested_at=T0,
    )


@given(positive, st.sampled_from(sorted(postings.REFUND_START_STATES)))
def test_refund_creation_moves_the_amount_to_refund_payable(
    amount: int, status: RefundStatus
) -> None:
    plan = plan_refund_create(refund(amount, status), at=AT)
    assert_consistent(plan)
    assert plan.balance == postings.BalanceChange("a1", balance_units=-amount, floor_units=0)
    assert book_sums(plan)[(Book.REFUND_PAYABLE, "f1")] == amount
    assert plan.refund == postings.RefundChange(refund(amount, status), expected=None)


def test_refund_creation_refuses_bad_amounts_and_states() -> None:
    with pytest.raises(InvalidRequest, match="positive amount"):
        plan_refund_create(refund(0), at=AT)
    for status in (RefundStatus.PAID, RefundStatus.REJECTED):
        with pytest.raises(InvalidRequest, match="starts pending review or approved"):
            plan_refund_create(refund(10, status), at=AT)


@given(positive, st.lists(st.sampled_from(list(RefundStatus)), max_size=5))
def test_refund_decisions_follow_the_table_and_keep_the_money(
    amount: int, decisions: list[RefundStatus]
) -> None:
    """Whatever is asked, a refund's money ends in exactly one place."""
    current = refund(amount)
    totals = book_sums(plan_refund_create(current, at=T0))
    account = -amount
    for status in decisions:
        legal = [
            nxt
            for (state, _), nxt in REFUND_TRANSITIONS.items()
            if state is current.status and nxt is status
        ]
        if not legal:
            with pytest.raises(InvalidState, match=f"is {current.status}, cannot be {status}"):
                plan_refund_decision(current, status, at=AT)
            continue
        plan = plan_refund_decision(current, status, at=AT)
        assert_consistent(plan)
        assert plan.refund is not None
        assert plan.refund.expected is current.status
        assert plan.refund.record.status is status and plan.refund.record.decided_at == AT
        totals.update(book_sums(plan))
        if plan.balance is not None:
            account += plan.balance.balance_units
        current = plan.refund.record
    payable = totals[(Book.REFUND_PAYABLE, "f1")]
    paid = totals[(Book.FUNDS_OUT, "check")]
    assert payable + paid + account == 0  # moved between books, never made or lost
    expected = {
        RefundStatus.PENDING_REVIEW: (amount, 0, -amount),
        RefundStatus.APPROVED: (amount, 0, -amount),
        RefundStatus.PAID: (0, amount, -amount),
        RefundStatus.REJECTED: (0, 0, 0),
    }
    assert (payable, paid, account) == expected[current.status]


def test_paying_needs_an_approval_first() -> None:
    with pytest.raises(InvalidState, match="is pending_review, cannot be paid"):
        plan_refund_decision(refund(10), RefundStatus.PAID, at=AT)
    with pytest.raises(InvalidState, match="cannot be pending_review"):
        plan_refund_decision(refund(10), RefundStatus.PENDING_REVIEW, at=AT)
    approved = plan_refund_decision(refund(10), RefundStatus.APPROVED, at=AT)
    assert approved.transaction is None and approved.balance is None


# -- receivables ---------------------------------------------------------------------
def receivable(amount: int, status: ReceivableStatus = ReceivableStatus.PENDING) -> Receivable:
    return Receivable(
        id="rcv-c3",
        number_e164=CA_DB,
        call_id="c3",
        facility_id="tx",
        amount_units=amount,
        created_at=T0,
        status=status,
    )


@given(positive, st.lists(st.sampled_from(list(ReceivableStatus)), max_size=5))
def test_receivable_settlement_follows_the_table_and_is_paid_once(
    amount: int, decisions: list[ReceivableStatus]
) -> None:
    current = receivable(amount)
    owed = -amount  # as the Single Call's settlement left it
    funds_in = 0
    for status in decisions:
        legal = (current.status, _event_for(status)) in RECEIVABLE_TRANSITIONS
        if not legal:
            with pytest.raises(InvalidState, match=f"is {current.status}, not {status}"):
                plan_receivable_settlement(current, status, method="card", at=AT)
            continue
        plan = plan_receivable_settlement(current, status, method="card", at=AT)
        assert_consistent(plan)
        assert plan.receivable is not None and plan.receivable.expected is current.status
        sums = book_sums(plan)
        owed += sums[(Book.RECEIVABLE, "rcv-c3")]
        funds_in += sums[(Book.FUNDS_IN, "card")]
        current = plan.receivable.record
        assert current.status is status and current.settled_at == AT
    assert owed + funds_in == -amount
    assert owed == (0 if current.status is ReceivableStatus.CONFIRMED else -amount)


def _event_for(status: ReceivableStatus) -> postings.ReceivableEvent | None:
    for (_, event), nxt in RECEIVABLE_TRANSITIONS.items():
        if nxt is status:
            return event
    return None


def test_a_confirmed_receivable_is_final() -> None:
    for status in ReceivableStatus:
        with pytest.raises(InvalidState):
            plan_receivable_settlement(
                receivable(5, ReceivableStatus.CONFIRMED), status, method="card", at=AT
            )
    failed = plan_receivable_settlement(receivable(5), ReceivableStatus.FAILED, method="c", at=AT)
    assert failed.transaction is None


# -- subscriptions -------------------------------------------------------------------
@given(units)
def test_subscription_purchase_is_funds_in_against_revenue(price: int) -> None:
    s = Subscription(
        id="s1",
        number_e164=TX_AC,
        facility_id="tx",
        starts_at=T0,
        ends_at=T0 + timedelta(days=30),
        price_units=price,
        covered_seconds=36_000,
    )
    plan = plan_subscription_purchase(s, method="card", idempotency_key="k1", at=AT)
    assert_consistent(plan)
    assert plan.new_subscription == s and plan.balance is None
    if price:
        assert plan.transaction is not None and plan.transaction.idempotency_key == "k1"
        sums = book_sums(plan)
        assert sums[(Book.REVENUE, "subscription")] == price == -sums[(Book.FUNDS_IN, "card")]
    else:
        assert plan.transaction is None


def test_the_settled_record_keeps_every_field_of_the_open_one() -> None:
    """The settled reservation is the open one with only the settlement's fields changed."""
    open_one = dataclasses.replace(
        money_reservation(900),
        pin="1234",
        heartbeat_seconds=42,
        heartbeat_at=T0 + timedelta(seconds=42),
        owner="node-a",
        jurisdiction="intrastate",
        privileged=True,
        station="A-101",
    )
    # Every field set to something other than its default, so a field added later
    # and not carried over shows up here.
    for f in dataclasses.fields(Reservation):
        if f.name not in ("status", "settled_at", "talked_seconds", "charged_units"):
            assert getattr(open_one, f.name) != f.default or f.name == "subscription_id", f.name
    charge = CallCharge.checked(30, [Leg(Book.REVENUE, "advance_connect", 300)])
    plan = plan_settle(open_one, charge, at=AT)
    assert plan.reservation is not None
    assert plan.reservation.record == dataclasses.replace(
        open_one,
        status=ReservationStatus.SETTLED,
        settled_at=AT,
        talked_seconds=30,
        charged_units=300,
    )


@given(st.integers(0, 7_200), charge_legs)
def test_a_checked_charge_is_the_sum_of_its_legs_without_the_empty_ones(
    talked: int, legs: list[Leg]
) -> None:
    charge = CallCharge.checked(talked, legs)
    assert charge.units == sum(leg.amount_units for leg in legs)
    assert list(charge.legs) == [leg for leg in legs if leg.amount_units]
    assert postings.checked_charge(talked, legs) == (charge.units, list(charge.legs))
