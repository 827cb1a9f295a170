"""Exact money: Decimal at the edges, integer units of 1/10,000 dollar inside.

Every rounding rule of the product is written down here, and nowhere else:

* ``UNITS_PER_DOLLAR`` is 10,000: a per-minute rate has at most 4 decimal
  places, so any rate is an exact whole number of units.
* Input money (config, API, CSV) is parsed with ``parse_money`` which refuses
  floats, non-finite values and more decimal places than allowed; it never
  rounds silently.
* A call's charge is computed exactly in units, then rounded **once per call**
  to the cent, half-up (``round_to_cent``). Fees and taxes are each rounded to
  the cent, half-up, when they are computed, because each is a separate line
  on the bill; the total is the sum of rounded lines.
* A per-minute rate applied to billed seconds is ``rate * seconds / 60``
  units, which may be a fraction of a unit: ``round_ratio_to_cent`` rounds
  that exact ratio to the cent, half-up, with no intermediate rounding.
* A percentage is expressed in basis points of a basis point ("pct units":
  1/10,000 of a percent), so 8.25% is 82,500; applying it to an amount in units
  is exact integer arithmetic followed by the half-up cent rounding.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

UNITS_PER_DOLLAR: Final = 10_000
UNITS_PER_CENT: Final = 100
#: Largest number of decimal places accepted for a rate or a unit price.
RATE_PLACES: Final = 4
#: Largest number of decimal places accepted for an amount of money moved.
AMOUNT_PLACES: Final = 2
#: Percentages are stored as integer millionths (1/10,000 of a percent).
PCT_SCALE: Final = 1_000_000


class MoneyError(ValueError):
    """A money value was malformed or more precise than allowed."""


def parse_money(value: object, *, places: int = AMOUNT_PLACES, field: str = "amount") -> Decimal:
    """Parse an edge value (str, int or Decimal; never float) into a Decimal.

    Raises ``MoneyError`` naming ``field`` on floats, garbage, non-finite
    values, or more than ``places`` decimal places.
    """
    if isinstance(value, bool | float):
        raise MoneyError(f"{field}: money must be given as a decimal string, not {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("$"):
            text = text[1:]
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{field}: {value!r} is not a decimal amount") from None
    else:
        raise MoneyError(f"{field}: {value!r} is not a decimal amount")
    if not d.is_finite():
        raise MoneyError(f"{field}: {value!r} is not a finite amount")
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places and d != d.quantize(Decimal(1).scaleb(-places)):
        raise MoneyError(f"{field}: {value!r} has more than {places} decimal places")
    return d


def to_units(
    value: Decimal | int | str, *, places: int = RATE_PLACES, field: str = "amount"
) -> int:
    """Exact conversion of a dollar amount to integer units; never rounds."""
    d = parse_money(value, places=places, field=field)
    units = d * UNITS_PER_DOLLAR
    if units != units.to_integral_value():
        raise MoneyError(f"{field}: {value!r} is not a whole number of 1/10,000 dollar")
    return int(units)


def from_units(units: int) -> Decimal:
    """Units to a Decimal with 4 places (for rates)."""
    return (Decimal(units) / UNITS_PER_DOLLAR).quantize(Decimal("0.0001"))


def cents_str(units: int) -> str:
    """A cent-exact amount in units as a decimal string with 2 places ('12.30').

    Raises if the amount is not a whole number of cents: callers round first.
    """
    if units % UNITS_PER_CENT:
        raise MoneyError(f"{units} units is not a whole number of cents")
    # Integer formatting: exact, and several times cheaper than Decimal on the
    # quote path (every quote line is formatted).
    dollars, rest = divmod(abs(units), UNITS_PER_DOLLAR)
    return f"{'-' if units < 0 else ''}{dollars}.{rest // UNITS_PER_CENT:02d}"


def rate_str(units: int) -> str:
    """A rate in units as a decimal string with 4 places ('0.0600')."""
    dollars, rest = divmod(abs(units), UNITS_PER_DOLLAR)
    return f"{'-' if units < 0 else ''}{dollars}.{rest:04d}"


def round_to_cent(units: int) -> int:
    """Round an amount in units to whole cents, half-up (away from zero on .5).

    Charges are never negative, but the rule is symmetric so that refunds and
    reversals round the same way in magnitude.
    """
    return _half_up_cents(units, UNITS_PER_CENT)


def _half_up_cents(numerator: int, den: int) -> int:
    """``numerator / den`` as whole cents in units, half-up (away from zero on .5).

    ``den`` is positive and already counts units per cent, so the quotient is cents.
    """
    sign = -1 if numerator < 0 else 1
    q, r = divmod(abs(numerator), den)
    if r * 2 >= den:
        q += 1
    return sign * q * UNITS_PER_CENT


def pct_to_scaled(value: Decimal | int | str, *, field: str = "percent") -> int:
    """A percentage ('8.25') as integer millionths of the base (82,500)."""
    d = parse_money(value, places=4, field=field)
    scaled = d * (PCT_SCALE // 100)
    return int(scaled)


def apply_pct(units: int, pct_scaled: int) -> int:
    """``units * pct`` rounded to the cent, half-up, in exact integers."""
    return _half_up_cents(units * pct_scaled, PCT_SCALE * UNITS_PER_CENT)


def round_ratio_to_cent(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` units rounded to whole cents, half-up, exactly.

    Used where an amount is a fraction of a unit before rounding, e.g. a
    per-minute rate applied to a number of seconds: ``rate * seconds / 60``.
    """
    if denominator <= 0:
        raise MoneyError(f"denominator {denominator} must be positive")
    return _half_up_cents(numerator, denominator * UNITS_PER_CENT)


def price_str(units: int) -> str:
    """A per-minute price as regulations write it: cents when whole ('0.11'), else 4 places."""
    if units % UNITS_PER_CENT:
        return rate_str(units)
    return str(from_units(units).quantize(Decimal("0.01")))
