"""Regulatory caps: the shipped FCC tables, and a rejection for every tier of every table."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import pytest
from rating_builders import REPO, flat_rates, make_facility

from rating import (
    AncillaryFee,
    AncillaryKind,
    AncillaryTrigger,
    CapSchedule,
    DateRange,
    FacilityKind,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    Surcharge,
    check_facility,
)
from settings.config import load_regulation

PRISON, JAIL = FacilityKind.PRISON, FacilityKind.JAIL
D2021, D2024, D2025 = date(2021, 10, 26), date(2025, 1, 1), date(2026, 4, 6)
ALL = frozenset(Jurisdiction)
OUT_OF_STATE = frozenset({Jurisdiction.INTERSTATE, Jurisdiction.INTERNATIONAL})


class Tier(NamedTuple):
    """One tier of a shipped cap table, as the tests expect to find it."""

    day: date
    kind: FacilityKind
    lo: int  # smallest ADP
    hi: int  # largest ADP
    cap: int
    add_on: int
    jurisdictions: frozenset[Jurisdiction]


TIERS = [
    Tier(D2021, PRISON, 0, 50_000, 1200, 200, OUT_OF_STATE),
    Tier(D2021, JAIL, 1000, 50_000, 1400, 200, OUT_OF_STATE),
    Tier(D2021, JAIL, 0, 999, 2100, 0, OUT_OF_STATE),
    Tier(D2024, PRISON, 0, 50_000, 600, 0, ALL),
    Tier(D2024, JAIL, 1000, 50_000, 600, 0, ALL),
    Tier(D2024, JAIL, 350, 999, 700, 0, ALL),
    Tier(D2024, JAIL, 100, 349, 900, 0, ALL),
    Tier(D2024, JAIL, 0, 99, 1200, 0, ALL),
    Tier(D2025, PRISON, 0, 50_000, 1100, 200, ALL),
    Tier(D2025, JAIL, 1000, 50_000, 1000, 200, ALL),
    Tier(D2025, JAIL, 350, 999, 1200, 200, ALL),
    Tier(D2025, JAIL, 100, 349, 1300, 200, ALL),
    Tier(D2025, JAIL, 50, 99, 1500, 200, ALL),
    Tier(D2025, JAIL, 0, 49, 1900, 200, ALL),
]


@pytest.fixture(params=TIERS, ids=lambda t: f"{t.day}-{t.kind}-{t.lo}")
def tier(request: pytest.FixtureRequest) -> Tier:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schedule() -> CapSchedule:
    return load_regulation(sorted((REPO / "configs" / "regulation").glob("*.toml")))


def test_shipped_tables_and_dates(schedule: CapSchedule) -> None:
    assert [t.effective_from for t in schedule.tables] == [D2021, D2024, D2025]
    assert schedule.in_force(date(2021, 10, 25)) is None
    assert schedule.in_force(date(2024, 12, 31)) is schedule.tables[0]
    assert schedule.in_force(date(2026, 4, 5)) is schedule.tables[1]
    assert schedule.in_force(date(2026, 11, 25)) is schedule.tables[2]
    assert schedule.until(schedule.tables[0]) == date(2024, 12, 31)
    assert schedule.until(schedule.tables[2]) is None
    assert [t.ancillary_banned for t in schedule.tables] == [False, True, True]
    for table in schedule.tables:
        assert table.source  # every table cites its source


def test_every_tier_accepts_its_cap_and_rejects_a_hair_above(
    schedule: CapSchedule, tier: Tier
) -> None:
    day, kind, lo, hi, cap, add_on, jurisdictions = tier
    for adp in (lo, hi):
        table, tier = schedule.cap_for(kind, adp, Jurisdiction.INTERSTATE, day) or (None, None)
        assert tier is not None and (tier.cap, tier.add_on_max) == (cap, add_on)
        at_cap = make_facility(rate=cap, kind=kind, adp=adp, regulation=schedule)
        assert check_facility(at_cap, day) == []
        for jurisdiction in Jurisdiction:
            rates = flat_rates(cap)
            rates[Product.DEBIT][jurisdiction] = cap + 1
            above = make_facility(rates=rates, kind=kind, adp=adp, regulation=schedule)
            violations = check_facility(above, day)
            if jurisdiction not in jurisdictions:
                assert violations == []  # that table did not cap this jurisdiction
                continue
            assert len(violations) == 1
            v = violations[0]
            assert (v.rule, v.product, v.jurisdiction) == ("rate_cap", Product.DEBIT, jurisdiction)
            assert (v.amount_units, v.limit_units) == (cap + 1, cap)
            assert "test-facility" in v.message
            assert "debit" in v.message and str(jurisdiction) in v.message
            assert f"{(cap + 1) / 10000:.4f}" in v.message
            assert table is not None and table.name in v.message


def test_facility_add_on_limit_per_tier(schedule: CapSchedule, tier: Tier) -> None:
    def with_add_on(units: int) -> list[str]:
        line = Surcharge("add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, units,
                         jurisdictions=tier.jurisdictions)
        facility = make_facility(rate=tier.cap, kind=tier.kind, adp=tier.lo, regulation=schedule,
                                 surcharges=(line,))
        return [v.rule for v in check_facility(facility, tier.day)]

    if tier.add_on:
        assert with_add_on(tier.add_on) == []
    assert set(with_add_on(tier.add_on + 1)) == {"facility_add_on"}


def test_add_on_outside_its_dates_is_not_counted(schedule: CapSchedule) -> None:
    line = Surcharge("add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, 200,
                     allowed=DateRange(D2025, None))
    facility = make_facility(rate=600, regulation=schedule, surcharges=(line,))
    assert check_facility(facility, date(2025, 6, 1)) == []
    assert check_facility(facility, D2025) == []


ALWAYS = DateRange()


def _fee(kind: AncillaryKind, amount: int, allowed: DateRange = ALWAYS) -> AncillaryFee:
    return AncillaryFee("fee", kind, AncillaryTrigger.DEPOSIT, amount, allowed)


def test_ancillary_fees_banned_in_2024_and_2025(schedule: CapSchedule) -> None:
    facility = make_facility(rate=600, regulation=schedule,
                             ancillary=(_fee(AncillaryKind.AUTOMATED_PAYMENT, 100),))
    for day in (D2024, D2025, date(2026, 11, 25)):
        violations = check_facility(facility, day)
        assert [v.rule for v in violations] == ["ancillary_banned"]
        assert "bans separate ancillary" in violations[0].message
    assert check_facility(facility, date(2023, 1, 1)) == []


def test_ancillary_fee_ending_before_the_ban_passes(schedule: CapSchedule) -> None:
    fee = _fee(AncillaryKind.AUTOMATED_PAYMENT, 30000, DateRange(D2021, date(2024, 12, 31)))
    facility = make_facility(rate=600, regulation=schedule, ancillary=(fee,))
    for day in (D2021, date(2024, 12, 31), D2024, D2025):
        assert check_facility(facility, day) == []


@pytest.mark.parametrize(
    ("kind", "limit"),
    [
        (AncillaryKind.AUTOMATED_PAYMENT, 30000),
        (AncillaryKind.LIVE_AGENT, 59500),
        (AncillaryKind.PAPER_BILL, 20000),
        (AncillaryKind.SINGLE_CALL, 69500),
        (AncillaryKind.THIRD_PARTY_TRANSACTION, 69500),
    ],
)
def test_2021_ancillary_limits(schedule: CapSchedule, kind: AncillaryKind, limit: int) -> None:
    ok = make_facility(regulation=schedule, ancillary=(_fee(kind, limit),))
    assert check_facility(ok, date(2023, 1, 1)) == []
    over = make_facility(regulation=schedule, ancillary=(_fee(kind, limit + 100),))
    assert [v.rule for v in check_facility(over, date(2023, 1, 1))] == ["ancillary_limit"]


def test_international_termination_is_on_top_of_the_cap(schedule: CapSchedule) -> None:
    facility = make_facility(rate=1100, termination={"*": 5000}, regulation=schedule)
    assert check_facility(facility, date(2026, 11, 25)) == []


def test_no_regulation_or_before_any_table_means_no_check() -> None:
    facility = make_facility(rate=99_999)
    assert check_facility(facility, date(2026, 11, 25)) == []


def test_demo_tariffs_pass_the_caps_in_force_today(demo: object) -> None:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    for facility in demo.facilities.values():
        assert check_facility(facility.rated, date(2026, 11, 25)) == []
