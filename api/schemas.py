"""JSON shapes of the admin API: accounts, ledger entries, refunds, people, CDRs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from accounts import (
    Account,
    Book,
    CallDetailRecord,
    LedgerTransaction,
    Person,
    Receivable,
    Refund,
    Restriction,
    Subscription,
)
from accounts.station_locks import StationLock
from accounts.store import restriction_id
from rating import cents_str, rate_str

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: object) -> object:
    # pydantic would take 0.5 or "1700000000" as a Unix time; the API documents
    # RFC 3339 date-times only, so anything else is refused.
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-03-10T00:00:00Z")
    return value


#: An RFC 3339 date-time with an explicit offset.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


def money_str(units: int) -> str:
    """Whole cents as '12.30'; anything finer (a rate-derived hold) with 4 places."""
    return cents_str(units) if units % 100 == 0 else rate_str(units)


class LegOut(BaseModel):
    book: str
    ref: str
    amount: str


class EntryOut(BaseModel):
    """One ledger transaction touching an account; ``amount`` is its net effect on it."""

    id: int | None
    kind: str = Field(description="deposit, payment, reserve, call, refund, ...")
    at: datetime
    amount: str = Field(description="Net change of the account's money (balance plus held).")
    memo: str
    idempotency_key: str | None = None
    call_id: str | None = None
    seconds: int | None = None
    legs: list[LegOut]

    @classmethod
    def of(cls, tx: LedgerTransaction, account_id: str | None) -> EntryOut:
        net = sum(
            leg.amount_units for leg in tx.legs
            if leg.book in (Book.ACCOUNT, Book.HOLD) and leg.ref == account_id
        )
        return cls(
            id=tx.id, kind=tx.kind, at=tx.at, amount=money_str(net), memo=tx.memo,
            idempotency_key=tx.idempotency_key, call_id=tx.call_id, seconds=tx.seconds,
            legs=[LegOut(book=str(leg.book), ref=leg.ref, amount=money_str(leg.amount_units))
                  for leg in tx.legs],
        )


class AccountOut(BaseModel):
    id: str
    product: str
    status: str
    numbers: list[str]
    facility: str | None = None
    pin: str | None = None
    holder_name: str
    balance: str = Field(description="Spendable balance (negative: owed on Direct Bill).")
    held: str = Field(description="Reserved for calls in progress.")
    credit_limit: str
    created_at: datetime
    last_activity_at: datetime | None = None
    last_call_at: datetime | None = None
    closure_due_at: datetime | None = None
    inactive_flagged_at: datetime | None = None

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(
            id=a.id, product=str(a.product), status=str(a.status), numbers=list(a.numbers),
            facility=a.facility_id, pin=a.pin, holder_name=a.holder_name,
            balance=money_str(a.balance_units), held=money_str(a.held_units),
            credit_limit=money_str(a.credit_limit_units), created_at=a.created_at,
            last_activity_at=a.last_activity_at, last_call_at=a.last_call_at,
            closure_due_at=a.closure_due_at, inactive_flagged_at=a.inactive_flagged_at,
        )


class AccountDetail(AccountOut):
    entries: list[EntryOut]


class RefundOut(BaseModel):
    id: str
    account_id: str
    amount: str
    method: str
    status: str = Field(description="pending_review, approved, paid or rejected")
    requested_at: datetime
    reason: str
    decided_at: datetime | None = None

    @classmethod
    def of(cls, r: Refund) -> RefundOut:
        return cls(
            id=r.id, account_id=r.account_id, amount=money_str(r.amount_units),
            method=str(r.method), status=str(r.status), requested_at=r.requested_at,
            reason=r.reason, decided_at=r.decided_at,
        )


class ReceivableOut(BaseModel):
    id: str
    number: str
    call_id: str
    facility: str
    amount: str
    created_at: datetime
    status: str = Field(description="pending, confirmed or failed")
    settled_at: datetime | None = None

    @classmethod
    def of(cls, r: Receivable) -> ReceivableOut:
        return cls(
            id=r.id, number=r.number_e164, call_id=r.call_id, facility=r.facility_id,
            amount=money_str(r.amount_units), created_at=r.created_at, status=str(r.status),
            settled_at=r.settled_at,
        )


class SubscriptionOut(BaseModel):
    id: str
    number: str
    facility: str
    starts_at: datetime
    ends_at: datetime
    price: str
    covered_minutes: int
    used_seconds: int
    held_seconds: int
    remaining_seconds: int

    @classmethod
    def of(cls, s: Subscription) -> SubscriptionOut:
        return cls(
            id=s.id, number=s.number_e164, facility=s.facility_id, starts_at=s.starts_at,
            ends_at=s.ends_at, price=money_str(s.price_units),
            covered_minutes=s.covered_seconds // 60, used_seconds=s.used_seconds,
            held_seconds=s.held_seconds, remaining_seconds=s.remaining_seconds,
        )


class RestrictionOut(BaseModel):
    id: str = Field(description="Stable id derived from kind, until and note.")
    kind: str
    until: datetime | None = Field(default=None,
                                   description="End of the restriction; null means indefinite.")
    note: str = ""

    @classmethod
    def of(cls, r: Restriction) -> RestrictionOut:
        return cls(id=restriction_id(r), kind=r.kind, until=r.until, note=r.note)


class StationLockOut(BaseModel):
    """A station whose PIN entry is refused until ``until``, after ``failures`` wrong PINs."""

    facility: str
    station: str = Field(description="The From URI's user part of the facility phone.")
    locked_at: datetime
    until: datetime
    failures: int

    @classmethod
    def of(cls, lock: StationLock) -> StationLockOut:
        return cls(facility=lock.facility_id, station=lock.station, locked_at=lock.locked_at,
                   until=lock.until, failures=lock.failures)


class PersonOut(BaseModel):
    facility: str
    pin: str
    name: str
    language: str
    allowed_numbers: list[str]
    restrictions: list[RestrictionOut]
    released_at: datetime | None = None

    @classmethod
    def of(cls, p: Person) -> PersonOut:
        return cls(
            facility=p.facility_id, pin=p.pin, name=p.name, language=p.language,
            allowed_numbers=sorted(p.allowed_numbers),
            restrictions=[RestrictionOut.of(r) for r in p.restrictions],
            released_at=p.released_at,
        )


class CdrOut(BaseModel):
    call_id: str
    facility: str
    pin: str
    number: str
    jurisdiction: str
    product: str
    payer_account_id: str | None
    setup_at: datetime
    answer_at: datetime | None
    accept_at: datetime | None
    end_at: datetime | None
    talked_seconds: int
    billed_seconds: int
    charge: str
    fees: str
    taxes: str
    total: str
    outcome: str
    disconnect_reason: str
    disconnect_side: str
    privileged: bool
    recording_path: str | None
    recovered: bool
    reservation_id: str | None
    station: str = Field(description="The phone the call came from (the From URI's user part).")
    menu_seconds: int = Field(description="Seconds in the caller's voice menu; never billed.")
    gateway: str = Field(default="", description="The carrier gateway that carried the call.")

    @classmethod
    def of(cls, c: CallDetailRecord) -> CdrOut:
        data: dict[str, Any] = {
            "call_id": c.call_id, "facility": c.facility_id, "pin": c.pin,
            "number": c.number_e164, "jurisdiction": c.jurisdiction, "product": c.product,
            "payer_account_id": c.payer_account_id, "setup_at": c.setup_at,
            "answer_at": c.answer_at, "accept_at": c.accept_at, "end_at": c.end_at,
            "talked_seconds": c.talked_seconds, "billed_seconds": c.billed_seconds,
            "charge": money_str(c.charge_units), "fees": money_str(c.fee_units),
            "taxes": money_str(c.tax_units), "total": money_str(c.total_units),
            "outcome": str(c.outcome), "disconnect_reason": c.disconnect_reason,
            "disconnect_side": c.disconnect_side, "privileged": c.privileged,
            "recording_path": c.recording_path, "recovered": c.recovered,
            "reservation_id": c.reservation_id, "station": c.station,
            "menu_seconds": c.menu_seconds, "gateway": c.gateway,
        }
        return cls(**data)
