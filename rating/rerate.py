"""Vectorized re-rating: the scalar engine's arithmetic on numpy arrays of CDRs.

Every row gets exactly what ``rating.rate_call`` gives it (tested on random
CDRs): the same increments, the same half-up cent rounding of the charge and
of each fee and tax line, in integer money units (int64, far from overflow
for any call up to a day at any rate below $10,000 per minute).

Inputs are parallel arrays: ``facility`` (index into the facilities
sequence), ``product`` (index into ``PRODUCTS``), ``jurisdiction`` (index
into ``JURISDICTIONS``), ``seconds``, ``day`` (days since 1970-01-01, the
calendar day fee date ranges are judged on) and, optionally,
``termination`` (per-minute units added to international rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt

from rating.errors import ProductNotOffered, RatingError
from rating.facility import RatedFacility
from rating.jurisdiction import Jurisdiction
from rating.money import PCT_SCALE, UNITS_PER_CENT, round_to_cent
from rating.tariff import DateRange, FeeBasis, Product

PRODUCTS: Final = tuple(Product)
JURISDICTIONS: Final = tuple(Jurisdiction)
PRODUCT_INDEX: Final = {p: i for i, p in enumerate(PRODUCTS)}
JURISDICTION_INDEX: Final = {j: i for i, j in enumerate(JURISDICTIONS)}
_INTERNATIONAL: Final = JURISDICTION_INDEX[Jurisdiction.INTERNATIONAL]
_EPOCH: Final = date(1970, 1, 1).toordinal()
#: Rows rated per step: small enough for the temporaries to stay in cache.
CHUNK_ROWS: Final = 32_768

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def day_number(day: date) -> int:
    """Days since 1970-01-01, the ``day`` column's unit."""
    return day.toordinal() - _EPOCH


@dataclass(frozen=True)
class RatedBatch:
    """Per-row results in money units (``fees``/``taxes`` are line sums)."""

    billed_units: Int64Array
    billed_seconds: Int64Array
    rate_units: Int64Array
    charge_units: Int64Array
    fees_units: Int64Array
    taxes_units: Int64Array
    total_units: Int64Array


def _cents(numerator: Int64Array, denominator: int) -> Int64Array:
    """``numerator / denominator`` units rounded half-up to whole cents (numerator >= 0).

    The same rule as ``rating.money.round_ratio_to_cent``; works in place on
    ``numerator``, which callers pass as a temporary.
    """
    den = denominator * UNITS_PER_CENT
    numerator *= 2
    numerator += den
    numerator //= 2 * den
    numerator *= UNITS_PER_CENT
    return numerator


def _same_increment(facilities: Sequence[RatedFacility]) -> int | None:
    increments = {f.tariff.increment_seconds for f in facilities}
    return increments.pop() if len(increments) == 1 else None


@dataclass(frozen=True)
class _Slot:
    """Lines of one basis, bill side and date range, at most one per facility.

    ``values`` holds each line's value at the flat index of every
    (facility, product, jurisdiction) it applies to, 0 elsewhere, so one
    gather prices the slot for every row whatever its facility.
    """

    basis: FeeBasis
    is_tax: bool
    allowed: DateRange
    values: Int64Array


def _slots(facilities: Sequence[RatedFacility]) -> list[_Slot]:
    n_p, n_j = len(PRODUCTS), len(JURISDICTIONS)
    tables: dict[tuple[FeeBasis, bool, DateRange, int], Int64Array] = {}
    for f, facility in enumerate(facilities):
        seen: dict[tuple[FeeBasis, bool, DateRange], int] = {}
        for line in facility.tariff.call_lines():
            kind = (line.basis, line.is_tax, line.allowed)
            occurrence = seen.get(kind, 0)
            seen[kind] = occurrence + 1
            values = tables.setdefault((*kind, occurrence),
                                       np.zeros(len(facilities) * n_p * n_j, dtype=np.int64))
            value = line.value
            if line.basis is FeeBasis.PER_CALL:
                value = round_to_cent(value)
            for p, product in enumerate(PRODUCTS):
                for j, jurisdiction in enumerate(JURISDICTIONS):
                    if line.applies_to(product, jurisdiction):
                        values[(f * n_p + p) * n_j + j] = value
    return [_Slot(basis, is_tax, allowed, values)
            for (basis, is_tax, allowed, _), values in tables.items()]


def _first_bad(mask: BoolArray) -> int:
    return int(np.flatnonzero(mask)[0])


def _validate(
    n_facilities: int,
    first_row: int,
    fac: Int64Array,
    prod: Int64Array,
    jur: Int64Array,
    secs: Int64Array,
    term: Int64Array,
) -> None:
    for name, arr, limit in (("facility", fac, n_facilities), ("product", prod, len(PRODUCTS)),
                             ("jurisdiction", jur, len(JURISDICTIONS))):
        if arr.min() < 0 or arr.max() >= limit:
            row = _first_bad((arr < 0) | (arr >= limit))
            raise RatingError(
                f"row {first_row + row}: {name} index {int(arr[row])} out of range", field=name
            )
    for name, arr in (("seconds", secs), ("termination", term)):
        if arr.min() < 0:
            row = _first_bad(arr < 0)
            raise RatingError(f"row {first_row + row}: {name} must not be negative", field=name)


def rerate_arrays(
    facilities: Sequence[RatedFacility],
    facility: npt.ArrayLike,
    product: npt.ArrayLike,
    jurisdiction: npt.ArrayLike,
    seconds: npt.ArrayLike,
    day: npt.ArrayLike,
    termination: npt.ArrayLike | None = None,
) -> RatedBatch:
    """Rate every row; equal, row by row, to ``rate_call`` on the same inputs.

    Raises ``RatingError`` naming the first offending row for an index out of
    range, negative seconds, or a product the row's tariff does not rate.
    """
    fac = np.asarray(facility, dtype=np.int64)
    prod = np.asarray(product, dtype=np.int64)
    jur = np.asarray(jurisdiction, dtype=np.int64)
    secs = np.asarray(seconds, dtype=np.int64)
    days = np.asarray(day, dtype=np.int64)
    n = fac.shape[0]
    term = (
        np.zeros(n, dtype=np.int64)
        if termination is None
        else np.asarray(termination, dtype=np.int64)
    )
    for name, arr in (("product", prod), ("jurisdiction", jur), ("seconds", secs),
                      ("day", days), ("termination", term)):
        if arr.shape != (n,):
            raise RatingError(f"{name}: expected {n} rows, got shape {arr.shape}", field=name)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RatedBatch(empty, empty, empty, empty, empty, empty, empty)
    plan = _Plan.build(facilities)
    outputs = [np.empty(n, dtype=np.int64) for _ in range(7)]
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, n)
        _validate(len(facilities), lo, fac[lo:hi], prod[lo:hi], jur[lo:hi], secs[lo:hi],
                  term[lo:hi])
        results = plan.rate(fac[lo:hi], prod[lo:hi], jur[lo:hi], secs[lo:hi], days[lo:hi],
                            term[lo:hi], lo)
        for out, values in zip(outputs, results, strict=True):
            out[lo:hi] = values
    return RatedBatch(*outputs)


@dataclass(frozen=True)
class _Plan:
    """Lookup tables of a set of facilities, indexed by flat (facility, product, jurisdiction)."""

    facilities: Sequence[RatedFacility]
    rates: Int64Array
    increments: Int64Array
    same_increment: int | None
    slots: list[_Slot]

    @classmethod
    def build(cls, facilities: Sequence[RatedFacility]) -> _Plan:
        n_p, n_j = len(PRODUCTS), len(JURISDICTIONS)
        rates = np.full(len(facilities) * n_p * n_j, -1, dtype=np.int64)
        for f, rated in enumerate(facilities):
            for product, by_jurisdiction in rated.tariff.rates.items():
                for jurisdiction, units in by_jurisdiction.items():
                    rates[(f * n_p + PRODUCT_INDEX[product]) * n_j
                          + JURISDICTION_INDEX[jurisdiction]] = units
        increments = np.array([f.tariff.increment_seconds for f in facilities], dtype=np.int64)
        return cls(facilities, rates, increments, _same_increment(facilities),
                   _slots(facilities))

    def rate(
        self,
        fac: Int64Array,
        prod: Int64Array,
        jur: Int64Array,
        secs: Int64Array,
        days: Int64Array,
        term: Int64Array,
        first_row: int,
    ) -> tuple[Int64Array, ...]:
        n_p, n_j = len(PRODUCTS), len(JURISDICTIONS)
        index = fac * (n_p * n_j)
        index += prod * n_j
        index += jur
        rate = self.rates[index]
        if rate.min() < 0:
            row = _first_bad(rate < 0)
            raise ProductNotOffered(
                f"row {first_row + row}: tariff "
                f"{self.facilities[int(fac[row])].tariff.name!r} has no "
                f"{JURISDICTIONS[int(jur[row])]} rate for product {PRODUCTS[int(prod[row])]}"
            )
        rate += np.where(jur == _INTERNATIONAL, term, 0)
        if self.same_increment is not None:
            step = self.same_increment
            billed = secs + (step - 1)
            billed //= step
            billed_seconds = billed * step
        else:
            increment = self.increments[fac]
            billed = secs + increment
            billed -= 1
            billed //= increment
            billed_seconds = billed * increment
        charge = _cents(rate * billed_seconds, 60)
        fees = np.zeros(charge.shape, dtype=np.int64)
        taxes = np.zeros(charge.shape, dtype=np.int64)
        for slot in self.slots:
            value = slot.values[index]
            if slot.basis is FeeBasis.PERCENT:
                value *= charge
                amount = _cents(value, PCT_SCALE)
            elif slot.basis is FeeBasis.PER_CALL:
                amount = value * (billed > 0)
            else:
                value *= billed_seconds
                amount = _cents(value, 60)
            if slot.allowed.start is not None:
                amount *= days >= day_number(slot.allowed.start)
            if slot.allowed.end is not None:
                amount *= days <= day_number(slot.allowed.end)
            if slot.is_tax:
                taxes += amount
            else:
                fees += amount
        total = charge + fees
        total += taxes
        return billed, billed_seconds, rate, charge, fees, taxes, total
