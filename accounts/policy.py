"""The rules the accounts service applies, per facility and for the whole service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from accounts.station_locks import PinGuardPolicy
from rating import Product, RatedFacility, to_units

#: Who pays, in the order tried, unless a facility configures its own.
DEFAULT_FUNDING_ORDER: tuple[Product, ...] = (
    Product.SUBSCRIPTION,
    Product.DEBIT,
    Product.ADVANCE_CONNECT,
    Product.DIRECT_BILL,
    Product.SINGLE_CALL,
)


DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class CallingWindow:
    """Calls may start from ``start`` (inclusive) to ``end`` (exclusive), facility local time,
    on the listed days ("mon".."sun"). ``end`` before ``start`` wraps past midnight (the
    day is the day the window starts).
    """

    start: time
    end: time
    days: frozenset[str] = frozenset(DAY_NAMES)

    def contains(self, local: datetime) -> bool:
        t = local.time()
        today = DAY_NAMES[local.weekday()]
        yesterday = DAY_NAMES[(local.weekday() - 1) % 7]
        if self.start <= self.end:
            return today in self.days and self.start <= t < self.end
        return (today in self.days and t >= self.start) or (
            yesterday in self.days and t < self.end
        )


@dataclass(frozen=True)
class FacilityPolicy:
    """What the accounts service needs to know of one facility."""

    id: str
    rated: RatedFacility
    max_call_seconds: int
    refund_window_days: int = 180
    allowed_list_required: bool = False
    single_call_allowed: bool = True
    funding_order: tuple[Product, ...] = DEFAULT_FUNDING_ORDER
    timezone: str = "UTC"
    #: Empty: calls allowed at any hour.
    calling_hours: tuple[CallingWindow, ...] = ()
    #: PIN guessing: wrong PINs from one station that lock its PIN entry.
    pin_guard: PinGuardPolicy = field(default_factory=PinGuardPolicy)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_call_seconds <= 0:
            raise ValueError(f"{self.id}: max_call_seconds must be positive")
        if self.refund_window_days < 0:
            raise ValueError(f"{self.id}: refund_window_days must not be negative")
        unknown = [p for p in self.funding_order if Product(p) not in Product]
        if unknown or len(set(self.funding_order)) != len(self.funding_order):
            raise ValueError(f"{self.id}: funding_order must list distinct products")
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def within_calling_hours(self, at: datetime) -> bool:
        if not self.calling_hours:
            return True
        local = at.astimezone(self._zone)
        return any(window.contains(local) for window in self.calling_hours)

    @classmethod
    def from_config(cls, facility: Any) -> FacilityPolicy:
        """Build from the service configuration's facility section."""
        hours = getattr(facility, "calling_hours", ()) or ()
        windows = tuple(
            w if isinstance(w, CallingWindow) else _window(w) for w in _as_windows(hours)
        )
        order = getattr(facility, "funding_order", None) or DEFAULT_FUNDING_ORDER
        return cls(
            id=facility.id,
            rated=facility.rated,
            max_call_seconds=int(facility.max_call_minutes) * 60,
            refund_window_days=int(facility.refund_window_days),
            allowed_list_required=bool(facility.allowed_list_required),
            single_call_allowed=bool(facility.single_call_allowed),
            funding_order=tuple(Product(p) for p in order),
            timezone=str(getattr(facility, "timezone", "UTC") or "UTC"),
            calling_hours=windows,
            pin_guard=_pin_guard(getattr(getattr(facility, "menu", None), "pin_lock", None)),
        )


def _pin_guard(pin_lock: Any) -> PinGuardPolicy:
    """The facility's ``[menu.pin_lock]`` (minutes) as a policy (seconds); defaults if absent."""
    if pin_lock is None:
        return PinGuardPolicy()
    return PinGuardPolicy(
        failures=int(pin_lock.failures),
        window_seconds=int(pin_lock.window_minutes) * 60,
        lock_seconds=int(pin_lock.lock_minutes) * 60,
    )


def _as_windows(hours: Any) -> Sequence[Any]:
    if isinstance(hours, (list, tuple)):
        return hours
    return [hours]


def _window(value: Any) -> CallingWindow:
    """A window from ("07:00", "22:00"), "07:00-22:00" or an object with start/end/days."""
    if isinstance(value, str):
        start, _, end = value.partition("-")
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        start, end = value
    else:
        days = getattr(value, "days", None) or DAY_NAMES
        return CallingWindow(_time(value.start), _time(value.end), frozenset(days))
    return CallingWindow(_time(start), _time(end))


def _time(value: Any) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value).strip())


@dataclass(frozen=True)
class AccountsPolicy:
    """Service-wide account rules; money in units."""

    deposit_min_units: int = to_units("0.01")
    deposit_max_units: int = to_units("500.00")
    closure_hold_days: int = 7
    inactivity_flag_days: int = 180
    refund_review_threshold_units: int = to_units("100.00")
    direct_bill_initial_limit_units: int = to_units("30.00")
    direct_bill_raised_limit_units: int = to_units("50.00")
    direct_bill_on_time_days: int = 90
    invoice_due_days: int = 21
    heartbeat_seconds: int = 15
    #: A payer that cannot afford this long a call is passed over.
    min_call_seconds: int = 60
    default_refund_window_days: int = 180

    def __post_init__(self) -> None:
        if self.deposit_min_units <= 0:
            raise ValueError("deposit_min must be positive")
        # Families must be able to deposit at least $50 in one transaction.
        if self.deposit_max_units < to_units("50.00"):
            raise ValueError("deposit_max must be at least 50.00")
        if self.deposit_min_units > self.deposit_max_units:
            raise ValueError("deposit_min must not exceed deposit_max")
        if self.min_call_seconds <= 0 or self.heartbeat_seconds <= 0:
            raise ValueError("min_call_seconds and heartbeat_seconds must be positive")

    @classmethod
    def from_config(cls, section: Any) -> AccountsPolicy:
        """Build from the service configuration's ``accounts`` section (Decimal money)."""
        values: dict[str, Any] = {}
        money = {
            "deposit_min": "deposit_min_units",
            "deposit_max": "deposit_max_units",
            "refund_review_threshold": "refund_review_threshold_units",
            "direct_bill_initial_limit": "direct_bill_initial_limit_units",
            "direct_bill_raised_limit": "direct_bill_raised_limit_units",
        }
        for name, target in money.items():
            value = getattr(section, name, None)
            if value is not None:
                values[target] = to_units(value, places=2, field=name)
        for name in (
            "closure_hold_days",
            "inactivity_flag_days",
            "direct_bill_on_time_days",
            "heartbeat_seconds",
            "invoice_due_days",
        ):
            value = getattr(section, name, None)
            if value is not None:
                values[name] = int(value)
        return cls(**values)
