"""A call record's three-way signals: built, validated, and read back from the stores' JSON."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from account_helpers import T0, TX_AC

from accounts import CallDetailRecord, CallOutcome
from accounts.cdr import call_detail_record, csv_row
from accounts.store import cdr_from_json, cdr_json

SIGNALS = (("flash", 61.2), ("dial_tone", 61.92))


def record(three_way: tuple[tuple[str, float], ...] = SIGNALS) -> CallDetailRecord:
    return call_detail_record(
        call_id="call-3w", facility_id="tx", pin="100001", number=TX_AC,
        authorization=None, settlement=None, setup_at=T0,
        accept_at=T0 + timedelta(seconds=10), end_at=T0 + timedelta(seconds=95),
        talked_seconds=85, outcome=CallOutcome.COMPLETED, three_way=three_way,
    )


def test_the_stores_json_keeps_the_signals() -> None:
    # Both stores keep a call record as accounts.store.cdr_json writes it.
    cdr = record()
    text = cdr_json(cdr)
    assert json.loads(text)["three_way"] == [["flash", 61.2], ["dial_tone", 61.92]]
    back = cdr_from_json(text)
    assert back == cdr and back.three_way == SIGNALS


def test_a_record_without_signals_reads_as_none_heard() -> None:
    data = json.loads(cdr_json(record()))
    del data["three_way"]
    assert cdr_from_json(json.dumps(data)).three_way == ()
    assert record(()).three_way == ()


@pytest.mark.parametrize("bad", [(("flash",),), (("flash", "soon"),), ((3, 1.0),),
                                 (("flash", True),)])
def test_malformed_signals_are_refused(bad: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="three-way event"):
        record(bad)


def test_the_csv_export_is_unchanged() -> None:
    assert len(csv_row(record())) == len(csv_row(record(())))
