"""Cached call pricing: exactly rating's answers, per day, and ids that ascend."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from account_helpers import CA_DB, T0, TX_AC, make_facilities
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts import AccountService, AccountStore, Authorization, CallRequest, Person
from accounts.policy import FacilityPolicy
from accounts.pricing import CallPricer
from accounts.service import ascending_ids
from rating import (
    DateRange,
    FeeBasis,
    FeeCategory,
    Product,
    RatedFacility,
    Surcharge,
    Tariff,
    max_affordable_seconds,
    quote,
)

MX = "011525512345678"
NUMBERS = (TX_AC, CA_DB, MX)
PRODUCTS = (Product.ADVANCE_CONNECT, Product.DIRECT_BILL, Product.SINGLE_CALL)
FEE_DAY = T0.date()


def with_fee_until_t0() -> dict[str, FacilityPolicy]:
    """``make_facilities`` with a $0.25 per-call fee at ``tx`` that ends on T0's day."""
    facilities = make_facilities()
    tx = facilities["tx"]
    fee = Surcharge(
        "transitional per-call fee",
        FeeCategory.AUTHORIZED_FEE,
        FeeBasis.PER_CALL,
        2_500,
        allowed=DateRange(end=FEE_DAY),
    )
    old: Tariff = tx.rated.tariff
    tariff = Tariff(
        name=old.name,
        increment_seconds=old.increment_seconds,
        rates=old.rates,
        surcharges=(fee,),
        international_termination={"*": 700},
    )
    rated: RatedFacility = replace(tx.rated, tariff=tariff)
    facilities["tx"] = replace(tx, rated=rated)
    return facilities


pricer = CallPricer(with_fee_until_t0())
facilities = with_fee_until_t0()


@settings(max_examples=120, deadline=None)
@given(
    facility_id=st.sampled_from(["tx", "al"]),
    number=st.sampled_from(NUMBERS),
    product=st.sampled_from(PRODUCTS),
    seconds=st.integers(0, 3_000),
    budget=st.integers(0, 60_000),
    days=st.integers(-2, 2),
)
def test_cached_answers_equal_ratings_own_answers(
    facility_id: str, number: str, product: Product, seconds: int, budget: int, days: int
) -> None:
    facility = facilities[facility_id]
    at = T0 + timedelta(days=days)
    called = pricer.classify(facility, number)
    # Asked twice: the second answer comes from the caches.
    for _ in range(2):
        assert pricer.quote(facility, called, product, seconds, at) == quote(
            facility.rated, number, product, seconds, at
        )
        assert pricer.longest_call(facility, called, product, budget, at) == min(
            max_affordable_seconds(facility.rated, number, product, budget, at),
            facility.max_call_seconds,
        )


def test_a_fee_ending_at_midnight_is_priced_by_each_calls_own_day() -> None:
    tx = facilities["tx"]
    local = CallPricer(facilities)
    called = local.classify(tx, TX_AC)
    before = local.quote(tx, called, Product.ADVANCE_CONNECT, 60, T0)
    after = local.quote(tx, called, Product.ADVANCE_CONNECT, 60, T0 + timedelta(days=1))
    again = local.quote(tx, called, Product.ADVANCE_CONNECT, 60, T0)
    assert (before.total_units, after.total_units, again.total_units) == (3_100, 600, 3_100)
    assert local.longest_call(tx, called, Product.ADVANCE_CONNECT, 5_000, T0) == 240
    day_after = T0 + timedelta(days=1)
    assert local.longest_call(tx, called, Product.ADVANCE_CONNECT, 5_000, day_after) == 480
    assert local.longest_call(tx, called, Product.ADVANCE_CONNECT, 5_000, T0) == 240


async def test_authorization_across_the_fee_boundary_holds_and_charges_exactly(
    store: AccountStore,
) -> None:
    service = AccountService(store, with_fee_until_t0())
    await store.add_person(Person(facility_id="tx", pin="100001"))
    account = await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit(account.id, "1.00", "card", "dep-1", T0)

    first = await service.authorize(CallRequest("c1", "tx", "100001", TX_AC, T0))
    assert isinstance(first, Authorization)
    # $1.00 less the $0.25 fee buys 12 minutes at $0.06.
    assert (first.max_seconds, first.reservation.amount_units) == (720, 9_700)
    next_day = T0 + timedelta(days=1)
    # Settled after midnight, still priced as authorized: with the fee.
    settled = await service.settle(first.reservation_id, 60, next_day)
    assert settled.reservation.charged_units == 3_100

    second = await service.authorize(CallRequest("c2", "tx", "100001", TX_AC, next_day))
    assert isinstance(second, Authorization)
    # The fee ended: $0.69 buys 11 minutes.
    assert (second.max_seconds, second.reservation.amount_units) == (660, 6_600)
    settled = await service.settle(second.reservation_id, 60, next_day + timedelta(minutes=1))
    assert settled.reservation.charged_units == 600
    after = await store.get_account("ac1")
    assert (after.balance_units, after.held_units) == (10_000 - 3_100 - 600, 0)


def test_ids_are_unique_ascending_hex_and_differ_between_sources() -> None:
    first, second = ascending_ids(), ascending_ids()
    ids = [first() for _ in range(2_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    others = {second() for _ in range(2_000)}
    assert not others & set(ids)
