"""Regulatory rate caps as data: FCC audio cap tables by facility type and size.

A ``CapTable`` is one order's caps (47 CFR 64.6030 and predecessors) with the
day compliance began, the jurisdictions it covers, the per-minute facility
add-on it permits for each tier, and the separate ancillary charges it bans
or limits. A ``CapSchedule`` holds the tables in date order; the table in
force on a day is the latest one whose ``effective_from`` is on or before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from rating.jurisdiction import Jurisdiction
from rating.tariff import AncillaryKind, FacilityKind


@dataclass(frozen=True, slots=True)
class CapTier:
    """One row of a cap table: a facility kind and a population band.

    ``min_adp``/``max_adp`` are inclusive bounds on the average daily
    population (``max_adp`` None: no upper bound).
    """

    label: str
    kind: FacilityKind
    min_adp: int
    max_adp: int | None
    cap: int
    add_on_max: int = 0

    def matches(self, kind: FacilityKind, adp: int) -> bool:
        return (
            kind is self.kind
            and adp >= self.min_adp
            and (self.max_adp is None or adp <= self.max_adp)
        )


@dataclass(frozen=True, slots=True)
class CapTable:
    """The caps of one order, in units per minute.

    ``ancillary_banned``: every separate ancillary charge is prohibited.
    ``ancillary_limits``: the most each named ancillary fee may be; kinds
    not listed (third-party pass-throughs) are allowed at cost.
    """

    name: str
    source: str
    effective_from: date
    jurisdictions: frozenset[Jurisdiction]
    tiers: tuple[CapTier, ...]
    ancillary_banned: bool = False
    ancillary_limits: Mapping[AncillaryKind, int] = field(default_factory=dict)
    notes: str = ""

    def tier_for(self, kind: FacilityKind, adp: int) -> CapTier | None:
        for tier in self.tiers:
            if tier.matches(kind, adp):
                return tier
        return None


@dataclass(frozen=True, slots=True)
class CapSchedule:
    """Cap tables in effective-date order."""

    tables: tuple[CapTable, ...]

    def __post_init__(self) -> None:
        days = [t.effective_from for t in self.tables]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("cap tables must have distinct effective dates in ascending order")

    def in_force(self, day: date) -> CapTable | None:
        current = None
        for table in self.tables:
            if table.effective_from <= day:
                current = table
        return current

    def until(self, table: CapTable) -> date | None:
        """Last day ``table`` is in force (None while no later table exists)."""
        later = [t.effective_from for t in self.tables if t.effective_from > table.effective_from]
        return date.fromordinal(min(later).toordinal() - 1) if later else None

    def cap_for(
        self, kind: FacilityKind, adp: int, jurisdiction: Jurisdiction, day: date
    ) -> tuple[CapTable, CapTier] | None:
        """The table and tier capping such a call on ``day``, if any cap applies."""
        table = self.in_force(day)
        if table is None or jurisdiction not in table.jurisdictions:
            return None
        tier = table.tier_for(kind, adp)
        return None if tier is None else (table, tier)
