"""What rating needs to know of a facility: kind, size, state and tariff."""

from __future__ import annotations

from dataclasses import dataclass

from rating.caps import CapSchedule
from rating.tariff import FacilityKind, Tariff


@dataclass(frozen=True, slots=True)
class RatedFacility:
    """A facility as rating sees it.

    ``regulation`` is the cap schedule the tariff must respect (reported in
    quote documents and enforced by ``check_facility``); ``max_call_seconds``
    bounds ``max_affordable_seconds`` and must be whole billing increments.
    """

    id: str
    name: str
    kind: FacilityKind
    state: str
    average_daily_population: int
    tariff: Tariff
    regulation: CapSchedule | None = None
    max_call_seconds: int | None = None
    single_call_allowed: bool = True

    def __post_init__(self) -> None:
        if self.average_daily_population < 0:
            raise ValueError("average_daily_population must not be negative")
        if self.max_call_seconds is not None and (
            self.max_call_seconds <= 0 or self.max_call_seconds % self.tariff.increment_seconds
        ):
            raise ValueError(
                f"max_call_seconds: {self.max_call_seconds} must be a positive whole number "
                f"of {self.tariff.increment_seconds}-second billing increments"
            )
