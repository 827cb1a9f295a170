"""The store interface: small atomic primitives that every account store implements.

Business rules (funding order, product rules, pricing) live in
``accounts.service``; a store only keeps records and moves money in single
atomic steps, so a second store (Redis, one Lua script per step) re-implements
just these methods and passes the same contract suite.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accounts.cdr import CallDetailRecord, CdrFilter
from accounts.errors import InvalidRequest
from accounts.model import (
    Account,
    AccountStatus,
    Invoice,
    LedgerTransaction,
    Leg,
    Person,
    Receivable,
    ReceivableStatus,
    Refund,
    RefundStatus,
    Reservation,
    Restriction,
    Subscription,
)

# The pure money checks live with the money rules; importable from here as before.
from accounts.postings import EARNING_BOOKS as EARNING_BOOKS
from accounts.postings import check_account_legs as check_account_legs
from accounts.postings import checked_charge as checked_charge
from accounts.station_locks import PinGuardPolicy, StationLock

#: The longest facility id or station a store keeps a PIN-guessing count under.
STATION_KEY_MAX = 64


def check_station_key(facility_id: str, station: str) -> None:
    """``InvalidRequest`` unless both name something a store may key a count by.

    The station comes off the wire (the From URI's user part): it must be
    1 to ``STATION_KEY_MAX`` characters with no control characters, so that
    it can be neither a way to write unbounded keys nor to smuggle a newline
    into a log line or a Redis key.
    """
    for name, value in (("facility", facility_id), ("station", station)):
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{name}: must not be empty")
        if len(value) > STATION_KEY_MAX:
            raise InvalidRequest(f"{name}: longer than {STATION_KEY_MAX} characters")
        if any(not ch.isprintable() for ch in value):
            raise InvalidRequest(f"{name}: contains a control character")


def restriction_id(r: Restriction) -> str:
    """A stable id for a restriction, derived from its content.

    The store keeps a person's restrictions as a plain list, so the id is what
    the restriction says: the same restriction set twice is one restriction.
    """
    until = "" if r.until is None else r.until.astimezone(UTC).isoformat(timespec="microseconds")
    digest = hashlib.sha256("\x1f".join((r.kind, until, r.note)).encode()).hexdigest()
    return f"rs-{digest[:16]}"


@dataclass(frozen=True)
class ScreeningFacts:
    """Everything screening needs about one (facility, PIN, number), read in one call."""

    person: Person | None
    facility_blocked: bool
    self_blocked: bool
    privileged: bool


@dataclass(frozen=True)
class PayerCandidates:
    """Every account that could pay for a call, read in one call."""

    subscription: Subscription | None
    debit: Account | None
    advance_connect: Account | None
    direct_bill: Account | None
    #: Direct Bill invoices of ``direct_bill`` (paid status is derived by the service).
    direct_bill_invoices: tuple[Invoice, ...]
    #: Total paid into ``direct_bill`` (all payments ever), in units.
    direct_bill_paid_units: int
    #: A Single Call to the number failed payment and is still unpaid.
    single_call_barred: bool


#: Account fields the service may change with ``update_account``.
MUTABLE_ACCOUNT_FIELDS = frozenset(
    {
        "status",
        "credit_limit_units",
        "holder_name",
        "closure_due_at",
        "inactive_flagged_at",
    }
)


class AccountStore(abc.ABC):
    """Atomic primitives over accounts, the ledger, screening data and CDRs.

    Every method that moves money is one atomic step: it either applies in
    full or raises and changes nothing.
    """

    # -- lifecycle ---------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Create the schema if needed; safe to call on an existing store."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def is_empty(self) -> bool:
        """True when the store holds no accounts and no people (a fresh store)."""

    # -- accounts ----------------------------------------------------------
    @abc.abstractmethod
    async def create_account(self, account: Account) -> Account:
        """Add an account; ``DuplicateRequest`` if the id exists, ``InvalidState``
        if one of its numbers already has an account of the same product, or the
        person already has a Debit account."""

    @abc.abstractmethod
    async def get_account(self, account_id: str) -> Account:
        """The account with its cached balance; ``UnknownAccount`` if absent."""

    @abc.abstractmethod
    async def list_accounts(
        self,
        *,
        product: str | None = None,
        status: AccountStatus | None = None,
        number_e164: str | None = None,
    ) -> list[Account]: ...

    @abc.abstractmethod
    async def update_account(self, account_id: str, **changes: object) -> Account:
        """Change fields listed in ``MUTABLE_ACCOUNT_FIELDS``."""

    @abc.abstractmethod
    async def attach_number(self, account_id: str, number_e164: str) -> Account: ...

    @abc.abstractmethod
    async def detach_number(self, account_id: str, number_e164: str) -> Account: ...

    # -- ledger ------------------------------------------------------------
    @abc.abstractmethod
    async def post(
        self, tx: LedgerTransaction, *, floors: dict[str, int] | None = None
    ) -> LedgerTransaction:
        """Append ``tx`` atomically.

        Its account and hold legs must be on ``tx.account_id``
        (``check_account_legs``). ``floors`` maps account ids to the lowest
        spendable balance allowed after the post (``InsufficientFunds``
        otherwise). A reused idempotency key
        raises ``DuplicateRequest``. ``ACCOUNT`` legs update the account's cached
        balance and last activity; ``UnknownAccount`` if an account leg names no
        account.
        """

    @abc.abstractmethod
    async def transactions(
        self,
        *,
        account_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str | None = None,
    ) -> list[LedgerTransaction]:
        """Posted transactions with their legs, oldest first.

        ``account_id`` selects the transactions posted for that account (its
        deposits, payments, holds, calls and refunds); ``since`` is inclusive,
        ``until`` exclusive.
        """

    @abc.abstractmethod
    async def book_balance(self, book: str, ref: str) -> int:
        """Sum of the entries of one book, computed from the entries themselves."""

    @abc.abstractmethod
    async def book_totals(self) -> dict[tuple[str, str], int]:
        """Sum of entries per (book, ref), computed from the entries themselves."""

    # -- reservations --------------------------------------------------------
    @abc.abstractmethod
    async def reserve(self, reservation: Reservation, *, floor_units: int) -> Reservation:
        """Hold ``amount_units`` of the account (or ``max_seconds`` of the
        subscription) for a call, atomically.

        Raises ``InsufficientFunds`` if the account's balance minus the amount
        would fall below ``floor_units`` (or the subscription has fewer seconds
        left), ``InvalidState`` if the account is not open, ``DuplicateRequest``
        if the reservation id or call id is taken.
        """

    @abc.abstractmethod
    async def heartbeat(self, reservation_id: str, seconds: int, at: datetime) -> Reservation:
        """Record progress; seconds never go backwards. ``InvalidState`` once settled."""

    @abc.abstractmethod
    async def settle(
        self,
        reservation_id: str,
        *,
        talked_seconds: int,
        charge_legs: Sequence[Leg],
        at: datetime,
        receivable_id: str | None = None,
    ) -> Reservation:
        """Charge and close a reservation atomically.

        ``charge_legs`` are the positive legs earned (revenue, fees, tax); their
        sum is the charge. For a money reservation the charge may not exceed the
        amount held (``InvalidRequest``): the hold is released, the remainder
        returns to the account. For a subscription, ``min(talked, held)``
        seconds are used. For a Single Call a receivable with id
        ``receivable_id`` is recorded for the charge. ``InvalidState`` if the
        reservation is already settled.
        """

    @abc.abstractmethod
    async def get_reservation(self, reservation_id: str) -> Reservation: ...

    @abc.abstractmethod
    async def open_reservations(self) -> list[Reservation]: ...

    # -- refunds -------------------------------------------------------------
    @abc.abstractmethod
    async def create_refund(self, refund: Refund, *, at: datetime) -> Refund:
        """Move ``amount_units`` from the account to refund-payable atomically;
        ``InsufficientFunds`` if the balance is smaller. If the refund is created
        already ``PAID`` the payout is posted in the same step."""

    @abc.abstractmethod
    async def decide_refund(self, refund_id: str, status: RefundStatus, *, at: datetime) -> Refund:
        """Approve, reject (money back to the account) or pay a refund, atomically.

        Allowed transitions: pending_review -> approved | rejected,
        approved -> paid, pending_review -> paid is not allowed (approve first).
        """

    @abc.abstractmethod
    async def get_refund(self, refund_id: str) -> Refund: ...

    @abc.abstractmethod
    async def list_refunds(
        self, *, status: RefundStatus | None = None, account_id: str | None = None
    ) -> list[Refund]: ...

    # -- invoices (Direct Bill) ---------------------------------------------
    @abc.abstractmethod
    async def add_invoice(self, invoice: Invoice) -> Invoice: ...

    @abc.abstractmethod
    async def list_invoices(self, account_id: str) -> list[Invoice]: ...

    # -- Single Call receivables --------------------------------------------
    @abc.abstractmethod
    async def get_receivable(self, receivable_id: str) -> Receivable: ...

    @abc.abstractmethod
    async def list_receivables(
        self, *, number_e164: str | None = None, status: ReceivableStatus | None = None
    ) -> list[Receivable]: ...

    @abc.abstractmethod
    async def settle_receivable(
        self, receivable_id: str, status: ReceivableStatus, *, method: str, at: datetime
    ) -> Receivable:
        """Confirm (money in, posted atomically) or fail a receivable.

        pending -> confirmed | failed; failed -> confirmed (paid later).
        """

    # -- subscriptions ---------------------------------------------------------
    @abc.abstractmethod
    async def add_subscription(
        self, subscription: Subscription, *, method: str, idempotency_key: str, at: datetime
    ) -> Subscription:
        """Record a subscription and its payment (funds in, revenue) atomically."""

    @abc.abstractmethod
    async def get_subscription(self, subscription_id: str) -> Subscription: ...

    @abc.abstractmethod
    async def list_subscriptions(
        self, *, number_e164: str | None = None, facility_id: str | None = None
    ) -> list[Subscription]: ...

    # -- people and screening --------------------------------------------------
    @abc.abstractmethod
    async def add_person(self, person: Person) -> Person: ...

    @abc.abstractmethod
    async def get_person(self, facility_id: str, pin: str) -> Person: ...

    @abc.abstractmethod
    async def list_people(self, facility_id: str | None = None) -> list[Person]: ...

    @abc.abstractmethod
    async def set_allowed_number(
        self, facility_id: str, pin: str, number_e164: str, allowed: bool
    ) -> Person: ...

    @abc.abstractmethod
    async def set_restrictions(
        self, facility_id: str, pin: str, restrictions: Sequence[Restriction]
    ) -> Person: ...

    @abc.abstractmethod
    async def add_restriction(self, facility_id: str, pin: str, restriction: Restriction) -> bool:
        """Add a restriction in one atomic step; False if an equal one is already there.

        Equal means the same ``restriction_id``. ``NotFound`` if there is no such person.
        """

    @abc.abstractmethod
    async def remove_restriction(self, facility_id: str, pin: str, restriction_id: str) -> bool:
        """Remove the restriction with this ``restriction_id`` in one atomic step.

        False if the person has none with that id; ``NotFound`` if there is no such person.
        """

    @abc.abstractmethod
    async def set_person_language(self, facility_id: str, pin: str, language: str) -> Person: ...

    @abc.abstractmethod
    async def mark_released(self, facility_id: str, pin: str, at: datetime) -> Person: ...

    @abc.abstractmethod
    async def set_facility_block(
        self, facility_id: str, pattern: str, *, prefix: bool, blocked: bool
    ) -> None:
        """Block (or unblock) a number, or every number starting with a prefix."""

    @abc.abstractmethod
    async def list_facility_blocks(self, facility_id: str) -> list[tuple[str, bool]]:
        """(pattern, is_prefix) pairs."""

    @abc.abstractmethod
    async def set_self_block(
        self, number_e164: str, facility_id: str | None, blocked: bool
    ) -> None:
        """A called party's block of one facility, or of all (``facility_id`` None)."""

    @abc.abstractmethod
    async def list_self_blocks(self, number_e164: str) -> list[str | None]: ...

    @abc.abstractmethod
    async def set_privileged(self, number_e164: str, privileged: bool, note: str = "") -> None: ...

    @abc.abstractmethod
    async def list_privileged(self) -> list[str]: ...

    @abc.abstractmethod
    async def screening_facts(
        self, facility_id: str, pin: str, number_e164: str
    ) -> ScreeningFacts: ...

    @abc.abstractmethod
    async def payer_candidates(
        self, facility_id: str, pin: str, number_e164: str, at: datetime
    ) -> PayerCandidates: ...

    # -- call detail records ---------------------------------------------------
    @abc.abstractmethod
    async def add_cdr(self, cdr: CallDetailRecord) -> CallDetailRecord:
        """``DuplicateRequest`` if a record for the call id exists."""

    @abc.abstractmethod
    async def get_cdr(self, call_id: str) -> CallDetailRecord: ...

    @abc.abstractmethod
    async def list_cdrs(self, filters: CdrFilter | None = None) -> list[CallDetailRecord]: ...

    # -- PIN guessing ------------------------------------------------------------
    @abc.abstractmethod
    async def record_pin_failure(
        self, facility_id: str, station: str, at: datetime, policy: PinGuardPolicy
    ) -> StationLock | None:
        """Count one wrong PIN from ``station`` and lock it per ``policy``, atomically.

        Applies ``accounts.station_locks.record_failure`` to the failures kept
        for the station; returns the lock this failure set, if it set one.
        Counts and locks lapse by themselves (nothing is kept past the window
        or the lock). ``InvalidRequest`` (nothing written) for a facility or
        station that ``check_station_key`` refuses.
        """

    @abc.abstractmethod
    async def station_lock(
        self, facility_id: str, station: str, at: datetime
    ) -> StationLock | None:
        """The station's lock if it is still in force at ``at``."""

    @abc.abstractmethod
    async def clear_station_lock(self, facility_id: str, station: str) -> bool:
        """Lift the station's lock (an operator's decision); False if there was none."""

    @abc.abstractmethod
    async def list_station_locks(self, facility_id: str, at: datetime) -> list[StationLock]:
        """The facility's locks in force at ``at``, by station."""
