"""Reliable provisional responses on both legs against a real `ics serve` (SIPp peers).

The facility offers 100rel and must get a reliable 180 it PRACKs; the carrier
requires 100rel and must get a PRACK for its reliable 180, and a BYE whose CSeq
comes after that PRACK's.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from checks import assert_cdr, connected_call_id
from e2e_setup import Peers, prepare_e2e_service
from harness import running

pytestmark = pytest.mark.e2e


def test_prack_on_both_legs(tmp_path: Path) -> None:
    svc = prepare_e2e_service(tmp_path / "svc")
    with running(svc):
        peers = Peers(svc, tmp_path)
        fac, car = peers.call("facility_call_100rel", "+15125550100", "carrier_100rel",
                              carrier_keys={"digit": "1"},
                              carrier_sets={"ring_ms": 300, "dtmf_ms": 500},
                              sets={"talk_ms": 1500}, timeout_s=30)
    call_id = connected_call_id(fac)
    assert fac.log_lines("pracked call=1"), fac.describe()
    (reliable,) = fac.log_lines("reliable call=1 ")
    assert int(reliable.split("rseq=")[1]) >= 1
    assert car is not None and car.returncode == 0, car.describe()
    (prack,) = car.log_lines("prack call=1 ")
    fields = dict(re.findall(r"(\w+)=(\d+)", prack))
    assert fields["rack_cseq"] == "1"  # RAck names the INVITE's CSeq
    (bye,) = car.log_lines("bye call=1 ")
    assert int(bye.split("cseq=")[1]) > int(fields["cseq"])
    record = svc.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", side="caller")
    assert record.gateway == "carrier"
