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
from rating.money import PCT_SCALE, UNITS_PER_CENT
from rating.tariff import FeeBasis, Product, Surcharge

PRODUCTS: Final = tuple(Product)
JURISDICTIONS: Final = tuple(Jurisdiction)
PRODUCT_INDEX: Final = {p: i for i, p in enumerate(PRODUCTS)}
JURISDICTION_INDEX: Final = {j: i for i, j in enumerate(JURISDICTIONS)}
_INTERNATIONAL: Final = JURISDICTION_INDEX[Jurisdiction.INTERNATIONAL]
_EPOCH: Final = date(1970, 1, 1).toordinal()

Int64Array = npt.NDArray[np.int64]


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


def _half_up(numerator: Int64Array, denominator: int) -> Int64Array:
    """``numerator / denominator`` rounded half-up to an integer (numerator >= 0)."""
    result: Int64Array = (2 * numerator + denominator) // (2 * denominator)
    return result


def _cents(numerator: Int64Array, denominator: int) -> Int64Array:
    """Units rounded half-up to whole cents, as ``rating.money.round_ratio_to_cent``."""
    return _half_up(numerator, denominator * UNITS_PER_CENT) * UNITS_PER_CENT


def _line_amounts(line: Surcharge, charge: Int64Array, billed_seconds: Int64Array) -> Int64Array:
    if line.basis is FeeBasis.PERCENT:
        return _cents(charge * line.value, PCT_SCALE)
    if line.basis is FeeBasis.PER_CALL:
        fixed = _half_up(np.asarray(line.value, dtype=np.int64), UNITS_PER_CENT) * UNITS_PER_CENT
        return np.full(charge.shape, fixed, dtype=np.int64)
    return _cents(billed_seconds * line.value, 60)


BoolArray = npt.NDArray[np.bool_]


def _lookup(
    members: frozenset[Product] | frozenset[Jurisdiction], universe: tuple[object, ...]
) -> BoolArray:
    if not members:
        return np.ones(len(universe), dtype=np.bool_)
    return np.array([item in members for item in universe], dtype=np.bool_)


def _rate_facility(
    facility: RatedFacility,
    product: Int64Array,
    jurisdiction: Int64Array,
    seconds: Int64Array,
    day: Int64Array,
    termination: Int64Array,
    rows: Int64Array,
) -> tuple[Int64Array, ...]:
    tariff = facility.tariff
    table = np.full((len(PRODUCTS), len(JURISDICTIONS)), -1, dtype=np.int64)
    for p, by_jurisdiction in tariff.rates.items():
        for j, units in by_jurisdiction.items():
            table[PRODUCT_INDEX[p], JURISDICTION_INDEX[j]] = units
    rate = table[product, jurisdiction]
    missing = np.flatnonzero(rate < 0)
    if missing.size:
        row = int(rows[missing[0]])
        raise ProductNotOffered(
            f"row {row}: tariff {tariff.name!r} has no "
            f"{JURISDICTIONS[int(jurisdiction[missing[0]])]} rate for product "
            f"{PRODUCTS[int(product[missing[0]])]}"
        )
    rate = rate + np.where(jurisdiction == _INTERNATIONAL, termination, 0)
    increment = tariff.increment_seconds
    billed = (seconds + (increment - 1)) // increment
    billed_seconds = billed * increment
    charge = _cents(rate * billed_seconds, 60)
    fees = np.zeros_like(charge)
    taxes = np.zeros_like(charge)
    connected = billed > 0
    for line in tariff.call_lines():
        applies = (
            connected
            & _lookup(line.products, PRODUCTS)[product]
            & _lookup(line.jurisdictions, JURISDICTIONS)[jurisdiction]
        )
        if line.allowed.start is not None:
            applies &= day >= day_number(line.allowed.start)
        if line.allowed.end is not None:
            applies &= day <= day_number(line.allowed.end)
        amount = np.where(applies, _line_amounts(line, charge, billed_seconds), 0)
        if line.is_tax:
            taxes += amount
        else:
            fees += amount
    return billed, billed_seconds, rate, charge, fees, taxes, charge + fees + taxes


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
    for name, arr, limit in (("facility", fac, len(facilities)), ("product", prod, len(PRODUCTS)),
                             ("jurisdiction", jur, len(JURISDICTIONS))):
        bad = np.flatnonzero((arr < 0) | (arr >= limit))
        if bad.size:
            raise RatingError(f"row {int(bad[0])}: {name} index {int(arr[bad[0]])} out of range",
                              field=name)
    for name, arr in (("seconds", secs), ("termination", term)):
        bad = np.flatnonzero(arr < 0)
        if bad.size:
            raise RatingError(f"row {int(bad[0])}: {name} must not be negative", field=name)
    outputs = [np.zeros(n, dtype=np.int64) for _ in range(7)]
    single = len(facilities) == 1 or (n > 0 and bool((fac == fac[0]).all()))
    groups = [(int(fac[0]) if n else 0, None)] if single else [
        (f, np.flatnonzero(fac == f)) for f in range(len(facilities))
    ]
    for f, rows in groups:
        if rows is None:
            results = _rate_facility(facilities[f], prod, jur, secs, days, term,
                                     np.arange(n, dtype=np.int64))
            outputs = list(results)
            continue
        if not rows.size:
            continue
        results = _rate_facility(facilities[f], prod[rows], jur[rows], secs[rows], days[rows],
                                 term[rows], rows)
        for out, values in zip(outputs, results, strict=True):
            out[rows] = values
    return RatedBatch(*outputs)
