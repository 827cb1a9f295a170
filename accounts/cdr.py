"""Call detail records: one per call attempt that reached authorization, and their CSV form."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rating import cents_str


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
