"""Calls through the caller's voice menu, end to end: SIPp as a menu-trunk phone keying
language, PIN and number (SIP INFO or RFC 4733), a real `ics serve`, SIPp as the called party;
then what the phone heard (correlated against the prompts), the CDR and the money."""

from __future__ import annotations

from pathlib import Path

import pytest
from audio import RtpSink, write_wav
from checks import Balances, assert_billed, assert_cdr, assert_not_billed, carrier_sink
from e2e_setup import MENU_TRUNKS, NO_PAYER_AK, Peers
from harness import Service, SippResult
from menu import menu_phone

from menu_phone import MenuCall

pytestmark = pytest.mark.e2e

DEBIT_TX = "debit-tx-100001"


def call_id_of(result: SippResult) -> str:
    answered = result.log_lines("answered ")
    assert len(answered) == 1, result.describe()
    return answered[0].split("callid=")[1].split()[0]


def assert_heard(sink: RtpSink, prompt: str, workdir: Path, lang: str = "en") -> None:
    score = sink.heard(prompt, lang)
    if score < 0.8:
        write_wav(workdir / f"heard-{prompt}.wav", sink.samples())
    assert score >= 0.8, f"{prompt} ({lang}) not heard by the caller (correlation {score:.2f})"


def test_menu_call_by_sip_info_is_accepted_settled_from_acceptance(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    balances = Balances(service, DEBIT_TX)
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1500}, timeout_s=60)
    try:
        phone = menu_phone(service, tmp_path, "phone-info", MenuCall(
            keys=("1", "100001#", "5125550100#"), wait_ms=1200, talk_ms=9000),
            station="tx-phone-1").run()
        car = carrier.wait()
    finally:
        carrier.kill()
    assert phone.returncode == 0, phone.describe()
    assert car.returncode == 0, car.describe()
    call_id = call_id_of(phone)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", product="debit",
               side="caller")
    # Acceptance came about 2 s after the number: menu, hold and ringing are never billed.
    assert_billed(service, record, talked_about=6.5, tolerance=2.5)
    assert balances.delta(DEBIT_TX) == record.total_units
    assert service.held(DEBIT_TX) == 0
