"""Vectorized re-rating equals the scalar engine on every row."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from rating_builders import make_facility

from rating import (
    JURISDICTIONS,
    PRODUCTS,
    AncillaryFee,
    AncillaryKind,
    AncillaryTrigger,
    DateRange,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    ProductNotOffered,
    RatedFacility,
    RatingError,
    Surcharge,
    day_number,
    rate_call,
    rerate_arrays,
)

EPOCH = date(1970, 1, 1)


def _facilities(demo: object) -> list[RatedFacility]:
    from settings.config import ServiceConfig

    assert isinstance(demo, ServiceConfig)
    lines = (
        Surcharge("tax", FeeCategory.MANDATORY_TAX, FeeBasis.PERCENT, 82_500,
                  jurisdictions=frozenset({Jurisdiction.LOCAL, Jurisdiction.INTRASTATE})),
        Surcharge("per call", FeeCategory.MANDATORY_TAX, FeeBasis.PER_CALL, 75,
                  products=frozenset({Product.DIRECT_BILL})),
        Surcharge("add-on", FeeCategory.FACILITY_ADD_ON, FeeBasis.PER_MINUTE, 175,
                  allowed=DateRange(date(2026, 4, 6), date(2026, 12, 31))),
    )
    single = AncillaryFee("single call", AncillaryKind.SINGLE_CALL, AncillaryTrigger.CALL, 32_550,
                          DateRange(None, date(2024, 12, 31)), frozenset({Product.SINGLE_CALL}))
    extra = make_facility(rate=625, increment=6, surcharges=lines, ancillary=(single,))
    return [f.rated for f in demo.facilities.values()] + [extra]


def _random_cdrs(facilities: list[RatedFacility], n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    fac = rng.integers(0, len(facilities), n)
    offered = [
        np.array([i for i, p in enumerate(PRODUCTS) if p in f.tariff.rates]) for f in facilities
    ]
    prod = np.array([offered[f][k % len(offered[f])] for f, k in
                     zip(fac.tolist(), rng.integers(0, 1000, n).tolist(), strict=True)])
    return {
        "facility": fac,
        "product": prod,
        "jurisdiction": rng.integers(0, len(JURISDICTIONS), n),
        "seconds": np.where(rng.random(n) < 0.05, 0, rng.integers(0, 7200, n)),
        "day": rng.integers(day_number(date(2021, 1, 1)), day_number(date(2027, 6, 1)), n),
        "termination": np.where(rng.random(n) < 0.5, 0, rng.integers(0, 4000, n)),
    }


def test_vectorized_equals_scalar_on_120k_random_cdrs(demo: object) -> None:
    facilities = _facilities(demo)
    n = 120_000
    cdrs = _random_cdrs(facilities, n, seed=20261125)
    batch = rerate_arrays(facilities, **cdrs)
    columns = {k: v.tolist() for k, v in cdrs.items()}
    got = list(zip(batch.billed_units.tolist(), batch.rate_units.tolist(),
                   batch.charge_units.tolist(), batch.fees_units.tolist(),
                   batch.taxes_units.tolist(), batch.total_units.tolist(), strict=True))
    days = {d: EPOCH + timedelta(days=d) for d in set(columns["day"])}
    mismatches = []
    for i in range(n):
        q = rate_call(
            facilities[columns["facility"][i]],
            PRODUCTS[columns["product"][i]],
            JURISDICTIONS[columns["jurisdiction"][i]],
            columns["seconds"][i],
            days[columns["day"][i]],
            columns["termination"][i],
        )
        want = (q.billed_units, q.rate_units, q.charge_units, q.fees_units, q.taxes_units,
                q.total_units)
        if want != got[i]:
            mismatches.append((i, want, got[i]))
    assert mismatches == []
    # The sample exercised fees, taxes and rounding, not just zeros.
    assert int((batch.fees_units > 0).sum()) > 1000
    assert int((batch.taxes_units > 0).sum()) > 1000
    assert int((batch.charge_units % 10_000 != 0).sum()) > 1000


def test_single_facility_fast_path_matches(demo: object) -> None:
    facilities = _facilities(demo)[:1]
    cdrs = _random_cdrs(facilities, 2000, seed=7)
    batch = rerate_arrays(facilities, **cdrs)
    for i in range(2000):
        q = rate_call(facilities[0], PRODUCTS[cdrs["product"][i]],
                      JURISDICTIONS[cdrs["jurisdiction"][i]], int(cdrs["seconds"][i]),
                      EPOCH + timedelta(days=int(cdrs["day"][i])), int(cdrs["termination"][i]))
        assert q.total_units == batch.total_units[i]


def test_empty_batch() -> None:
    batch = rerate_arrays([make_facility()], [], [], [], [], [])
    assert batch.total_units.shape == (0,)


def test_bad_rows_are_named() -> None:
    facility = make_facility(rates={Product.DEBIT: dict.fromkeys(Jurisdiction, 600)})
    debit = PRODUCTS.index(Product.DEBIT)
    with pytest.raises(ProductNotOffered, match="row 1"):
        rerate_arrays([facility], [0, 0], [debit, 0], [0, 0], [60, 60], [0, 0])
    with pytest.raises(RatingError, match="row 1: seconds"):
        rerate_arrays([facility], [0, 0], [debit, debit], [0, 0], [60, -1], [0, 0])
    with pytest.raises(RatingError, match="row 0: facility index 3"):
        rerate_arrays([facility], [3], [debit], [0], [60], [0])
    with pytest.raises(RatingError, match="expected 2 rows"):
        rerate_arrays([facility], [0, 0], [debit], [0, 0], [60, 60], [0, 0])
