"""A call's hold and settlement as fixed scripts, fed by position with the plan's values.

``apply.lua`` applies any plan by walking a list of ops on the server. A hold
and a settlement run for every call, so each has a script of its own
(``hold.lua``, ``settle.lua``) that takes the same plan's values by position:
the record's fields, the payer's deltas, the least balance or seconds the
plan requires, the ledger entry. The rules stay in ``accounts.postings``; the
scripts check and write atomically exactly what ``apply.lua`` would for the
same plan (``tests/redis/test_redis_call_scripts.py`` applies both and
compares what they wrote).

A plan of another shape is not a call's hold or settlement: ``InvalidRequest``.
"""

from __future__ import annotations

from collections.abc import Sequence

from accounts.errors import InvalidRequest
from accounts.postings import Plan, Step

#: The payer's two deltas when nobody holds anything: the field '' is not changed.
_NO_DELTAS = ("", "0", "", "0")


def _deltas(a: str, da: int, b: str, db: int) -> tuple[str, str, str, str]:
    """The payer's (field, delta) pairs, a zero delta left out as ``apply.lua`` does."""
    return (a if da else "", str(da), b if db else "", str(db))


def hold_args(
    plan: Plan, *, token: str, ledger_entry: str, reservation_fields: Sequence[str]
) -> list[str]:
    """``hold.lua``'s ARGV for a reservation plan (``plan_reserve``)."""
    change = plan.reservation
    if plan.step is not Step.RESERVE or change is None or change.expected is not None:
        raise InvalidRequest(f"a {plan.step} plan is not a call's hold")
    r = change.record
    b, s = plan.balance, plan.seconds
    if b is not None:
        if s is not None or b.floor_units is None or not b.must_be_open:
            raise InvalidRequest("a hold's account must be open and keep its floor")
        head = ["account", str(b.floor_units - b.balance_units)]
        deltas = _deltas("balance", b.balance_units, "held", b.held_units)
    elif s is not None:
        head = ["subscription", str(s.needs_seconds)]
        deltas = _deltas("held_seconds", s.held_seconds, "used_seconds", s.used_seconds)
    else:
        head, deltas = ["", "0"], _NO_DELTAS
    return [token, r.id, r.call_id, *head, *deltas, ledger_entry, *reservation_fields]


def settle_args(
    plan: Plan,
    *,
    token: str,
    ledger_entry: str,
    keep_seconds: int,
    settled_at: str,
    receivable_fields: Sequence[str] = (),
) -> list[str]:
    """``settle.lua``'s ARGV for a settlement plan (``plan_settle``, ``plan_release``).

    ``settled_at`` is the plan's time as stored text: the settled reservation's
    time, and a talked call's last call on its account. The script names the
    fields it sets on both, as ``_settled_fields`` and ``_call_fields`` of the
    store do for ``apply.lua``."""
    change = plan.reservation
    if plan.step is not Step.SETTLE or change is None or change.expected is None:
        raise InvalidRequest(f"a {plan.step} plan is not a call's settlement")
    r = change.record
    if r.settled_at != plan.at:
        raise InvalidRequest("a settlement's reservation is settled at the plan's time")
    b, s = plan.balance, plan.seconds
    facility = ""
    if b is not None:
        if s is not None or b.floor_units is not None or b.must_be_open:
            raise InvalidRequest("a settlement guards nothing on the account")
        kind, facility = "account", b.call_facility or ""
        deltas = _deltas("balance", b.balance_units, "held", b.held_units)
    elif s is not None:
        if s.needs_seconds:
            raise InvalidRequest("a settlement guards nothing on the subscription")
        kind = "subscription"
        deltas = _deltas("held_seconds", s.held_seconds, "used_seconds", s.used_seconds)
    else:
        kind, deltas = "", _NO_DELTAS
    receivable = plan.receivable.record.id if plan.receivable is not None else ""
    return [
        token,
        r.id,
        str(change.expected_held_units),
        kind,
        *deltas,
        ledger_entry,
        str(keep_seconds),
        str(r.status),
        settled_at,
        str(r.talked_seconds or 0),
        str(r.charged_units or 0),
        facility,
        receivable,
        *receivable_fields,
    ]
