"""The money rules of every store step, planned once: records in, a frozen posting plan out.

A store step (reserve, settle, release, a refund's creation or decision, a
receivable's settlement, a subscription's purchase) reads the records it
needs, asks this module for a ``Plan`` and applies it atomically, provided
the records are still in the state the plan expects. Nothing here does I/O or
reads a clock: the time of the step is a parameter. Both stores apply the
same plans, so a rule changed here changes in both.

The refund and receivable lifecycles are tables of ``(state, event) -> next
state`` (``REFUND_TRANSITIONS``, ``RECEIVABLE_TRANSITIONS``); a transition not
in a table raises ``InvalidState``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from accounts.errors import InvalidRequest, InvalidState
from accounts.model import (
    Book,
    LedgerTransaction,
    Leg,
    Receivable,
    ReceivableStatus,
    Refund,
    RefundStatus,
    Reservation,
    ReservationStatus,
    Subscription,
)
from rating import Product

#: The books a call's charge is earned in.
EARNING_BOOKS = (Book.REVENUE, Book.FEES, Book.TAX)


# -- checks shared by the stores ---------------------------------------------------
def check_account_legs(tx: LedgerTransaction) -> None:
    """Every account and hold leg of ``tx`` must be on its own ``account_id``.

    A transaction moves the money of the one account it is posted for: that is
    what lets a store find an account's legs through its transactions (and
    keep each account's writes together), and every posting of the service
    is so. ``InvalidRequest`` otherwise.
    """
    for leg in tx.legs:
        if leg.book in (Book.ACCOUNT, Book.HOLD) and leg.ref != tx.account_id:
            raise InvalidRequest(
                f"a {leg.book} leg on {leg.ref!r} belongs in a transaction of that"
                f" account, not of {tx.account_id!r}"
            )


def checked_charge(talked_seconds: int, charge_legs: Sequence[Leg]) -> tuple[int, list[Leg]]:
    """A settlement's charge and its non-zero legs; ``InvalidRequest`` if the input is wrong."""
    charge = CallCharge.checked(talked_seconds, charge_legs)
    return charge.units, list(charge.legs)


@dataclass(frozen=True, slots=True)
class CallCharge:
    """What a settlement charges, checked: talked seconds, the total and its non-zero legs."""

    talked_seconds: int
    units: int
    legs: tuple[Leg, ...]

    @classmethod
    def checked(cls, talked_seconds: int, charge_legs: Sequence[Leg]) -> CallCharge:
        """``InvalidRequest`` for negative seconds or a leg that is not a non-negative earning."""
        if talked_seconds < 0:
            raise InvalidRequest("talked seconds must not be negative")
        units = 0
        legs = []
        for leg in charge_legs:
            if leg.book not in EARNING_BOOKS or leg.amount_units < 0:
                raise InvalidRequest(f"a charge leg must be a non-negative earning, not {leg}")
            if leg.amount_units:
                units += leg.amount_units
                legs.append(leg)
        return cls(talked_seconds, units, tuple(legs))


#: Nothing charged: a call that never connected.
NO_CHARGE = CallCharge(0, 0, ())


# -- lifecycles ----------------------------------------------------------------------
class RefundEvent(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    PAY = "pay"


#: A refund's legal moves. Paying needs an approval first.
REFUND_TRANSITIONS: dict[tuple[RefundStatus, RefundEvent], RefundStatus] = {
    (RefundStatus.PENDING_REVIEW, RefundEvent.APPROVE): RefundStatus.APPROVED,
    (RefundStatus.PENDING_REVIEW, RefundEvent.REJECT): RefundStatus.REJECTED,
    (RefundStatus.APPROVED, RefundEvent.PAY): RefundStatus.PAID,
}

#: The states a refund may be created in.
REFUND_START_STATES = frozenset({RefundStatus.PENDING_REVIEW, RefundStatus.APPROVED})

#: The decision that leads to each status (``AccountStore.decide_refund`` names the status).
_REFUND_EVENT_TO = {next_: event for (_, event), next_ in REFUND_TRANSITIONS.items()}


class ReceivableEvent(StrEnum):
    CONFIRM = "confirm"
    FAIL = "fail"


#: A receivable's legal moves: a failed one may still be paid later.
RECEIVABLE_TRANSITIONS: dict[tuple[ReceivableStatus, ReceivableEvent], ReceivableStatus] = {
    (ReceivableStatus.PENDING, ReceivableEvent.CONFIRM): ReceivableStatus.CONFIRMED,
    (ReceivableStatus.PENDING, ReceivableEvent.FAIL): ReceivableStatus.FAILED,
    (ReceivableStatus.FAILED, ReceivableEvent.CONFIRM): ReceivableStatus.CONFIRMED,
}

_RECEIVABLE_EVENT_TO = {next_: event for (_, event), next_ in RECEIVABLE_TRANSITIONS.items()}


def refund_transition(refund: Refund, status: RefundStatus) -> RefundEvent:
    """The event that takes ``refund`` to ``status``; ``InvalidState`` if the table has none."""
    event = _REFUND_EVENT_TO.get(status)
    if event is None or (refund.status, event) not in REFUND_TRANSITIONS:
        raise InvalidState(f"refund {refund.id!r} is {refund.status}, cannot be {status}")
    return event


def receivable_transition(receivable: Receivable, status: ReceivableStatus) -> ReceivableEvent:
    """The event that takes ``receivable`` to ``status``; ``InvalidState`` if the table has none."""
    event = _RECEIVABLE_EVENT_TO.get(status)
    if event is None or (receivable.status, event) not in RECEIVABLE_TRANSITIONS:
        raise InvalidState(f"receivable {receivable.id!r} is {receivable.status}, not {status}")
    return event


# -- plans ---------------------------------------------------------------------------
class Step(StrEnum):
    RESERVE = "reserve"
    SETTLE = "settle"
    REFUND_CREATE = "refund_create"
    REFUND_DECISION = "refund_decision"
    RECEIVABLE_SETTLEMENT = "receivable_settlement"
    SUBSCRIPTION_PURCHASE = "subscription_purchase"


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """Deltas to one account's cached balance and hold, and what must hold when applied."""

    account_id: str
    balance_units: int = 0
    held_units: int = 0
    #: Expected: the balance after the change is at least this (None: no check).
    floor_units: int | None = None
    #: Expected: the account is open.
    must_be_open: bool = False
    #: A talked call from this facility: last call and activity become ``Plan.at``,
    #: the inactivity flag is cleared.
    call_facility: str | None = None


@dataclass(frozen=True, slots=True)
class SecondsChange:
    """Deltas to a subscription's held and used seconds."""

    subscription_id: str
    held_seconds: int = 0
    used_seconds: int = 0
    #: Expected: at least this many seconds remain uncovered before the change.
    needs_seconds: int = 0


@dataclass(frozen=True, slots=True)
class ReservationChange:
    """A reservation as the step leaves it, and as it must be found."""

    record: Reservation
    #: None: no reservation with this id or call id exists yet.
    expected: ReservationStatus | None
    #: Expected units held by it (checked only when ``expected`` is not None).
    expected_held_units: int = 0


@dataclass(frozen=True, slots=True)
class RefundChange:
    record: Refund
    #: None: no refund with this id exists yet.
    expected: RefundStatus | None


@dataclass(frozen=True, slots=True)
class ReceivableChange:
    record: Receivable
    #: None: no receivable with this id exists yet.
    expected: ReceivableStatus | None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one step changes, and the state its records must still be in.

    The ledger transaction's account and hold legs are exactly the balance
    change (checked here), so a store that applies both keeps its cached
    balances equal to the sums of the legs.
    """

    step: Step
    at: datetime
    transaction: LedgerTransaction | None = None
    balance: BalanceChange | None = None
    seconds: SecondsChange | None = None
    reservation: ReservationChange | None = None
    refund: RefundChange | None = None
    receivable: ReceivableChange | None = None
    #: A subscription the step creates (none with its id may exist).
    new_subscription: Subscription | None = None

    def __post_init__(self) -> None:
        account = held = 0
        if self.transaction is not None:
            for leg in self.transaction.legs:
                if leg.book is Book.ACCOUNT:
                    account += leg.amount_units
                elif leg.book is Book.HOLD:
                    held += leg.amount_units
        b = self.balance
        if b is None:
            if account or held:
                raise ValueError(f"plan {self.step}: account legs without a balance change")
        elif (b.balance_units, b.held_units) != (account, held):
            raise ValueError(
                f"plan {self.step}: balance change {b} does not match the legs"
                f" ({account} spendable, {held} held)"
            )


def plan_reserve(reservation: Reservation, *, floor_units: int) -> Plan:
    """Hold a call's money on its account (and/or its seconds on its subscription).

    Expected: the account is open and keeps at least ``floor_units`` after the
    hold, the subscription has ``max_seconds`` left, the reservation is new.
    """
    r = reservation
    if r.amount_units < 0 or r.max_seconds <= 0:
        raise InvalidRequest("a reservation needs a non-negative amount and positive seconds")
    if r.amount_units and r.account_id is None:
        raise InvalidRequest("a reservation holding money needs an account")
    if r.status is not ReservationStatus.OPEN or r.heartbeat_seconds:
        raise InvalidRequest("a new reservation is open and has no heartbeat yet")
    balance = tx = seconds = None
    if r.account_id is not None:
        balance = BalanceChange(r.account_id, -r.amount_units, r.amount_units, floor_units, True)
        if r.amount_units:
            tx = LedgerTransaction(
                kind="reserve",
                at=r.created_at,
                account_id=r.account_id,
                call_id=r.call_id,
                legs=(
                    Leg(Book.ACCOUNT, r.account_id, -r.amount_units),
                    Leg(Book.HOLD, r.account_id, r.amount_units),
                ),
            )
    if r.subscription_id is not None:
        seconds = SecondsChange(
            r.subscription_id, held_seconds=r.max_seconds, needs_seconds=r.max_seconds
        )
    return Plan(Step.RESERVE, r.created_at, tx, balance, seconds, ReservationChange(r, None))


def plan_settle(
    reservation: Reservation,
    charge: CallCharge,
    *,
    at: datetime,
    receivable_id: str | None = None,
) -> Plan:
    """Charge and close an open reservation, releasing the rest of what it holds.

    The payer is, in this order: its subscription (``min(talked, max)``
    seconds used, no money), its account (the charge, never above the hold;
    the remainder returns to the balance), or nobody, a Single Call (a
    receivable ``receivable_id`` is created for a charge).
    """
    r = reservation
    if r.status is not ReservationStatus.OPEN:
        raise InvalidState(f"reservation {r.id!r} is already settled")
    talked = charge.talked_seconds
    settled = ReservationChange(
        _settled(r, at, talked, charge.units), ReservationStatus.OPEN, r.amount_units
    )
    if r.subscription_id is not None:
        if charge.units:
            raise InvalidRequest("a subscription call carries no money charge")
        return Plan(
            Step.SETTLE,
            at,
            seconds=SecondsChange(
                r.subscription_id,
                held_seconds=-r.max_seconds,
                used_seconds=min(talked, r.max_seconds),
            ),
            reservation=settled,
        )
    if r.account_id is not None:
        if charge.units > r.amount_units:
            raise InvalidRequest(
                f"charge {charge.units} exceeds the {r.amount_units} units reserved"
            )
        back = r.amount_units - charge.units
        tx = None
        if r.amount_units:
            legs = [Leg(Book.HOLD, r.account_id, -r.amount_units)]
            if back:
                legs.append(Leg(Book.ACCOUNT, r.account_id, back))
            legs.extend(charge.legs)
            tx = LedgerTransaction(
                kind="call",
                at=at,
                account_id=r.account_id,
                call_id=r.call_id,
                seconds=talked,
                legs=tuple(legs),
                memo=r.number_e164,
            )
        balance = BalanceChange(
            r.account_id, back, -r.amount_units, None, False, r.facility_id if talked > 0 else None
        )
        return Plan(Step.SETTLE, at, tx, balance, None, settled)
    if not charge.units:
        return Plan(Step.SETTLE, at, reservation=settled)
    if receivable_id is None:
        raise InvalidRequest("a Single Call charge needs a receivable id")
    return Plan(
        Step.SETTLE,
        at,
        transaction=LedgerTransaction(
            kind="single_call",
            at=at,
            call_id=r.call_id,
            seconds=talked,
            legs=(Leg(Book.RECEIVABLE, receivable_id, -charge.units), *charge.legs),
            memo=r.number_e164,
        ),
        reservation=settled,
        receivable=ReceivableChange(
            Receivable(
                id=receivable_id,
                number_e164=r.number_e164,
                call_id=r.call_id,
                facility_id=r.facility_id,
                amount_units=charge.units,
                created_at=at,
            ),
            expected=None,
        ),
    )


def _settled(r: Reservation, at: datetime, talked: int, units: int) -> Reservation:
    """``r`` settled: ``dataclasses.replace`` spelled out, at half its cost (every call)."""
    return Reservation(
        id=r.id,
        call_id=r.call_id,
        product=r.product,
        facility_id=r.facility_id,
        number_e164=r.number_e164,
        created_at=r.created_at,
        max_seconds=r.max_seconds,
        amount_units=r.amount_units,
        account_id=r.account_id,
        subscription_id=r.subscription_id,
        pin=r.pin,
        status=ReservationStatus.SETTLED,
        heartbeat_seconds=r.heartbeat_seconds,
        heartbeat_at=r.heartbeat_at,
        settled_at=at,
        talked_seconds=talked,
        charged_units=units,
        owner=r.owner,
        jurisdiction=r.jurisdiction,
        privileged=r.privileged,
        station=r.station,
    )


def plan_release(reservation: Reservation, *, at: datetime) -> Plan:
    """Close a reservation whose call never connected: nothing charged, all released."""
    return plan_settle(reservation, NO_CHARGE, at=at)


def plan_refund_create(refund: Refund, *, at: datetime) -> Plan:
    """Move a refund's amount from the account to refund-payable.

    Expected: the refund is new and the balance covers it (never below zero).
    """
    if refund.amount_units <= 0:
        raise InvalidRequest("a refund must be a positive amount")
    if refund.status not in REFUND_START_STATES:
        raise InvalidRequest("a refund starts pending review or approved")
    return Plan(
        Step.REFUND_CREATE,
        at,
        transaction=LedgerTransaction(
            kind="refund",
            at=at,
            account_id=refund.account_id,
            legs=(
                Leg(Book.ACCOUNT, refund.account_id, -refund.amount_units),
                Leg(Book.REFUND_PAYABLE, refund.id, refund.amount_units),
            ),
            memo=f"refund {refund.id} by {refund.method}",
        ),
        balance=BalanceChange(
            refund.account_id, balance_units=-refund.amount_units, floor_units=0
        ),
        refund=RefundChange(refund, expected=None),
    )


def plan_refund_decision(refund: Refund, status: RefundStatus, *, at: datetime) -> Plan:
    """Approve, reject (the money back to the account) or pay out a refund.

    Expected: the refund is still in the status it was read in.
    """
    event = refund_transition(refund, status)
    decided = RefundChange(replace(refund, status=status, decided_at=at), expected=refund.status)
    if event is RefundEvent.APPROVE:
        return Plan(Step.REFUND_DECISION, at, refund=decided)
    amount = refund.amount_units
    balance = None
    if event is RefundEvent.PAY:
        kind, memo = "refund_paid", f"refund {refund.id} paid by {refund.method}"
        to = Leg(Book.FUNDS_OUT, str(refund.method), amount)
    else:
        kind, memo = "refund_rejected", f"refund {refund.id} rejected"
        to = Leg(Book.ACCOUNT, refund.account_id, amount)
        balance = BalanceChange(refund.account_id, balance_units=amount)
    tx = LedgerTransaction(
        kind=kind,
        at=at,
        account_id=refund.account_id,
        legs=(Leg(Book.REFUND_PAYABLE, refund.id, -amount), to),
        memo=memo,
    )
    return Plan(Step.REFUND_DECISION, at, transaction=tx, balance=balance, refund=decided)


def plan_receivable_settlement(
    receivable: Receivable, status: ReceivableStatus, *, method: str, at: datetime
) -> Plan:
    """Confirm (the money arrives by ``method``) or fail a Single Call receivable.

    Expected: the receivable is still in the status it was read in.
    """
    event = receivable_transition(receivable, status)
    tx = None
    if event is ReceivableEvent.CONFIRM:
        tx = LedgerTransaction(
            kind="receivable_paid",
            at=at,
            call_id=receivable.call_id,
            legs=(
                Leg(Book.RECEIVABLE, receivable.id, receivable.amount_units),
                Leg(Book.FUNDS_IN, method, -receivable.amount_units),
            ),
            memo=receivable.number_e164,
        )
    return Plan(
        Step.RECEIVABLE_SETTLEMENT,
        at,
        transaction=tx,
        receivable=ReceivableChange(
            replace(receivable, status=status, settled_at=at), expected=receivable.status
        ),
    )


def plan_subscription_purchase(
    subscription: Subscription, *, method: str, idempotency_key: str, at: datetime
) -> Plan:
    """Record a new subscription and its payment: funds in, subscription revenue.

    Expected: no subscription with its id exists, the idempotency key is unused.
    """
    s = subscription
    tx = None
    if s.price_units:
        tx = LedgerTransaction(
            kind="subscription",
            at=at,
            idempotency_key=idempotency_key,
            legs=(
                Leg(Book.FUNDS_IN, method, -s.price_units),
                Leg(Book.REVENUE, str(Product.SUBSCRIPTION), s.price_units),
            ),
            memo=f"subscription {s.id} {s.number_e164} at {s.facility_id}",
        )
    return Plan(Step.SUBSCRIPTION_PURCHASE, at, transaction=tx, new_subscription=s)
