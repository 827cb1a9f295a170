"""Quotes: increments, half-up cent rounding, fee and tax lines, and max duration."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rating_builders import TODAY, flat_rates, make_facility
from rating_strategies import surcharged_facilities

from rating import (
    MAX_QUOTED_SECONDS,
    AncillaryFee,
    AncillaryKind,
    AncillaryTrigger,
    DateRange,
    FeeBasis,
    FeeCategory,
    InvalidNumber,
    Jurisdiction,
    Product,
    ProductNotOffered,
    RatedFacility,
    RatingError,
    Surcharge,
    deposit_fees,
    max_affordable_seconds,
    quote,
    quote_document,
    round_ratio_to_cent,
)

TX = "+15125550100"
NY = "+12125550100"
MX = "011525512345678"
AC = Product.ADVANCE_CONNECT


def test_design_example_fifteen_minutes_intrastate() -> None:
    q = quote(make_facility(rate=600), TX, AC, 900, TODAY)
    assert (q.jurisdiction, q.rate_units, q.billed_units) == (Jurisdiction.INTRASTATE, 600, 15)
    assert (q.charge_units, q.total_units) == (9000, 9000)
    data = q.to_json()
    assert data["charge"] == "0.90" and data["total"] == "0.90"
    assert data["rate_per_minute"] == "0.0600"
    assert data["billed_minutes"] == 15


@pytest.mark.parametrize(
    ("seconds", "billed"),
    [(0, 0), (1, 1), (59, 1), (60, 1), (61, 2), (119, 2), (120, 2), (121, 3)],
)
def test_whole_minute_increments_round_up(seconds: int, billed: int) -> None:
    q = quote(make_facility(rate=600), TX, AC, seconds, TODAY)
    assert q.billed_units == billed
    assert q.charge_units == billed * 600


def test_per_second_billing_rounds_the_charge_once_half_up() -> None:
    facility = make_facility(rate=625, increment=1)  # $0.0625 per minute
    # 61 s * 625 / 60 = 635.41.. units = $0.0635 -> $0.06
    assert quote(facility, TX, AC, 61, TODAY).charge_units == 600
    # 96 s * 625 / 60 = 1000 units = $0.10 exactly
    assert quote(facility, TX, AC, 96, TODAY).charge_units == 1000
    # 24 s * 625 / 60 = 250 units = $0.025 -> half-up to $0.03
    assert quote(facility, TX, AC, 24, TODAY).charge_units == 300


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(0, 5000),
    increment=st.sampled_from([1, 6, 30, 60]),
    seconds=st.integers(0, 7200),
)
def test_rounding_properties(rate: int, increment: int, seconds: int) -> None:
    q = quote(make_facility(rate=rate, increment=increment), TX, AC, seconds, TODAY)
    billed_seconds = q.billed_seconds
    # Whole increments, rounded up, never more than one increment over.
    assert billed_seconds % increment == 0
    assert seconds <= billed_seconds < seconds + increment or (seconds == 0 == billed_seconds)
    # One rounding to the cent, half-up, within half a cent of the exact charge.
    exact_times_60 = rate * billed_seconds
    assert q.charge_units % 100 == 0
    assert abs(q.charge_units * 60 - exact_times_60) <= 50 * 60
    if (q.charge_units * 60 - exact_times_60) == -50 * 60:
        pytest.fail("half a cent must round up")
    assert q.total_units == q.charge_units


def _lines() -> tuple[Surcharge, ...]:
    return (
        Surcharge("State tax", FeeCategory.MANDATORY_TAX, FeeBasis.PERCENT, 62_500),
        Surcharge("USF", FeeCategory.AUTHORIZED_FEE, FeeBasis.PERCENT, 366_000,
                  jurisdictions=frozenset({Jurisdiction.INTERSTATE})),
        Surcharge("911 per call", FeeCategory.MANDATORY_TAX, FeeBasis.PER_CALL, 25),
        Surcharge("Add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, 200,
                  allowed=DateRange(date(2026, 4, 6), None)),
        Surcharge("Debit only", FeeCategory.AUTHORIZED_FEE, FeeBasis.PER_CALL, 100,
                  products=frozenset({Product.DEBIT})),
    )


def test_fee_and_tax_lines_each_rounded_and_filtered() -> None:
    facility = make_facility(rate=600, surcharges=_lines())
    q = quote(facility, NY, AC, 600, TODAY)  # 10 min interstate: charge $0.60
    assert q.charge_units == 6000
    taxes = {t.name: t.amount_units for t in q.taxes}
    fees = {f.name: f.amount_units for f in q.fees}
    # 6.25% of .60 = .0375 -> .04; a per-call $.0025 -> .00
    assert taxes == {"State tax": 400, "911 per call": 0}
    assert fees == {"USF": 2200, "Add-on": 2000}  # 36.6% of .60 = .2196 -> .22; 10 x .02
    assert q.total_units == 6000 + 400 + 2200 + 2000
    assert all(t.category is FeeCategory.MANDATORY_TAX for t in q.taxes)
    # Intrastate: no USF; before the add-on's first day: no add-on.
    early = quote(facility, TX, AC, 600, date(2026, 4, 5))
    assert {f.name for f in early.fees} == set()
    assert quote(facility, TX, Product.DEBIT, 600, TODAY).fees[-1].name == "Debit only"


def test_zero_second_call_costs_nothing() -> None:
    q = quote(make_facility(rate=600, surcharges=_lines()), NY, AC, 0, TODAY)
    assert (q.total_units, q.fees, q.taxes) == (0, (), ())


def test_international_adds_the_destination_termination() -> None:
    facility = make_facility(rate=600, termination={"MX": 250, "*": 1500})
    mx = quote(facility, MX, AC, 60, TODAY)
    assert (mx.jurisdiction, mx.rate_units, mx.termination_units) == (
        Jurisdiction.INTERNATIONAL, 850, 250)
    gb = quote(facility, "+442079460000", AC, 60, TODAY)
    assert gb.rate_units == 2100
    assert quote(facility, NY, AC, 60, TODAY).termination_units == 0
    plain = make_facility(rate=600)
    assert quote(plain, MX, AC, 60, TODAY).rate_units == 600


def test_per_call_ancillary_fee_only_in_its_dates() -> None:
    fee = AncillaryFee("Single call fee", AncillaryKind.SINGLE_CALL, AncillaryTrigger.CALL, 30000,
                       DateRange(None, date(2024, 12, 31)), frozenset({Product.SINGLE_CALL}))
    facility = make_facility(rate=600, ancillary=(fee,))
    old = quote(facility, TX, Product.SINGLE_CALL, 60, date(2024, 6, 1))
    assert [(f.name, f.category, f.amount_units) for f in old.fees] == [
        ("Single call fee", FeeCategory.ANCILLARY, 30000)]
    assert quote(facility, TX, Product.SINGLE_CALL, 60, TODAY).fees == ()
    assert quote(facility, TX, AC, 60, date(2024, 6, 1)).fees == ()


def test_deposit_fees_follow_their_dates_and_products() -> None:
    fee = AncillaryFee("Automated payment fee", AncillaryKind.AUTOMATED_PAYMENT,
                       AncillaryTrigger.DEPOSIT, 30000, DateRange(date(2021, 10, 26),
                       date(2024, 12, 31)), frozenset({AC}))
    facility = make_facility(ancillary=(fee,))
    assert [f.amount_units for f in deposit_fees(facility, AC, date(2023, 1, 1))] == [30000]
    assert deposit_fees(facility, AC, TODAY) == ()
    assert deposit_fees(facility, Product.DEBIT, date(2023, 1, 1)) == ()
    # Deposit fees never appear on a call.
    assert quote(facility, TX, AC, 60, date(2023, 1, 1)).fees == ()


def test_datetime_counts_on_its_own_calendar_day() -> None:
    line = Surcharge("Add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, 200,
                     allowed=DateRange(date(2026, 4, 6), None))
    facility = make_facility(surcharges=(line,))
    central = timezone(timedelta(hours=-5))
    late_on_5th = datetime(2026, 4, 5, 23, 30, tzinfo=central)
    assert quote(facility, TX, AC, 60, late_on_5th).fees == ()
    assert len(quote(facility, TX, AC, 60, late_on_5th + timedelta(hours=1)).fees) == 1


def test_errors_name_the_field() -> None:
    facility = make_facility(rates=flat_rates(600, [AC]))
    with pytest.raises(ProductNotOffered) as info:
        quote(facility, TX, Product.DEBIT, 60, TODAY)
    assert info.value.field == "product"
    with pytest.raises(RatingError) as info2:
        quote(facility, TX, AC, -1, TODAY)
    assert info2.value.field == "seconds"
    with pytest.raises(InvalidNumber):
        quote(facility, "nonsense", AC, 60, TODAY)
    with pytest.raises(RatingError) as info4:
        quote(facility, TX, "collect", 60, TODAY)  # type: ignore[arg-type]
    assert info4.value.field == "product"
    with pytest.raises(RatingError) as info3:
        max_affordable_seconds(facility, TX, AC, -5, TODAY)
    assert info3.value.field == "budget"


# -- max_affordable_seconds -------------------------------------------------

@settings(max_examples=250, deadline=None)
@given(facility=surcharged_facilities(max_minutes=60), number=st.sampled_from([TX, NY, MX]),
       budget=st.integers(0, 200_000))
def test_max_affordable_seconds_is_exactly_consistent_with_quote(
    facility: RatedFacility, number: str, budget: int
) -> None:
    cap = facility.max_call_seconds
    best = max_affordable_seconds(facility, number, AC, budget, TODAY)
    increment = facility.tariff.increment_seconds
    limit = cap or MAX_QUOTED_SECONDS
    assert best % increment == 0
    assert 0 <= best <= limit
    assert quote(facility, number, AC, best, TODAY).total_units <= budget
    if best + increment <= limit:
        assert quote(facility, number, AC, best + increment, TODAY).total_units > budget
    else:
        assert best == limit


def test_max_affordable_seconds_demo_numbers(demo: object) -> None:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    tx = demo.facility("tx-state-prison").rated
    # $25.00 at $0.06/min buys more than the 20-minute limit.
    assert max_affordable_seconds(tx, TX, AC, 250_000, TODAY) == 1200
    # $0.30 buys exactly 5 minutes.
    assert max_affordable_seconds(tx, TX, AC, 3000, TODAY) == 300
    assert max_affordable_seconds(tx, TX, AC, 2999, TODAY) == 240
    assert max_affordable_seconds(tx, TX, AC, 0, TODAY) == 0
    # A subscription call has no per-minute charge: the facility limit applies.
    assert max_affordable_seconds(tx, TX, Product.SUBSCRIPTION, 0, TODAY) == 1200


def test_zero_rate_without_facility_limit_is_bounded_by_a_day() -> None:
    facility = make_facility(rate=0)
    assert max_affordable_seconds(facility, TX, AC, 0, TODAY) == MAX_QUOTED_SECONDS


def test_round_ratio_to_cent_half_up() -> None:
    assert round_ratio_to_cent(50 * 60, 60) == 100
    assert round_ratio_to_cent(49 * 60 + 59, 60) == 0
    assert round_ratio_to_cent(-50 * 60, 60) == -100


# -- quote document --------------------------------------------------------


def test_quote_document_matches_the_design_contract(demo: object) -> None:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    doc = quote_document(demo.facility("tx-state-prison").rated, "5125550100", 15, TODAY)
    json.dumps(doc)  # serialisable as is
    assert doc["facility"] == "tx-state-prison"
    assert doc["number"] == "+15125550100"
    assert doc["minutes"] == 15
    assert doc["jurisdiction"] == "intrastate"
    assert doc["cap_per_minute"] == "0.11"
    quotes = doc["quotes"]
    assert isinstance(quotes, list)
    first = quotes[0]
    assert first["product"] == "advance_connect"
    assert (first["rate_per_minute"], first["billed_minutes"], first["charge"], first["total"]) == (
        "0.0600", 15, "0.90", "0.90")
    assert first["fees"] == [] and first["taxes"] == []
    assert {q["product"] for q in quotes} == {p.value for p in Product}


def test_quote_document_omits_single_call_where_not_allowed(demo: object) -> None:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    ak = demo.facility("ak-regional-jail").rated
    doc = quote_document(ak, "+19072690100", 10, TODAY)
    assert doc["jurisdiction"] == "local"
    assert doc["cap_per_minute"] == "0.12"
    products = [q["product"] for q in doc["quotes"]]  # type: ignore[attr-defined]
    assert "single_call" not in products and "advance_connect" in products


def test_quote_document_cap_absent_where_no_federal_cap(demo: object) -> None:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    tx = demo.facility("tx-state-prison").rated
    # The 2021 caps covered interstate and international calls only.
    assert quote_document(tx, TX, 5, date(2023, 1, 1))["cap_per_minute"] is None
    assert quote_document(tx, NY, 5, date(2023, 1, 1))["cap_per_minute"] == "0.12"
    assert quote_document(tx, TX, 5, date(2020, 1, 1))["cap_per_minute"] is None


@pytest.mark.parametrize("minutes", [0, -1, 1441, True, "15"])
def test_quote_document_rejects_bad_minutes(minutes: object) -> None:
    with pytest.raises(RatingError) as info:
        quote_document(make_facility(), TX, minutes, TODAY)  # type: ignore[arg-type]
    assert info.value.field == "minutes"
