"""Price schedules: every whole-increment length of one kind of call, priced once per day.

Authorizing a call asks "how long a call does this balance pay for?" for
every call. ``max_affordable_seconds`` answers by pricing a dozen call
lengths; a ``PriceSchedule`` prices each length once, with ``rate_call``
itself, so that the answer becomes a binary search over integers. It is
exactly ``max_affordable_seconds`` by construction, never an approximation:
the totals are ``rate_call``'s totals, and totals never fall as a call gets
longer (rates, fees and taxes are never negative).

A schedule holds for one facility tariff, product, jurisdiction,
termination cost and calendar day (fee lines are judged per day), so a
caller may keep it for as long as those stay the same.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime

from rating.errors import RatingError
from rating.facility import RatedFacility
from rating.jurisdiction import Jurisdiction
from rating.quote import MAX_QUOTED_SECONDS, day_of, rate_call
from rating.tariff import Product


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """Totals of calls of 0, 1, 2, ... billing increments, up to ``limit_seconds``.

    ``totals[n]`` is ``rate_call(...).total_units`` of a call of
    ``n * increment_seconds`` seconds on ``day``.
    """

    product: Product
    jurisdiction: Jurisdiction
    termination_units: int
    day: date
    increment_seconds: int
    totals: tuple[int, ...]

    @property
    def limit_seconds(self) -> int:
        """The longest call the schedule prices."""
        return (len(self.totals) - 1) * self.increment_seconds

    def max_affordable_seconds(self, budget_units: int) -> int:
        """The longest call up to ``limit_seconds`` whose total ``budget_units`` pays for.

        Equal to ``min(max_affordable_seconds(...), limit_seconds)`` for the
        same facility, number, product, budget and day.
        """
        if isinstance(budget_units, bool) or not isinstance(budget_units, int):
            raise RatingError(f"budget must be a whole number, not {budget_units!r}",
                              field="budget")
        if budget_units < 0:
            raise RatingError("budget must not be negative", field="budget")
        # totals[0] is 0, so at least one entry is within any budget.
        return (bisect_right(self.totals, budget_units) - 1) * self.increment_seconds


def price_schedule(
    facility: RatedFacility,
    product: Product,
    jurisdiction: Jurisdiction,
    at: date | datetime,
    termination_units: int = 0,
    *,
    limit_seconds: int | None = None,
) -> PriceSchedule:
    """Price every whole-increment call length up to the facility's limit.

    ``limit_seconds`` shortens the schedule (a caller that never allows a
    longer call need not price one); it is rounded up to whole increments
    and never exceeds the facility's own limit (or one day).
    ``ProductNotOffered`` if the tariff has no rate for the product and
    jurisdiction.
    """
    increment = facility.tariff.increment_seconds
    limit = facility.max_call_seconds or MAX_QUOTED_SECONDS
    if limit_seconds is not None:
        if isinstance(limit_seconds, bool) or not isinstance(limit_seconds, int):
            raise RatingError(f"limit_seconds must be a whole number, not {limit_seconds!r}",
                              field="limit_seconds")
        if limit_seconds <= 0:
            raise RatingError("limit_seconds must be positive", field="limit_seconds")
        limit = min(limit, -(-limit_seconds // increment) * increment)
    day = day_of(at)
    first = rate_call(facility, product, jurisdiction, 0, day, termination_units)
    totals = [first.total_units] + [
        rate_call(facility, product, jurisdiction, n * increment, day, termination_units)
        .total_units
        for n in range(1, limit // increment + 1)
    ]
    return PriceSchedule(
        product=first.product,
        jurisdiction=jurisdiction,
        termination_units=first.termination_units,
        day=day,
        increment_seconds=increment,
        totals=tuple(totals),
    )
