"""Builders for rating tests: tariffs and facilities made in code."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

from rating import (
    AncillaryFee,
    CapSchedule,
    FacilityKind,
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
