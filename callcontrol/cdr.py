"""The call detail record of a finished call, built from its flow facts and its settlement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from accounts import Authorization, CallDetailRecord, Settlement

from .events import CallEnded


def call_record(
    *,
    call_id: str,
    facility_id: str,
    pin: str,
    number: str,
    ended: CallEnded,
    wall: Callable[[float], datetime],
    authorization: Authorization | None,
    settlement: Settlement | None,
    recording_path: str | None,
) -> CallDetailRecord:
    """One CDR: who called whom, who paid, when, for how long, what it cost and how it ended.

    ``wall`` turns the flow's monotonic times into wall-clock datetimes.
    ``number`` is what was dialled, used when the number never got as far as
    being classified.
    """
    auth = authorization
    quote = settlement.quote if settlement is not None else None
    jurisdiction = ""
    if quote is not None:
        jurisdiction = str(quote.jurisdiction)
    elif auth is not None:
        jurisdiction = str(auth.called.jurisdiction)
    talked = ended.talked_seconds
    if settlement is not None and settlement.reservation.talked_seconds is not None:
        talked = settlement.reservation.talked_seconds
    return CallDetailRecord(
        call_id=call_id,
        facility_id=facility_id,
        pin=pin,
        number_e164=auth.called.e164 if auth is not None else number,
        jurisdiction=jurisdiction,
        product=str(auth.product) if auth is not None else "",
        payer_account_id=auth.payer_account_id if auth is not None else None,
        setup_at=wall(ended.setup_at),
        answer_at=wall(ended.answer_at) if ended.answer_at is not None else None,
        accept_at=wall(ended.accept_at) if ended.accept_at is not None else None,
        end_at=wall(ended.end_at),
        talked_seconds=talked,
        billed_seconds=quote.billed_seconds if quote is not None else 0,
        charge_units=quote.charge_units if quote is not None else 0,
        fee_units=quote.fees_units if quote is not None else 0,
        tax_units=quote.taxes_units if quote is not None else 0,
        total_units=quote.total_units if quote is not None else 0,
        outcome=ended.outcome,
        disconnect_reason=ended.text,
        disconnect_side=ended.side,
        privileged=auth.privileged if auth is not None else False,
        recording_path=recording_path,
        recovered=False,
        reservation_id=auth.reservation_id if auth is not None else None,
    )
