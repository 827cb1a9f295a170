"""Builders for rating tests: tariffs and facilities made in code."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

from hypothesis import strategies as st

from rating import (
    AncillaryFee,
    CapSchedule,
    DateRange,
    FacilityKind,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    RatedFacility,
    Surcharge,
    Tariff,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.toml"
TODAY = date(2026, 11, 25)


def flat_rates(units: int, products: Iterable[Product] = tuple(Product)) -> dict[
    Product, dict[Jurisdiction, int]
]:
    return {p: dict.fromkeys(Jurisdiction, units) for p in products}


def make_facility(
    *,
    rate: int = 600,
    rates: dict[Product, dict[Jurisdiction, int]] | None = None,
    increment: int = 60,
    surcharges: tuple[Surcharge, ...] = (),
    ancillary: tuple[AncillaryFee, ...] = (),
    termination: dict[str, int] | None = None,
    local: tuple[str, ...] = (),
    kind: FacilityKind = FacilityKind.PRISON,
    adp: int = 1800,
    state: str = "TX",
    regulation: CapSchedule | None = None,
    max_call_seconds: int | None = None,
) -> RatedFacility:
    tariff = Tariff(
        name="test tariff",
        increment_seconds=increment,
        rates=rates if rates is not None else flat_rates(rate),
        surcharges=surcharges,
        ancillary_fees=ancillary,
        international_termination=termination or {},
        local_prefixes=local,
    )
    return RatedFacility(
        id="test-facility",
        name="Test Facility",
        kind=kind,
        state=state,
        average_daily_population=adp,
        tariff=tariff,
        regulation=regulation,
        max_call_seconds=max_call_seconds,
    )


def surcharged_facilities(
    *, max_minutes: int, fee_ends: st.SearchStrategy[date | None] | None = None
) -> st.SearchStrategy[RatedFacility]:
    """Facilities with any rate and increment, a percent tax, a per-call fee (that may
    end on a day drawn from ``fee_ends``), a per-minute add-on, international
    termination at $0.07 a minute, and no cap or one of up to ``max_minutes``."""

    @st.composite
    def build(draw: st.DrawFn) -> RatedFacility:
        rate = draw(st.integers(0, 3000))
        increment = draw(st.sampled_from([1, 6, 30, 60]))
        pct = draw(st.integers(0, 400_000))
        per_call = draw(st.integers(0, 500))
        per_minute = draw(st.integers(0, 200))
        cap_minutes = draw(st.one_of(st.none(), st.integers(1, max_minutes)))
        ends = None if fee_ends is None else draw(fee_ends)
        lines = (
            Surcharge("tax", FeeCategory.MANDATORY_TAX, FeeBasis.PERCENT, pct),
            Surcharge("per call", FeeCategory.AUTHORIZED_FEE, FeeBasis.PER_CALL, per_call,
                      allowed=DateRange(end=ends)),
            Surcharge("add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, per_minute),
        )
        return make_facility(
            rate=rate,
            increment=increment,
            surcharges=lines,
            termination={"*": 700},
            max_call_seconds=None if cap_minutes is None else cap_minutes * 60,
        )

    return build()
