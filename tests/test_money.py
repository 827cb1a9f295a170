"""Exact money conversions and the product's single rounding rule."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.money import (
    MoneyError,
    apply_pct,
    cents_str,
    from_units,
    parse_money,
    pct_to_scaled,
    rate_str,
    round_to_cent,
    to_units,
)


@pytest.mark.parametrize(
    ("text", "units"),
    [("0.06", 600), ("0.0600", 600), ("25", 250_000), ("$25.00", 250_000), ("0.0001", 1)],
)
def test_to_units_is_exact(text: str, units: int) -> None:
    assert to_units(text) == units


@pytest.mark.parametrize("bad", [0.1, float("nan"), "abc", "", "1e", "NaN", "Infinity", True, None])
def test_garbage_and_floats_are_refused(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_money(bad)


def test_more_places_than_allowed_is_refused_not_rounded() -> None:
    with pytest.raises(MoneyError, match="more than 4 decimal places"):
        to_units("0.00001")
    with pytest.raises(MoneyError, match=r"deposit: .* more than 2 decimal places"):
        parse_money("10.001", field="deposit")
    # Trailing zeros are not extra precision.
    assert parse_money("10.0100") == Decimal("10.0100")


@pytest.mark.parametrize(
    ("units", "rounded"),
    [(0, 0), (49, 0), (50, 100), (149, 100), (150, 200), (9_050, 9_100), (-50, -100), (-49, 0)],
)
def test_round_to_cent_is_half_up(units: int, rounded: int) -> None:
    assert round_to_cent(units) == rounded


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_round_to_cent_matches_decimal_half_up(units: int) -> None:
    expected = (Decimal(units) / 100).quantize(Decimal(1), rounding="ROUND_HALF_UP") * 100
    assert round_to_cent(units) == int(expected)


@given(st.integers(min_value=0, max_value=10**10), st.integers(min_value=0, max_value=100_000_000))
def test_apply_pct_matches_decimal(units: int, pct_scaled: int) -> None:
    exact = Decimal(units) * Decimal(pct_scaled) / Decimal(1_000_000)
    expected = (exact / 100).quantize(Decimal(1), rounding="ROUND_HALF_UP") * 100
    assert apply_pct(units, pct_scaled) == int(expected)


def test_percentages_and_formatting() -> None:
    assert pct_to_scaled("8.25") == 82_500
    assert apply_pct(9_000, pct_to_scaled("10")) == 900
    assert cents_str(9_000) == "0.90"
    assert rate_str(600) == "0.0600"
    assert from_units(1_234_567) == Decimal("123.4567")
    with pytest.raises(MoneyError):
        cents_str(9_050)


@given(st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False))
def test_units_round_trip(d: Decimal) -> None:
    assert from_units(to_units(d)) == d.quantize(Decimal("0.0001"))


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_string_forms_equal_decimal_formatting(units: int) -> None:
    assert rate_str(units) == str(Decimal(units).scaleb(-4).quantize(Decimal("0.0001")))
    cents = units - units % 100
    assert cents_str(cents) == str(Decimal(cents).scaleb(-4).quantize(Decimal("0.01")))
