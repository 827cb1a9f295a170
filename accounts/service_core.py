"""What the parts of the account service share: store, rules, ids, pricing and input checks."""

from __future__ import annotations

import calendar
import itertools
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime

from accounts.errors import InvalidRequest
from accounts.model import FundingMethod, Reservation
from accounts.policy import AccountsPolicy, FacilityPolicy
from accounts.pricing import CallPricer
from accounts.store import AccountStore
from rating import (
    CalledNumber,
    InvalidNumber,
    MoneyError,
    Product,
    Quote,
    classify_number,
    to_units,
)

#: Reservation attempts before giving up on a payer whose balance keeps moving.
RESERVE_ATTEMPTS = 3
#: Entries kept in each in-process cache before it is emptied.
CACHE_LIMIT = 100_000


def normalize_number(number: str, field: str = "number") -> str:
    """A dialled or written number as E.164, with the same rules the controller dials by."""
    try:
        return classify_number(number, "").e164
    except InvalidNumber as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def parse_amount(value: object, field: str = "amount") -> int:
    """A positive money amount (Decimal or string, whole cents) in units."""
    try:
        units = to_units(value, places=2, field=field)  # type: ignore[arg-type]
    except MoneyError as exc:
        raise InvalidRequest(str(exc)) from None
    if units <= 0:
        raise InvalidRequest(f"{field}: must be greater than zero")
    return units


def parse_funding_method(method: FundingMethod | str) -> FundingMethod:
    """A funding method by name, or ``InvalidRequest`` naming the unknown one."""
    try:
        return FundingMethod(method)
    except ValueError:
        raise InvalidRequest(f"method: unknown funding method {method!r}") from None


def ascending_ids() -> Callable[[], str]:
    """A source of 32-hex-digit ids: a random 64-bit prefix, then a counter.

    Unique across processes and nodes (the prefix) like a random UUID, but
    ascending within one process, so a store's index appends new ids at one
    end instead of splitting pages all over the tree.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


def add_month(at: datetime) -> datetime:
    """The same day and time one calendar month later (clamped to the month's end)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


class ServiceCore:
    """The state each part of ``AccountService`` works on; the parts are mixins over it."""

    def __init__(
        self,
        store: AccountStore,
        facilities: Mapping[str, FacilityPolicy],
        policy: AccountsPolicy | None = None,
        *,
        new_id: Callable[[], str] | None = None,
        node_id: str = "",
    ) -> None:
        self.store = store
        #: This node's name, recorded as the owner of every hold it makes.
        self.node_id = node_id
        self.facilities = dict(facilities)
        self.policy = policy or AccountsPolicy()
        self.new_id = new_id or ascending_ids()
        # Rating is pure: classifications, quotes and affordable lengths are cached.
        self.pricer = CallPricer(self.facilities)
        # Reservations this instance made, so settling needs no extra read; the
        # store stays the authority (another node's or a restarted one's calls).
        self._reservations: dict[str, Reservation] = {}

    def _facility(self, facility_id: str) -> FacilityPolicy:
        try:
            return self.facilities[facility_id]
        except KeyError:
            raise InvalidRequest(f"facility: unknown facility {facility_id!r}") from None

    def _classify(self, facility: FacilityPolicy, number: str) -> CalledNumber:
        return self.pricer.classify(facility, number)

    def _price(
        self,
        facility: FacilityPolicy,
        number: str,
        product: Product,
        seconds: int,
        at: datetime,
    ) -> Quote:
        """``rating.quote`` of the call, from the pricer's caches."""
        return self.pricer.quote(facility, self._classify(facility, number), product, seconds, at)
