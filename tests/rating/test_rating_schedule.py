"""Price schedules: exactly ``quote`` and ``max_affordable_seconds``, for any length and budget."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rating_builders import TODAY, flat_rates, make_facility
from rating_strategies import surcharged_facilities

from rating import (
    MAX_QUOTED_SECONDS,
    DateRange,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    ProductNotOffered,
    RatedFacility,
    RatingError,
    Surcharge,
    classify,
    max_affordable_seconds,
    price_schedule,
    quote,
)

TX = "+15125550100"
NY = "+12125550100"
MX = "011525512345678"
AC = Product.ADVANCE_CONNECT

@settings(max_examples=150, deadline=None)
@given(
    facility=surcharged_facilities(
        max_minutes=30, fee_ends=st.sampled_from([None, TODAY - timedelta(days=1), TODAY])
    ),
    number=st.sampled_from([TX, NY, MX]),
    limit_seconds=st.one_of(st.none(), st.integers(1, 2400)),
    budgets=st.lists(st.integers(0, 300_000), min_size=1, max_size=8),
)
def test_schedule_answers_exactly_what_max_affordable_seconds_answers(
    facility: RatedFacility, number: str, limit_seconds: int | None, budgets: list[int]
) -> None:
    cap = facility.max_call_seconds
    increment = facility.tariff.increment_seconds
    if cap is None and limit_seconds is None and increment < 60:
        limit_seconds = 3600  # a whole day of one-second lengths is too long for an example
    called = classify(facility, number)
    termination = 700 if called.jurisdiction is Jurisdiction.INTERNATIONAL else 0
    schedule = price_schedule(
        facility, AC, called.jurisdiction, TODAY, termination, limit_seconds=limit_seconds
    )
    full = cap or MAX_QUOTED_SECONDS
    expected_limit = (
        full if limit_seconds is None else min(full, -(-limit_seconds // increment) * increment)
    )
    assert schedule.limit_seconds == expected_limit
    for n in range(0, len(schedule.totals), max(1, len(schedule.totals) // 25)):
        assert schedule.totals[n] == quote(facility, number, AC, n * increment, TODAY).total_units
    for budget in budgets:
        assert schedule.max_affordable_seconds(budget) == min(
            max_affordable_seconds(facility, number, AC, budget, TODAY), expected_limit
        )


def test_a_fee_that_ends_is_priced_by_the_day_of_the_schedule() -> None:
    fee = Surcharge("per call", FeeCategory.AUTHORIZED_FEE, FeeBasis.PER_CALL, 2500,
                    allowed=DateRange(end=TODAY))
    facility = make_facility(rate=600, surcharges=(fee,), max_call_seconds=1200)
    today = price_schedule(facility, AC, Jurisdiction.INTRASTATE, TODAY)
    tomorrow = price_schedule(facility, AC, Jurisdiction.INTRASTATE, TODAY + timedelta(days=1))
    assert today.totals[:3] == (0, 3100, 3700)
    assert tomorrow.totals[:3] == (0, 600, 1200)
    # $0.90 pays for 10 minutes with the $0.25 fee, 15 without it.
    assert today.max_affordable_seconds(9000) == 600
    assert tomorrow.max_affordable_seconds(9000) == 900
    # A datetime counts on its own calendar day, as quote() counts it.
    central = timezone(timedelta(hours=-6))
    late = datetime(TODAY.year, TODAY.month, TODAY.day, 23, 30, tzinfo=central)
    assert price_schedule(facility, AC, Jurisdiction.INTRASTATE, late).day == TODAY


def test_limit_is_rounded_up_to_whole_increments_and_never_past_the_facility() -> None:
    facility = make_facility(rate=600, increment=60, max_call_seconds=900)
    def limit(limit_seconds: int | None) -> int:
        schedule = price_schedule(
            facility, AC, Jurisdiction.LOCAL, TODAY, limit_seconds=limit_seconds
        )
        return schedule.limit_seconds

    assert (limit(90), limit(120), limit(5000), limit(None)) == (120, 120, 900, 900)


def test_bad_input_is_refused_with_the_field_named() -> None:
    facility = make_facility(rates=flat_rates(600, [Product.DEBIT]), max_call_seconds=600)
    with pytest.raises(ProductNotOffered):
        price_schedule(facility, AC, Jurisdiction.LOCAL, TODAY)
    schedule = price_schedule(facility, Product.DEBIT, Jurisdiction.LOCAL, TODAY)
    for bad in (-1, True, "100"):
        with pytest.raises(RatingError) as info:
            schedule.max_affordable_seconds(bad)  # type: ignore[arg-type]
        assert info.value.field == "budget"
    for limit in (0, -60, True):
        with pytest.raises(RatingError) as info:
            price_schedule(facility, Product.DEBIT, Jurisdiction.LOCAL, TODAY, limit_seconds=limit)
        assert info.value.field == "limit_seconds"
