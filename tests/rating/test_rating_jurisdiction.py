"""Jurisdiction: intra/inter/local/international from the facility state and the number."""

from __future__ import annotations

import pytest

from rating import InvalidNumber, Jurisdiction, RatingError, classify_number


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [
        ("+15125550100", "+15125550100"),
        ("5125550100", "+15125550100"),
        ("15125550100", "+15125550100"),
        ("(512) 555-0100", "+15125550100"),
        ("1.512.555.0100", "+15125550100"),
        (" +1 512 555 0100 ", "+15125550100"),
    ],
)
def test_nanp_dialled_forms_normalise_to_e164(dialled: str, e164: str) -> None:
    called = classify_number(dialled, "TX")
    assert called.e164 == e164
    assert called.state == "TX"
    assert called.region == "US"
    assert called.jurisdiction is Jurisdiction.INTRASTATE


def test_same_state_is_intrastate_other_state_interstate() -> None:
    assert classify_number("+15125550100", "TX").jurisdiction is Jurisdiction.INTRASTATE
    assert classify_number("+12145550100", "TX").jurisdiction is Jurisdiction.INTRASTATE
    ny = classify_number("+12125550100", "TX")
    assert (ny.jurisdiction, ny.state) == (Jurisdiction.INTERSTATE, "NY")
    assert classify_number("+15125550100", "AL").jurisdiction is Jurisdiction.INTERSTATE


def test_city_level_geocoding_still_finds_the_state() -> None:
    # libphonenumber describes some exchanges as "San Antonio, TX".
    assert classify_number("+12105551234", "TX").state == "TX"


def test_dc_and_territories_are_their_own_states() -> None:
    assert classify_number("+12025550100", "TX").state == "DC"
    pr = classify_number("+17875550100", "TX")
    assert (pr.state, pr.jurisdiction) == ("PR", Jurisdiction.INTERSTATE)
    assert classify_number("+17875550100", "PR").jurisdiction is Jurisdiction.INTRASTATE


def test_local_by_area_code_or_exchange() -> None:
    local = ("936291", "907")
    assert classify_number("+19362910100", "TX", local).jurisdiction is Jurisdiction.LOCAL
    assert classify_number("+19362920100", "TX", local).jurisdiction is Jurisdiction.INTRASTATE
    assert classify_number("+19072690100", "AK", local).jurisdiction is Jurisdiction.LOCAL
    # A listed prefix never makes an out-of-state number local.
    assert classify_number("+19072690100", "TX", local).jurisdiction is Jurisdiction.INTERSTATE


@pytest.mark.parametrize(
    ("dialled", "region"),
    [
        ("011525512345678", "MX"),
        ("011 44 20 7946 0000", "GB"),
        ("+442079460000", "GB"),
        ("+525512345678", "MX"),
    ],
)
def test_outside_nanp_is_international_including_011_dialling(dialled: str, region: str) -> None:
    called = classify_number(dialled, "TX")
    assert called.jurisdiction is Jurisdiction.INTERNATIONAL
    assert called.region == region
    assert called.state is None
    assert called.e164.startswith("+")


def test_nanp_outside_the_united_states_is_international() -> None:
    called = classify_number("+14165550100", "TX")
    assert (called.region, called.jurisdiction) == ("CA", Jurisdiction.INTERNATIONAL)


@pytest.mark.parametrize(
    ("dialled", "reason"),
    [
        ("", "empty"),
        ("garbage", "not a dialable number"),
        ("512-555-01OO", "not a dialable number"),
        ("123", "dial 10 digits"),
        ("+1512555", "not a valid phone number"),
        ("25125550100", "must start with 1"),
        ("+18005551212", "toll-free"),
        ("+19005550100", "toll-free"),
        ("0115215512345678", "not a valid phone number"),
        ("+999123456789", "not a"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(dialled: str, reason: str) -> None:
    with pytest.raises(InvalidNumber) as info:
        classify_number(dialled, "TX")
    assert reason in str(info.value)
    assert info.value.field == "number"
    assert isinstance(info.value, RatingError)
    assert isinstance(info.value, ValueError)


def test_non_string_number_is_refused() -> None:
    with pytest.raises(InvalidNumber):
        classify_number(5125550100, "TX")  # type: ignore[arg-type]
