"""Hold, resume and a codec change by re-INVITE from the facility, end to end (the hold
also by a re-INVITE without an offer, answered in the ACK).

SIPp plays the facility and streams a tone all along (music on hold included);
the called party (SIPp) echoes what it hears. The recording must carry the
tone before and after the hold, silence while held, and the call is billed for
its whole talk time: a re-INVITE never moves money.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from checks import Balances, assert_billed, assert_carrier_ok, assert_cdr, connected_call_id
from e2e_setup import Peers
from harness import Service

from ivr.g711 import alaw_encode, ulaw_encode

pytestmark = pytest.mark.e2e

ACCOUNT = "ac-e2e-block"
NUMBER = "+15125550144"
TALK_S, HOLD_S = 2.0, 2.0


def tone(seconds: float = 12.0) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


@pytest.mark.parametrize(("scenario", "hold_mark"), [
    ("facility_hold", "a=recvonly"),  # the hold is the facility's offer, answered recvonly
    # A re-INVITE without an offer: our 2xx offers the stream, the ACK's answer holds it.
    ("facility_hold_offerless", "a=sendrecv"),
])
def test_hold_resume_and_codec_change(service: Service, peers: Peers, scenario: str,
                                      hold_mark: str) -> None:
    balances = Balances(service, ACCOUNT)
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1000}, timeout_s=40)
    try:
        facility = peers.facility(scenario, NUMBER, timeout_s=40,
                                  sets={"talk_ms": int(TALK_S * 1000),
                                        "hold_ms": int(HOLD_S * 1000)})
        (facility.dir / "tone.pcmu").write_bytes(ulaw_encode(tone()))
        (facility.dir / "tone.pcma").write_bytes(alaw_encode(tone()))
        fac = facility.run()
        car = carrier.wait()
    finally:
        carrier.kill()
    call_id = connected_call_id(fac)
    assert_carrier_ok(car)
    assert len(fac.log_lines("hold ")) == 1 and hold_mark in fac.log_lines("hold ")[0]
    assert len(fac.log_lines("resume ")) == 1, fac.describe()  # answered with PCMA

    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=NUMBER, side="caller")
    # Talk, hold and talk again are all talk time; the re-INVITEs changed nothing else.
    assert_billed(service, record, talked_about=2 * TALK_S + HOLD_S, tolerance=2.0)
    assert balances.delta(ACCOUNT) == record.total_units
    assert service.held(ACCOUNT) == 0

    assert record.recording_path
    with wave.open(str(Path(record.recording_path))) as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 8000
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    facility_channel = frames[0::2]

    def level(start: float, end: float) -> float:
        return rms(facility_channel[int(start * 8000):int(end * 8000)])

    before = level(0.5, TALK_S - 0.3)
    held = level(TALK_S + 0.6, TALK_S + HOLD_S - 0.3)
    after = level(TALK_S + HOLD_S + 0.8, 2 * TALK_S + HOLD_S - 0.3)
    assert before > 2000, (before, held, after)  # the tone, in PCMU
    assert held < 50, (before, held, after)  # music on hold is not recorded: silence
    assert after > 2000, (before, held, after)  # the tone again, now PCMA
