"""Records the accounts layer keeps: accounts, reservations, ledger legs, refunds, invoices."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from rating import Product


class AccountStatus(StrEnum):
    OPEN = "open"
    #: A closure was requested; no new calls, the remainder is refunded when it is due.
    CLOSING = "closing"
    CLOSED = "closed"


class Book(StrEnum):
    """Ledger books. Every transaction's legs add to zero across books.

    Sign convention: a positive ``ACCOUNT`` balance is money held for the
    customer; money arriving from outside is a negative leg on ``FUNDS_IN``;
    money we earn is a positive leg on ``REVENUE``/``FEES``/``TAX``.
    """

    ACCOUNT = "account"  # ref: account id; the spendable balance
    HOLD = "hold"  # ref: account id; funds reserved for calls in progress
    FUNDS_IN = "funds_in"  # ref: funding method (card, check, ...)
    FUNDS_OUT = "funds_out"  # ref: refund method; money paid back out
    REVENUE = "revenue"  # ref: product
    FEES = "fees"  # ref: product
    TAX = "tax"  # ref: product
    REFUND_PAYABLE = "refund_payable"  # ref: refund id; owed back, not yet paid
    RECEIVABLE = "receivable"  # ref: receivable id; owed to us for a Single Call


class FundingMethod(StrEnum):
    CARD = "card"
    CHECK = "check"
    MONEY_ORDER = "money_order"
    CASH_AGENT = "cash_agent"
    #: The facility's trust (commissary) account; Debit only.
    TRUST = "trust"


class RefundMethod(StrEnum):
    CARD = "card"
    CHECK = "check"


class RefundStatus(StrEnum):
    #: Over the review threshold (or outside the window): waits for approval.
    PENDING_REVIEW = "pending_review"
    #: Approved and owed; the money sits in the refund-payable book until paid.
    APPROVED = "approved"
    PAID = "paid"
    #: Rejected on review: the money goes back to the account.
    REJECTED = "rejected"


class ReceivableStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    #: The processor failed it: no further Single Call to that number until paid.
    FAILED = "failed"


class ReservationStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"


@dataclass(frozen=True)
class Account:
    id: str
    product: Product
    created_at: datetime
    status: AccountStatus = AccountStatus.OPEN
    #: Called numbers (E.164) an AdvanceConnect or Direct Bill account pays for.
    numbers: tuple[str, ...] = ()
    #: Owner of a Debit account.
    facility_id: str | None = None
    pin: str | None = None
    #: Direct Bill: how far below zero the balance may go, in units.
    credit_limit_units: int = 0
    holder_name: str = ""
    #: Last deposit, call or payment; drives the inactivity flag.
    last_activity_at: datetime | None = None
    last_call_at: datetime | None = None
    last_call_facility: str | None = None
    closure_due_at: datetime | None = None
    inactive_flagged_at: datetime | None = None
    #: Cached sums of the ledger, kept in the same transaction as each post.
    balance_units: int = 0
    held_units: int = 0

    @property
    def floor_units(self) -> int:
        """The lowest the spendable balance may go."""
        return -self.credit_limit_units


@dataclass(frozen=True)
class Leg:
    book: Book
    ref: str
    amount_units: int


#: Most legs one transaction may have (a call has at most six).
MAX_LEGS = 32


@dataclass(frozen=True)
class LedgerTransaction:
    """One money movement: legs that add to zero, posted atomically."""

    kind: str
    at: datetime
    legs: tuple[Leg, ...]
    account_id: str | None = None
    idempotency_key: str | None = None
    call_id: str | None = None
    seconds: int | None = None
    memo: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        if sum(leg.amount_units for leg in self.legs) != 0:
            raise ValueError(f"ledger transaction {self.kind!r} does not balance: {self.legs}")
        if not 0 < len(self.legs) <= MAX_LEGS:
            raise ValueError(f"a ledger transaction needs 1 to {MAX_LEGS} legs")


@dataclass(frozen=True)
class Reservation:
    """Funds (or subscription seconds) held for one call until it is settled."""

    id: str
    call_id: str
    product: Product
    facility_id: str
    number_e164: str
    created_at: datetime
    max_seconds: int
    #: Money held on ``account_id`` (0 for subscriptions and Single Calls).
    amount_units: int = 0
    account_id: str | None = None
    subscription_id: str | None = None
    pin: str = ""
    status: ReservationStatus = ReservationStatus.OPEN
    heartbeat_seconds: int = 0
    heartbeat_at: datetime | None = None
    settled_at: datetime | None = None
    talked_seconds: int | None = None
    charged_units: int | None = None
    #: The node (``ics serve`` process) that carries the call; a surviving node
    #: adopts the call when this one's lease expires ("" on a single node).
    owner: str = ""
    #: What a CDR written from the hold alone (an adopted or recovered call) needs.
    jurisdiction: str = ""
    privileged: bool = False
    station: str = ""


@dataclass(frozen=True)
class Refund:
    id: str
    account_id: str
    amount_units: int
    method: RefundMethod
    status: RefundStatus
    requested_at: datetime
    reason: str = ""
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Invoice:
    """A Direct Bill invoice. Whether it is paid is derived from the payments."""

    id: str
    account_id: str
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    due_at: datetime
    amount_units: int


@dataclass(frozen=True)
class Receivable:
    """A Single Call charge owed by the called party, settled later by a processor."""

    id: str
    number_e164: str
    call_id: str
    facility_id: str
    amount_units: int
    created_at: datetime
    status: ReceivableStatus = ReceivableStatus.PENDING
    settled_at: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    """A fixed price covering calls between one number and one facility for a period."""

    id: str
    number_e164: str
    facility_id: str
    starts_at: datetime
    ends_at: datetime
    price_units: int
    covered_seconds: int
    used_seconds: int = 0
    held_seconds: int = 0

    @property
    def remaining_seconds(self) -> int:
        return self.covered_seconds - self.used_seconds - self.held_seconds


@dataclass(frozen=True)
class Restriction:
    """A limit on a person's calling, e.g. a suspension until a date."""

    kind: str
    until: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class Person:
    """An incarcerated person, identified by a PIN unique within a facility."""

    facility_id: str
    pin: str
    name: str = ""
    language: str = "en"
    allowed_numbers: frozenset[str] = field(default_factory=frozenset)
    restrictions: tuple[Restriction, ...] = ()
    released_at: datetime | None = None
