"""Jurisdiction of a call from the facility's state and the called number.

This is a number-based fallback: the law follows the physical locations of
the two parties, which a phone number does not reliably reveal (mobile
numbers move, numbers are ported). The classification uses libphonenumber's
parsing, validity and geocoding data:

* a number outside the North American Numbering Plan is ``international``;
  so is a NANP number outside the United States and its territories
  (Canada, the Caribbean nations): those calls cross a national border;
* a NANP number in the facility's state is ``intrastate``, and ``local``
  when the tariff lists its area code or area code + exchange as local;
* a NANP number in another state, the District of Columbia or a US
  territory (each counts as its own state) is ``interstate``.

Dialled forms accepted: ``+E.164``, 10 digits, 1 + 10 digits, and ``011`` +
international digits, with spaces, dots, dashes and parentheses ignored.
Toll-free, premium-rate and other non-geographic numbers cannot be rated
(there is no place to rate them to) and are refused as not routable.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from rating.errors import InvalidNumber


class Jurisdiction(StrEnum):
    LOCAL = "local"
    INTRASTATE = "intrastate"
    INTERSTATE = "interstate"
    INTERNATIONAL = "international"


#: US territories with their own NANP region code; each is its own "state".
US_TERRITORIES = frozenset({"PR", "GU", "VI", "AS", "MP"})

US_STATES: dict[str, str] = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR",
    "California": "CA", "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE",
    "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT",
    "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
    "District of Columbia": "DC",
}
_STATE_CODES = frozenset(US_STATES.values())

#: Number types a call can be placed and rated to.
_RATEABLE_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
_DIAL_JUNK = re.compile(r"[\s().\-]")
_DIALLED = re.compile(r"\+?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class CalledNumber:
    """A called number, parsed and placed.

    ``region`` is the ISO 3166 region of the number ("US", "MX"); ``state``
    the two-letter US state, "DC" or territory code for NANP numbers in the
    United States, else ``None``; ``national`` the national significant
    number (for NANP: area code + exchange + line).
    """

    e164: str
    region: str
    state: str | None
    national: str
    jurisdiction: Jurisdiction


@dataclass(frozen=True, slots=True)
class _Placed:
    e164: str
    region: str
    state: str | None
    national: str
    nanp: bool


def _state_of(number: phonenumbers.PhoneNumber, region: str) -> str | None:
    if region in US_TERRITORIES:
        return region
    if region != "US":
        return None
    description = geocoder.description_for_number(number, "en")
    if description in US_STATES:
        return US_STATES[description]
    # City-level descriptions read "San Antonio, TX".
    _, sep, suffix = description.rpartition(", ")
    if sep and suffix in _STATE_CODES:
        return suffix
    return None


@lru_cache(maxsize=65_536)
def _place(dialled: str) -> _Placed:
    text = _DIAL_JUNK.sub("", dialled)
    if not text:
        raise InvalidNumber("number is empty")
    if not _DIALLED.fullmatch(text):
        raise InvalidNumber(f"{dialled!r} is not a dialable number (digits, optional leading +)")
    if not text.startswith("+") and not text.startswith("011") and len(text) not in (10, 11):
        raise InvalidNumber(
            f"{dialled!r}: dial 10 digits, 1 + 10 digits, +E.164 or 011 + international digits"
        )
    if len(text) == 11 and text[0] != "1" and not text.startswith("011"):
        raise InvalidNumber(f"{dialled!r}: an 11-digit number must start with 1")
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"{dialled!r} is not a phone number: {exc._msg}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"{dialled!r} is not a valid phone number")
    if phonenumbers.number_type(number) not in _RATEABLE_TYPES:
        raise InvalidNumber(
            f"{dialled!r} is not a geographic or mobile number (toll-free, premium-rate "
            "and shared-cost numbers cannot be called)"
        )
    region = phonenumbers.region_code_for_number(number) or ""
    nanp = number.country_code == 1
    state = _state_of(number, region) if nanp else None
    if nanp and region == "US" and state is None:
        raise InvalidNumber(f"{dialled!r}: the number's state is unknown, so it cannot be rated")
    return _Placed(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region=region,
        state=state,
        national=phonenumbers.national_significant_number(number),
        nanp=nanp,
    )


def classify_number(
    number: str, facility_state: str, local_prefixes: Collection[str] = ()
) -> CalledNumber:
    """Place ``number`` relative to a facility in ``facility_state``.

    ``local_prefixes`` are NANP area codes ("512") or area code + exchange
    ("512555") that the tariff rates as local. Raises ``InvalidNumber``.
    """
    if not isinstance(number, str):
        raise InvalidNumber(f"{number!r} is not a dialable number")
    placed = _place(number.strip())
    if not placed.nanp or placed.state is None:
        jurisdiction = Jurisdiction.INTERNATIONAL
    elif placed.state != facility_state:
        jurisdiction = Jurisdiction.INTERSTATE
    elif any(placed.national.startswith(prefix) for prefix in local_prefixes):
        jurisdiction = Jurisdiction.LOCAL
    else:
        jurisdiction = Jurisdiction.INTRASTATE
    return CalledNumber(
        e164=placed.e164,
        region=placed.region,
        state=placed.state,
        national=placed.national,
        jurisdiction=jurisdiction,
    )
