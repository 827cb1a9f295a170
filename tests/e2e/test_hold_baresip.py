"""A real third-party called party, baresip, puts the call on hold and resumes it.

baresip (Debian) listens on the carrier gateway's address and answers by
itself; it accepts the call at the prompt with an RFC 4733 key, then sends its
own hold and resume re-INVITEs (its ``hold`` and ``resume`` commands). The
controller answers each from the carrier leg, the call goes on to the
facility's BYE, and it is billed for its whole talk time.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest
from baresip import BaresipPhone
from checks import Balances, assert_billed, assert_cdr, connected_call_id
from e2e_setup import Peers
from harness import Service

pytestmark = pytest.mark.e2e

ACCOUNT = "ac-e2e-funds"
NUMBER = "+15125550143"


def test_baresip_called_party_holds_and_resumes(service: Service, peers: Peers,
                                                tmp_path: Path) -> None:
    balances = Balances(service, ACCOUNT)
    phone = BaresipPhone(tmp_path / "baresip", "127.0.0.1", user=NUMBER)  # the number dialled
    # The called party is the carrier gateway, and answers every call by itself.
    config = phone.dir / "config"
    config.write_text(config.read_text().replace(
        f"sip_listen 127.0.0.1:{phone.sip_port}", f"sip_listen 127.0.0.1:{service.ports.carrier}"))
    accounts = phone.dir / "accounts"
    accounts.write_text(accounts.read_text().replace(";regint=0", ";regint=0;answermode=auto"))
    phone.start()
    try:
        facility = peers.facility("facility_call", NUMBER, timeout_s=40, sets={"talk_ms": 7000})
        facility.start()
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(1.0)  # the prompt starts
        phone.press("1")  # accept, as an RFC 4733 event
        accepted = time.monotonic()
        time.sleep(1.5)
        phone._send("hold")
        held = time.monotonic() - accepted
        time.sleep(2.0)
        phone._send("resume")
        resumed = time.monotonic() - accepted
        fac = facility.wait()
        phone.wait_event("CALL_CLOSED", timeout=15)
    finally:
        phone.stop()
    call_id = connected_call_id(fac)
    assert fac.log_lines("hungup "), fac.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=NUMBER, side="caller")
    assert_billed(service, record, talked_about=7, tolerance=2.0)
    assert balances.delta(ACCOUNT) == record.total_units
    assert service.held(ACCOUNT) == 0

    # baresip sends its tone all along; the recording has it on the called party's
    # channel except while held (answered recvonly: muted, and recorded as silence).
    assert record.recording_path
    with wave.open(str(record.recording_path)) as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    called = frames[1::2].astype(np.float64)

    def level(start: float, end: float) -> float:
        part = called[int(start * 8000):int(end * 8000)]
        return float(np.sqrt(np.mean(part ** 2))) if len(part) else 0.0

    levels = (level(0.5, held - 0.3), level(held + 0.6, resumed - 0.3),
              level(resumed + 0.8, resumed + 2.5))
    assert levels[0] > 500 and levels[1] < 50 and levels[2] > 500, levels
