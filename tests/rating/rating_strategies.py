"""Hypothesis strategies for rating property tests."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st
from rating_builders import make_facility

from rating import DateRange, FeeBasis, FeeCategory, RatedFacility, Surcharge


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
