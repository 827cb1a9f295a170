"""An independent SIP/RTP stack as the called party: pyVoIP answers at the carrier gateway,
must hear the acceptance prompt, and accepts by playing the DTMF tones of key 1 in-band.

pyVoIP is a phone meant to register with a PBX; here the controller's carrier
leg calls it directly, so its registration step is skipped (there is no
registrar between the controller and the called party).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from audio import best_match, prompt_samples, write_wav
from checks import Balances, assert_billed, assert_cdr, connected_call_id, seconds_between
from e2e_setup import Peers
from harness import Service, free_range
from pyVoIP.VoIP import CallState, VoIPCall, VoIPPhone

pytestmark = pytest.mark.e2e

NUMBER, ACCOUNT = "+15125550145", "ac-e2e-pyvoip"
#: Low and high DTMF frequencies of key 1 (ITU-T Q.23).
KEY_1 = (697.0, 1209.0)


def dtmf_u8(freqs: tuple[float, float], ms: int, level: float = 0.35) -> bytes:
    """A key's dual tone as pyVoIP's 8-bit unsigned 8 kHz audio (generated here, not by us)."""
    n = 8 * ms
    samples = [
        128 + level * 127 * (math.sin(2 * math.pi * freqs[0] * i / 8000)
                             + math.sin(2 * math.pi * freqs[1] * i / 8000))
        for i in range(n)
    ]
    return bytes(max(0, min(255, round(s))) for s in samples)


def u8_to_float(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0


class CalledParty:
    """pyVoIP answering one call: listen to the prompt for a while, then press 1 in-band."""

    def __init__(self, listen_seconds: float) -> None:
        self.listen_seconds = listen_seconds
        self.heard = b""
        self.call: VoIPCall | None = None
        self.answered = threading.Event()
        self.error: BaseException | None = None
        self.rtp: list[tuple[int, str, int]] = []

    def __call__(self, call: VoIPCall) -> None:
        try:
            self.call = call
            call.answer()
            self.rtp = [(c.inPort, c.outIP, c.outPort) for c in call.RTPClients]
            self.answered.set()
            # What pyVoIP received so far, in timestamp order (its own receive buffer:
            # reading through read_audio pads with silence wherever data is missing).
            deadline = time.monotonic() + self.listen_seconds + 8
            heard = b""
            time.sleep(self.listen_seconds)
            while len(heard) < 8000 * self.listen_seconds * 0.75 and time.monotonic() < deadline:
                heard = b"".join(c.pmin.buffer.getvalue() for c in call.RTPClients)
                time.sleep(0.2)
            self.heard = heard
            tone = dtmf_u8(KEY_1, 200)
            silence = b"\x80" * 1600
            for _ in range(3):  # three presses, in case the first lands mid-packet
                call.write_audio(tone + silence)
        except BaseException as exc:
            self.error = exc


def start_phone(service: Service, party: CalledParty) -> VoIPPhone:
    low, high = free_range(10)
    phone = VoIPPhone("127.0.0.1", service.ports.sip, "called", "unused", myIP="127.0.0.1",
                      callCallback=party, sipPort=service.ports.carrier,
                      rtpPortLow=low, rtpPortHigh=high)
    # Reached straight from the controller's carrier leg: nothing to register with.
    phone.sip.register = lambda: True  # type: ignore[method-assign]
    phone.start()
    return phone


def test_pyvoip_hears_the_prompt_and_accepts_with_inband_tones(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    balances = Balances(service, ACCOUNT)
    party = CalledParty(listen_seconds=4.0)
    phone = start_phone(service, party)
    time.sleep(1.5)  # pyVoIP starts reading its SIP socket a second after it starts
    try:
        fac = peers.facility("facility_call", NUMBER, sets={"talk_ms": 2000},
                             timeout_s=40).run()
        deadline = time.monotonic() + 10
        while (party.call is None or party.call.state != CallState.ENDED) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
    finally:
        phone.stop()
        if party.call is not None:
            for client in party.call.RTPClients:
                client.NSD = False  # its RTP threads end even if the call never did
    assert party.error is None, party.error
    assert party.answered.is_set()

    # It heard the prompt: the start of the greeting is in what pyVoIP received.
    heard = u8_to_float(party.heard)
    assert len(heard) >= 8000 * 3, (
        f"only {len(heard)} samples heard on {party.rtp}:\n{service.log()[-2000:]}")
    score = best_match(heard, prompt_samples("intro_prepaid"))
    print(f"pyVoIP heard {len(heard) / 8000:.1f} s; intro_prepaid correlation {score:.3f}")
    if score < 0.8:
        write_wav(tmp_path / "pyvoip-heard.wav", heard)
    assert score >= 0.8, f"prompt not heard (correlation {score:.2f})"
    # The tones were taken as key 1: the call was accepted, bridged and billed.
    call_id = connected_call_id(fac)
    assert fac.log_lines("hungup "), fac.describe()
    assert party.call is not None and party.call.state == CallState.ENDED
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=NUMBER, side="caller")
    assert seconds_between(record.answer_at, record.accept_at) >= 4, record
    assert_billed(service, record, talked_about=2)
    assert balances.delta(ACCOUNT) == record.total_units
