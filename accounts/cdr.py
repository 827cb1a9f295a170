"""Call detail records: one per call attempt that reached authorization, and their CSV form."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from rating import cents_str

if TYPE_CHECKING:
    from accounts.calls import Authorization, Settlement


class CallOutcome(StrEnum):
    COMPLETED = "completed"
    REFUSED = "refused"
    DECLINED = "declined"
    BLOCKED_BY_CALLED_PARTY = "blocked_by_called_party"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    #: The calling side hung up (CANCEL) before the called party accepted.
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class CallDetailRecord:
    call_id: str
    facility_id: str
    pin: str
    number_e164: str
    jurisdiction: str
    product: str
    payer_account_id: str | None
    setup_at: datetime
    answer_at: datetime | None
    accept_at: datetime | None
    end_at: datetime | None
    talked_seconds: int
    #: Seconds billed after rounding up to the tariff's increment.
    billed_seconds: int
    charge_units: int
    fee_units: int
    tax_units: int
    total_units: int
    outcome: CallOutcome
    disconnect_reason: str = ""
    #: "caller", "called", "controller" (limit, error) or "" when never connected.
    disconnect_side: str = ""
    privileged: bool = False
    recording_path: str | None = None
    #: Settled after a crash from the last heartbeat rather than at hang-up.
    recovered: bool = False
    reservation_id: str | None = None
    #: The phone the call came from: the From URI's user part (header and menu calls).
    station: str = ""
    #: Seconds the caller spent in the voice menu before the call was placed; never billed.
    menu_seconds: int = 0
    #: The carrier gateway that carried the call's last attempt ("" if none was tried).
    gateway: str = ""
    #: The signals that made the call look like a three-way call, as (signal, seconds
    #: after acceptance): e.g. (("flash", 61.2), ("dial_tone", 61.9)); empty if none.
    three_way: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        # A store's JSON gives lists back: the record keeps tuples, so it compares equal.
        if not isinstance(self.three_way, tuple) or any(
                not isinstance(e, tuple) for e in self.three_way):
            object.__setattr__(self, "three_way", three_way_events(self.three_way))


def three_way_events(events: Iterable[Iterable[object]]) -> tuple[tuple[str, float], ...]:
    """``events`` as a CDR keeps them: (signal, seconds after acceptance) pairs."""
    out = []
    for event in events:
        pair = tuple(event)
        signal, at = pair if len(pair) == 2 else (None, None)
        if not isinstance(signal, str) or not isinstance(at, int | float) or isinstance(at, bool):
            raise ValueError(f"a three-way event is (signal, seconds), not {event!r}")
        out.append((signal, float(at)))
    return tuple(out)


def call_detail_record(
    *,
    call_id: str,
    facility_id: str,
    pin: str,
    number: str,
    authorization: Authorization | None,
    settlement: Settlement | None,
    setup_at: datetime,
    end_at: datetime,
    talked_seconds: int,
    outcome: CallOutcome,
    answer_at: datetime | None = None,
    accept_at: datetime | None = None,
    disconnect_reason: str = "",
    disconnect_side: str = "",
    recording_path: str | None = None,
    recovered: bool = False,
    station: str = "",
    menu_seconds: int = 0,
    gateway: str = "",
    three_way: tuple[tuple[str, float], ...] = (),
) -> CallDetailRecord:
    """One CDR: who called whom, who paid, when, for how long, what it cost and how it ended.

    The one builder for every way a call ends: hung up under its controller
    (``authorization`` known, ``settlement`` if settling worked), or settled
    later from its reservation alone (``authorization`` None, ``recovered``).
    Who paid comes from the reservation, the money from the settlement's
    quote; ``number`` is what was dialled, kept when the call never got as far
    as a reservation. The settled reservation's talked seconds (capped at the
    authorized length) win over ``talked_seconds``, the controller's count.
    ``station`` is the From URI's user part; ``menu_seconds`` the time in the
    caller's voice menu, which is recorded and never billed. ``gateway`` names
    the carrier gateway the call was last placed through.
    ``three_way`` are the signals that made the call look like a three-way call
    (the detector's times).
    """
    if isinstance(menu_seconds, bool) or not isinstance(menu_seconds, int) or menu_seconds < 0:
        raise ValueError(f"menu_seconds must be a whole number >= 0, not {menu_seconds!r}")
    auth = authorization
    reservation = settlement.reservation if settlement is not None else None
    if reservation is None and auth is not None:
        reservation = auth.reservation
    q = settlement.quote if settlement is not None else None
    jurisdiction = ""
    if q is not None:
        jurisdiction = str(q.jurisdiction)
    elif auth is not None:
        jurisdiction = str(auth.called.jurisdiction)
    elif reservation is not None:
        jurisdiction = reservation.jurisdiction
    talked = talked_seconds
    if settlement is not None and settlement.reservation.talked_seconds is not None:
        talked = settlement.reservation.talked_seconds
    return CallDetailRecord(
        call_id=call_id,
        facility_id=facility_id,
        pin=pin,
        number_e164=reservation.number_e164 if reservation is not None else number,
        jurisdiction=jurisdiction,
        product=str(reservation.product) if reservation is not None else "",
        payer_account_id=reservation.account_id if reservation is not None else None,
        setup_at=setup_at,
        answer_at=answer_at,
        accept_at=accept_at,
        end_at=end_at,
        talked_seconds=talked,
        billed_seconds=q.billed_seconds if q is not None else 0,
        charge_units=q.charge_units if q is not None else 0,
        fee_units=q.fees_units if q is not None else 0,
        tax_units=q.taxes_units if q is not None else 0,
        total_units=q.total_units if q is not None else 0,
        outcome=outcome,
        disconnect_reason=disconnect_reason,
        disconnect_side=disconnect_side,
        privileged=auth.privileged if auth is not None else (
            reservation.privileged if reservation is not None else False
        ),
        recording_path=recording_path,
        recovered=recovered,
        reservation_id=reservation.id if reservation is not None else None,
        station=station,
        menu_seconds=menu_seconds,
        gateway=gateway,
        three_way=three_way_events(three_way),
    )


@dataclass(frozen=True)
class CdrFilter:
    facility_id: str | None = None
    pin: str | None = None
    number_e164: str | None = None
    payer_account_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


#: CSV columns. The first six are the input of ``ics rerate`` (``seconds`` is the
#: talked duration that was billed, ``started_at`` the setup time the call was
#: priced at), so an export can be re-rated as it is; money is decimal strings.
#: New columns go at the end (``station``, ``menu_seconds``, ``gateway`` came last), so that a
#: reader of older exports by position still finds the others where they were.
CSV_COLUMNS: tuple[str, ...] = (
    "call_id",
    "facility",
    "number",
    "product",
    "seconds",
    "started_at",
    "pin",
    "jurisdiction",
    "payer_account_id",
    "answer_at",
    "accept_at",
    "end_at",
    "billed_seconds",
    "charge",
    "fees",
    "taxes",
    "total",
    "outcome",
    "disconnect_reason",
    "disconnect_side",
    "privileged",
    "recording_path",
    "recovered",
    "reservation_id",
    "station",
    "menu_seconds",
    "gateway",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def csv_row(record: CallDetailRecord) -> list[str]:
    r = record
    values: tuple[object, ...] = (
        r.call_id,
        r.facility_id,
        r.number_e164,
        r.product,
        r.talked_seconds,
        r.setup_at,
        r.pin,
        r.jurisdiction,
        r.payer_account_id,
        r.answer_at,
        r.accept_at,
        r.end_at,
        r.billed_seconds,
        cents_str(r.charge_units),
        cents_str(r.fee_units),
        cents_str(r.tax_units),
        cents_str(r.total_units),
        r.outcome,
        r.disconnect_reason,
        r.disconnect_side,
        r.privileged,
        r.recording_path,
        r.recovered,
        r.reservation_id,
        r.station,
        r.menu_seconds,
        r.gateway,
    )
    return [_cell(v) for v in values]


def export_csv(records: Iterable[CallDetailRecord]) -> str:
    """CDRs as CSV text with a header row, one row per record."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(csv_row(record))
    return out.getvalue()
