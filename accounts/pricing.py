"""Call pricing for authorization and settlement, cached: exactly rating's answers, computed once.

Rating is pure: a number's classification depends only on the facility and
the number, a quote only on the facility's tariff, the product, the
jurisdiction, the termination cost, the length and the calendar day. So
each answer is kept in a bounded least-recently-used cache keyed by exactly
those inputs, and a new day (a fee starting or ending) is a new key, never a
stale hit. The facilities are fixed when the pricer is made; a changed
tariff comes with a new service and so a new pricer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache

from accounts.policy import FacilityPolicy
from rating import (
    CalledNumber,
    Jurisdiction,
    PriceSchedule,
    Product,
    Quote,
    classify,
    price_schedule,
    rate_call,
)

#: Classified numbers kept (one per facility and number dialled).
NUMBERS_CACHED = 100_000
#: Quotes kept (one per facility, product, jurisdiction, length and day).
QUOTES_CACHED = 16_384
#: Price schedules kept (one per facility, product, jurisdiction and day).
SCHEDULES_CACHED = 1_024


class CallPricer:
    """Classification, quotes and affordable call lengths for a fixed set of facilities."""

    def __init__(self, facilities: Mapping[str, FacilityPolicy]) -> None:
        self._facilities = dict(facilities)
        self._classify = lru_cache(maxsize=NUMBERS_CACHED)(self._classify_uncached)
        self._quote = lru_cache(maxsize=QUOTES_CACHED)(self._quote_uncached)
        self._schedule = lru_cache(maxsize=SCHEDULES_CACHED)(self._schedule_uncached)

    # -- uncached answers (rating's own functions) ---------------------------------
    def _classify_uncached(self, facility_id: str, number: str) -> CalledNumber:
        return classify(self._facilities[facility_id].rated, number)

    def _quote_uncached(
        self,
        facility_id: str,
        product: Product,
        jurisdiction: Jurisdiction,
        termination: int,
        seconds: int,
        day: date,
    ) -> Quote:
        rated = self._facilities[facility_id].rated
        return rate_call(rated, product, jurisdiction, seconds, day, termination)

    def _schedule_uncached(
        self,
        facility_id: str,
        product: Product,
        jurisdiction: Jurisdiction,
        termination: int,
        day: date,
    ) -> PriceSchedule:
        facility = self._facilities[facility_id]
        return price_schedule(
            facility.rated,
            product,
            jurisdiction,
            day,
            termination,
            limit_seconds=facility.max_call_seconds,
        )

    # -- what the service asks -----------------------------------------------------
    def classify(self, facility: FacilityPolicy, number: str) -> CalledNumber:
        """The number placed relative to the facility (``InvalidNumber`` if not)."""
        return self._classify(facility.id, number)

    def _termination(self, facility: FacilityPolicy, called: CalledNumber) -> int:
        if called.jurisdiction is Jurisdiction.INTERNATIONAL:
            return facility.rated.tariff.termination(called.region)
        return 0

    def quote(
        self,
        facility: FacilityPolicy,
        called: CalledNumber,
        product: Product,
        seconds: int,
        at: datetime,
    ) -> Quote:
        """``rating.quote`` of the call (``ProductNotOffered`` if the tariff has no rate)."""
        return self._quote(
            facility.id,
            product,
            called.jurisdiction,
            self._termination(facility, called),
            seconds,
            at.date(),
        )

    def longest_call(
        self,
        facility: FacilityPolicy,
        called: CalledNumber,
        product: Product,
        budget_units: int,
        at: datetime,
    ) -> int:
        """``min(rating.max_affordable_seconds(...), facility.max_call_seconds)``.

        ``ProductNotOffered`` if the tariff has no rate for the call.
        """
        schedule = self._schedule(
            facility.id,
            product,
            called.jurisdiction,
            self._termination(facility, called),
            at.date(),
        )
        return min(schedule.max_affordable_seconds(budget_units), facility.max_call_seconds)
