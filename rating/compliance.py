"""Check a facility's tariff against the regulatory caps in force on a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from rating.facility import RatedFacility
from rating.jurisdiction import Jurisdiction
from rating.money import cents_str, price_str, rate_str, round_to_cent
from rating.tariff import FeeCategory, Product


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a tariff breaks the rules in force; ``message`` says it all."""

    facility: str
    rule: str
    message: str
    product: Product | None = None
    jurisdiction: Jurisdiction | None = None
    amount_units: int | None = None
    limit_units: int | None = None

    def __str__(self) -> str:
        return self.message


def check_facility(facility: RatedFacility, day: date) -> list[Violation]:
    """Every violation of the cap table in force on ``day`` (empty: compliant).

    Checked: each product's rate per jurisdiction the table covers against
    the cap of the facility's tier (an international rate's termination
    component is on top of the cap and not checked), the per-minute
    facility add-ons against the add-on the tier permits, and every
    ancillary fee charged that day against the table's ban or limits.
    """
    schedule = facility.regulation
    if schedule is None:
        return []
    table = schedule.in_force(day)
    if table is None:
        return []
    fid = facility.id
    where = f"{table.name}, in force on {day.isoformat()}"
    tier = table.tier_for(facility.kind, facility.average_daily_population)
    if tier is None:
        return [
            Violation(
                fid,
                "tier",
                f"facility {fid}: no tier of {where} covers a {facility.kind} with an "
                f"average daily population of {facility.average_daily_population}",
            )
        ]
    violations: list[Violation] = []
    tariff = facility.tariff
    for product in tariff.products:
        for jurisdiction in Jurisdiction:
            if jurisdiction not in table.jurisdictions:
                continue
            rate = tariff.rates[product].get(jurisdiction)
            if rate is not None and rate > tier.cap:
                violations.append(
                    Violation(
                        fid,
                        "rate_cap",
                        f"facility {fid}: product {product}, {jurisdiction} rate "
                        f"{rate_str(rate)} per minute exceeds the cap of {price_str(tier.cap)} "
                        f"for {tier.label} ({where}; source: {table.source})",
                        product,
                        jurisdiction,
                        rate,
                        tier.cap,
                    )
                )
            add_on = sum(
                line.value
                for line in tariff.lines_by_key[(product, jurisdiction)]
                if line.category is FeeCategory.FACILITY_ADD_ON and line.allowed.contains(day)
            )
            if add_on > tier.add_on_max:
                violations.append(
                    Violation(
                        fid,
                        "facility_add_on",
                        f"facility {fid}: product {product}, {jurisdiction} facility add-on "
                        f"{rate_str(add_on)} per minute exceeds the {price_str(tier.add_on_max)} "
                        f"permitted for {tier.label} ({where})",
                        product,
                        jurisdiction,
                        add_on,
                        tier.add_on_max,
                    )
                )
    for fee in tariff.ancillary_fees:
        if not fee.allowed.contains(day):
            continue
        if table.ancillary_banned:
            violations.append(
                Violation(
                    fid,
                    "ancillary_banned",
                    f"facility {fid}: ancillary fee {fee.name!r} ({fee.kind}, "
                    f"{cents_str(round_to_cent(fee.amount))}) is charged on a day when "
                    f"{table.name} bans separate ancillary service charges "
                    f"({where}; source: {table.source})",
                    amount_units=fee.amount,
                    limit_units=0,
                )
            )
            continue
        limit = table.ancillary_limits.get(fee.kind)
        if limit is not None and fee.amount > limit:
            violations.append(
                Violation(
                    fid,
                    "ancillary_limit",
                    f"facility {fid}: ancillary fee {fee.name!r} ({fee.kind}) of "
                    f"{cents_str(round_to_cent(fee.amount))} exceeds the "
                    f"{cents_str(round_to_cent(limit))} limit of {where}",
                    amount_units=fee.amount,
                    limit_units=limit,
                )
            )
    return violations
