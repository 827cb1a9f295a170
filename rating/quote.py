"""Quotes: the itemized price of a call, and the longest call a budget pays for.

The arithmetic, in integer money units (``rating.money``):

* ``billed_units = ceil(seconds / increment)`` (0 for a call of 0 seconds),
  so rounding up never adds more than one increment;
* ``charge = rate * billed_seconds / 60`` rounded once to the cent, half-up;
  an international rate is the tariff rate plus the destination's
  termination cost;
* each tax and fee line in force on the call's day is rounded to the cent,
  half-up, on its own: a percentage of the rounded charge, a fixed amount
  per call, or an amount per billed minute (pro rata by the second);
* ``total`` is the sum of the rounded lines. A call of 0 seconds costs 0.

``rating.rerate`` repeats exactly this arithmetic on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from rating.errors import ProductNotOffered, RatingError
from rating.facility import RatedFacility
from rating.jurisdiction import CalledNumber, Jurisdiction, classify_number
from rating.money import (
    apply_pct,
    cents_str,
    price_str,
    rate_str,
    round_ratio_to_cent,
    round_to_cent,
)
from rating.tariff import FeeBasis, FeeCategory, Product, Surcharge, Tariff

#: Longest call priced when a facility sets no limit of its own (one day).
MAX_QUOTED_SECONDS: Final = 86_400
#: Largest number of minutes a quote document may be asked for.
MAX_QUOTED_MINUTES: Final = MAX_QUOTED_SECONDS // 60


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One named fee or tax on a quote, rounded to the cent."""

    name: str
    category: FeeCategory
    amount_units: int

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "category": str(self.category),
                "amount": cents_str(self.amount_units)}


@dataclass(frozen=True, slots=True)
class Quote:
    """The itemized charge of one call.

    ``rate_units`` is per minute (termination included); ``billed_units`` is
    the count of billing increments of ``increment_seconds``.
    """

    product: Product
    jurisdiction: Jurisdiction
    rate_units: int
    increment_seconds: int
    billed_units: int
    seconds: int
    charge_units: int
    fees: tuple[ChargeLine, ...]
    taxes: tuple[ChargeLine, ...]
    total_units: int
    termination_units: int = 0

    @property
    def billed_seconds(self) -> int:
        return self.billed_units * self.increment_seconds

    @property
    def fees_units(self) -> int:
        return sum(line.amount_units for line in self.fees)

    @property
    def taxes_units(self) -> int:
        return sum(line.amount_units for line in self.taxes)

    def to_json(self) -> dict[str, object]:
        """The quote as JSON-ready data: money as decimal strings, counts as integers.

        ``billed_minutes`` counts minutes started; ``billed_seconds`` is exact.
        ``rate_per_minute`` is ``capped_rate_per_minute`` (what a cap limits) plus
        ``termination_per_minute`` (an international destination's cost, allowed
        on top of the cap).
        """
        return {
            "product": str(self.product),
            "jurisdiction": str(self.jurisdiction),
            "rate_per_minute": rate_str(self.rate_units),
            "termination_per_minute": rate_str(self.termination_units),
            # The rate the caps judge; an international call adds its termination on top.
            "capped_rate_per_minute": rate_str(self.rate_units - self.termination_units),
            "increment_seconds": self.increment_seconds,
            "billed_increments": self.billed_units,
            "billed_seconds": self.billed_seconds,
            "billed_minutes": -(-self.billed_seconds // 60),
            "charge": cents_str(self.charge_units),
            "fees": [line.to_json() for line in self.fees],
            "taxes": [line.to_json() for line in self.taxes],
            "total": cents_str(self.total_units),
        }


def day_of(at: date | datetime) -> date:
    """The calendar day rules and fee date ranges are judged on.

    A ``datetime`` counts in its own offset: callers pass the facility's
    local time when the day matters to them.
    """
    return at.date() if isinstance(at, datetime) else at


def _line_amount(line: Surcharge, charge: int, billed_seconds: int) -> int:
    if line.basis is FeeBasis.PERCENT:
        return apply_pct(charge, line.value)
    if line.basis is FeeBasis.PER_CALL:
        return round_to_cent(line.value)
    return round_ratio_to_cent(line.value * billed_seconds, 60)


def _rate_units(tariff: Tariff, product: Product, jurisdiction: Jurisdiction) -> int:
    by_jurisdiction = tariff.rates.get(product)
    if by_jurisdiction is None:
        raise ProductNotOffered(f"product {product} is not offered by tariff {tariff.name!r}")
    units = by_jurisdiction.get(jurisdiction)
    if units is None:
        raise ProductNotOffered(
            f"tariff {tariff.name!r} has no {jurisdiction} rate for product {product}"
        )
    return units


def _product(product: Product | str) -> Product:
    try:
        return Product(product)
    except ValueError:
        known = ", ".join(p.value for p in Product)
        message = f"unknown product {product!r} (one of {known})"
        raise RatingError(message, field="product") from None


def _check_seconds(seconds: int, field: str = "seconds") -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise RatingError(f"{field} must be a whole number, not {seconds!r}", field=field)
    if seconds < 0:
        raise RatingError(f"{field} must not be negative", field=field)


def rate_call(
    facility: RatedFacility,
    product: Product,
    jurisdiction: Jurisdiction,
    seconds: int,
    at: date | datetime,
    termination_units: int = 0,
) -> Quote:
    """Price a call whose jurisdiction is already known (the scalar engine)."""
    _check_seconds(seconds)
    tariff = facility.tariff
    product = _product(product)
    rate = _rate_units(tariff, product, jurisdiction)
    if jurisdiction is not Jurisdiction.INTERNATIONAL:
        termination_units = 0
    rate += termination_units
    increment = tariff.increment_seconds
    billed = -(-seconds // increment)
    billed_seconds = billed * increment
    charge = round_ratio_to_cent(rate * billed_seconds, 60)
    fees: list[ChargeLine] = []
    taxes: list[ChargeLine] = []
    total = charge
    if billed:
        day = day_of(at)
        for line in tariff.lines_by_key[(product, jurisdiction)]:
            if not line.allowed.contains(day):
                continue
            amount = _line_amount(line, charge, billed_seconds)
            total += amount
            (taxes if line.is_tax else fees).append(ChargeLine(line.name, line.category, amount))
    return Quote(
        product=product,
        jurisdiction=jurisdiction,
        rate_units=rate,
        increment_seconds=increment,
        billed_units=billed,
        seconds=seconds,
        charge_units=charge,
        fees=tuple(fees),
        taxes=tuple(taxes),
        total_units=total,
        termination_units=termination_units,
    )


def classify(facility: RatedFacility, number: str) -> CalledNumber:
    """The called number placed relative to the facility (``InvalidNumber`` if not)."""
    return classify_number(number, facility.state, facility.tariff.local_prefixes)


def _termination(facility: RatedFacility, called: CalledNumber) -> int:
    if called.jurisdiction is Jurisdiction.INTERNATIONAL:
        return facility.tariff.termination(called.region)
    return 0


def quote(
    facility: RatedFacility, number: str, product: Product, seconds: int, at: date | datetime
) -> Quote:
    """The itemized charge of a call of ``seconds`` to ``number`` paid by ``product``."""
    called = classify(facility, number)
    return rate_call(
        facility, product, called.jurisdiction, seconds, at, _termination(facility, called)
    )


def _total_units(
    facility: RatedFacility,
    product: Product,
    jurisdiction: Jurisdiction,
    termination: int,
    increments: int,
    at: date | datetime,
) -> int:
    seconds = increments * facility.tariff.increment_seconds
    return rate_call(facility, product, jurisdiction, seconds, at, termination).total_units


def max_affordable_seconds(
    facility: RatedFacility, number: str, product: Product, budget_units: int, at: date | datetime
) -> int:
    """The longest call, in seconds, whose total ``budget_units`` pays for.

    Exactly consistent with ``quote``: the quote of the returned duration is
    within the budget and, unless the facility's call limit was reached, the
    quote of one more increment is not. The result is a whole number of
    billing increments, at most the facility's limit (or one day).
    """
    _check_seconds(budget_units, "budget")
    product = _product(product)
    called = classify(facility, number)
    termination = _termination(facility, called)
    jurisdiction = called.jurisdiction
    increment = facility.tariff.increment_seconds
    limit = facility.max_call_seconds or MAX_QUOTED_SECONDS
    hi = limit // increment
    _rate_units(facility.tariff, product, jurisdiction)
    if _total_units(facility, product, jurisdiction, termination, hi, at) <= budget_units:
        return hi * increment
    # Totals never fall as a call gets longer: search the last affordable increment.
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _total_units(facility, product, jurisdiction, termination, mid, at) <= budget_units:
            lo = mid
        else:
            hi = mid
    return lo * increment


def quote_document(
    facility: RatedFacility, number: str, minutes: int, at: date | datetime
) -> dict[str, object]:
    """The quote contract served by ``GET /v1/quote`` and printed by ``ics rate --json``.

    One quote per product the facility's tariff offers (Single Call only
    where the facility allows it), each for ``minutes`` whole minutes.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise RatingError(f"minutes must be a whole number, not {minutes!r}", field="minutes")
    if not 1 <= minutes <= MAX_QUOTED_MINUTES:
        raise RatingError(f"minutes must be between 1 and {MAX_QUOTED_MINUTES}", field="minutes")
    called = classify(facility, number)
    termination = _termination(facility, called)
    day = day_of(at)
    cap: str | None = None
    cap_source: str | None = None
    if facility.regulation is not None:
        found = facility.regulation.cap_for(
            facility.kind, facility.average_daily_population, called.jurisdiction, day
        )
        if found is not None:
            table, tier = found
            cap = price_str(tier.cap)
            cap_source = f"{table.name} ({tier.label})"
    products = [
        p
        for p in facility.tariff.products
        if p is not Product.SINGLE_CALL or facility.single_call_allowed
    ]
    quotes = [
        rate_call(facility, p, called.jurisdiction, minutes * 60, at, termination).to_json()
        for p in products
        if called.jurisdiction in facility.tariff.rates[p]
    ]
    return {
        "facility": facility.id,
        "facility_name": facility.name,
        "number": called.e164,
        "minutes": minutes,
        "date": day.isoformat(),
        "jurisdiction": str(called.jurisdiction),
        "destination_region": called.region,
        "destination_state": called.state,
        "cap_per_minute": cap,
        "cap_source": cap_source,
        "max_call_minutes": (
            facility.max_call_seconds // 60 if facility.max_call_seconds else None
        ),
        "quotes": quotes,
    }
