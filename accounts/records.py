"""Refunds, receivables and subscriptions as both stores keep them: named fields.

A SQLite row and a Redis hash hold one of these records under the same field
names (a column each, or a hash field each). ``*_from`` reads a record back
from either (a ``sqlite3.Row`` with its typed columns, or a hash of text, where
an empty text is a missing value); ``*_fields`` says a new record as its fields
for writing, times as ``ts`` text and a missing value as None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from accounts.model import (
    Receivable,
    ReceivableStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    Subscription,
)
from accounts.store import ts


def when(value: str | None) -> datetime | None:
    """A stored time, or None for a missing one (NULL, or '' in a hash)."""
    return datetime.fromisoformat(value) if value else None


def _opt(record: Any, name: str, default: Any = None) -> Any:
    """A field a record written before it existed may lack."""
    try:
        value = record[name]
    except (KeyError, IndexError):
        return default
    return default if value is None else value


def refund_fields(f: Refund) -> dict[str, object]:
    return {
        "id": f.id,
        "account_id": f.account_id,
        "amount": f.amount_units,
        "method": str(f.method),
        "status": str(f.status),
        "requested_at": ts(f.requested_at),
        "reason": f.reason,
        "decided_at": ts(f.decided_at) if f.decided_at else None,
    }


def refund_from(record: Any) -> Refund:
    return Refund(
        id=record["id"],
        account_id=record["account_id"],
        amount_units=int(record["amount"]),
        method=RefundMethod(record["method"]),
        status=RefundStatus(record["status"]),
        requested_at=datetime.fromisoformat(record["requested_at"]),
        reason=_opt(record, "reason", ""),
        decided_at=when(_opt(record, "decided_at")),
    )


def receivable_fields(c: Receivable) -> dict[str, object]:
    return {
        "id": c.id,
        "number": c.number_e164,
        "call_id": c.call_id,
        "facility_id": c.facility_id,
        "amount": c.amount_units,
        "created_at": ts(c.created_at),
        "status": str(c.status),
        "settled_at": ts(c.settled_at) if c.settled_at else None,
    }


def receivable_from(record: Any) -> Receivable:
    return Receivable(
        id=record["id"],
        number_e164=record["number"],
        call_id=record["call_id"],
        facility_id=record["facility_id"],
        amount_units=int(record["amount"]),
        created_at=datetime.fromisoformat(record["created_at"]),
        status=ReceivableStatus(record["status"]),
        settled_at=when(_opt(record, "settled_at")),
    )


def new_subscription_fields(s: Subscription) -> dict[str, object]:
    """A bought subscription: none of its seconds are used or held yet."""
    return {
        "id": s.id,
        "number": s.number_e164,
        "facility_id": s.facility_id,
        "starts_at": ts(s.starts_at),
        "ends_at": ts(s.ends_at),
        "price": s.price_units,
        "covered_seconds": s.covered_seconds,
        "used_seconds": 0,
        "held_seconds": 0,
    }


def subscription_from(record: Any) -> Subscription:
    return Subscription(
        id=record["id"],
        number_e164=record["number"],
        facility_id=record["facility_id"],
        starts_at=datetime.fromisoformat(record["starts_at"]),
        ends_at=datetime.fromisoformat(record["ends_at"]),
        price_units=int(record["price"]),
        covered_seconds=int(record["covered_seconds"]),
        used_seconds=int(_opt(record, "used_seconds", 0) or 0),
        held_seconds=int(_opt(record, "held_seconds", 0) or 0),
    )
