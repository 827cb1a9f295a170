"""The stored form of a call record, shared by the SQLite and Redis stores."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
from account_helpers import T0, TX_AC

from accounts import CallDetailRecord, CallOutcome, InvalidRequest
from accounts.cdr import call_detail_record
from accounts.store import cdr_from_json, cdr_json, ts


def record() -> CallDetailRecord:
    # Refused at the menu: no reservation, so no payer, and no accept time.
    return call_detail_record(
        call_id="call-1", facility_id="tx", pin="100001", number=TX_AC,
        authorization=None, settlement=None, setup_at=T0, answer_at=T0 + timedelta(seconds=3),
        end_at=T0 + timedelta(seconds=75), talked_seconds=0, outcome=CallOutcome.REFUSED,
        station="pod-a", menu_seconds=9,
    )


def test_a_record_reads_back_as_written() -> None:
    cdr = record()
    text = cdr_json(cdr)
    data = json.loads(text)
    assert data["setup_at"] == "2026-03-02T15:00:00.000000+00:00"
    assert data["accept_at"] is None
    assert data["outcome"] == "refused"
    assert data["payer_account_id"] is None
    assert cdr_from_json(text) == cdr


def test_a_record_written_before_a_field_existed_reads_its_default() -> None:
    data = json.loads(cdr_json(record()))
    del data["station"], data["menu_seconds"]
    back = cdr_from_json(json.dumps(data))
    assert (back.station, back.menu_seconds) == ("", 0)


def test_timestamps_are_fixed_width_utc_and_need_a_zone() -> None:
    east = T0.astimezone(timezone(timedelta(hours=2)))
    assert ts(east) == "2026-03-02T15:00:00.000000+00:00"
    with pytest.raises(InvalidRequest, match="no time zone"):
        ts(T0.replace(tzinfo=None))
