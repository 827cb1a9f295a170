"""Early media from the carrier (183 with SDP) on a menu call, against a real `ics serve`.

The carrier SIPp sends 183 with an SDP answer and plays a capture (a fixed SSRC)
for 5 s before its 200 OK. The menu caller hears our hold prompt, then that
capture, relayed, instead of our ringback tone; the 183 is not an answer: the
prompt and the billing start from the 200 OK and the acceptance.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from checks import assert_cdr
from e2e_setup import MENU_TRUNKS, Peers, prepare_e2e_service
from harness import Service, set_toml
from menu import menu_phone
from menu_phone import MenuCall

pytestmark = pytest.mark.e2e

#: The SSRC of SIPp's shipped g711a.pcap, which the carrier plays as its early media.
CAPTURE_SSRC = 0xDEE0EE8F
EARLY_MS = 5000


class SsrcSink:
    """Receives the caller's RTP and notes, per packet, when and from which SSRC."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[float, int, int]] = []  # (wall time, ssrc, payload type)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 12 and data[0] >> 6 == 2:
                self.packets.append((time.time(), int.from_bytes(data[8:12], "big"),
                                     data[1] & 0x7F))

    def __enter__(self) -> SsrcSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = prepare_e2e_service(tmp_path_factory.mktemp("ics-early"))
    # Long enough a ring for the hold prompt and 5 s of early media.
    svc.edit("facilities/tx-state-prison.toml",
             lambda text: set_toml(text, None, "ring_timeout_seconds", "15"))
    svc.start()
    try:
        yield svc
    finally:
        assert svc.stop() == 0, svc.log()[-3000:]


def test_a_menu_caller_hears_the_carriers_early_media_and_billing_waits_for_the_answer(
        service: Service, tmp_path: Path) -> None:
    peers = Peers(service, tmp_path)
    carrier = peers.carrier("carrier_early_media", keys={"digit": "1"},
                            sets={"ring_ms": EARLY_MS, "dtmf_ms": 1500}, timeout_s=60)
    try:
        with SsrcSink(MENU_TRUNKS["tx-state-prison"]) as sink:
            phone = menu_phone(service, tmp_path, "phone-early", MenuCall(
                keys=("1", "100001#", "5125550100#"), wait_ms=1200, talk_ms=9000,
                rtp_key=True), station="tx-early-1", rtp_port=sink.port).run()
            car = carrier.wait()
    finally:
        carrier.kill()
    assert phone.returncode == 0, phone.describe()
    assert car.returncode == 0, car.describe()
    early = [p for p in sink.packets if p[1] == CAPTURE_SSRC]
    ours = [p for p in sink.packets if p[1] != CAPTURE_SSRC]
    # What is left of 5 s of the capture (30 ms packets) once the hold prompt has
    # played, as PCMU (the caller's codec; the carrier sent PCMA).
    assert len(early) > 40, (len(early), len(ours))
    assert {pt for _, _, pt in early} == {0}
    first_early, last_early = early[0][0], early[-1][0]
    # The hold prompt came first; our ringback did not play over the capture, and came
    # back when the capture gave way to the answer.
    assert [p for p in ours if p[0] < first_early]
    assert not [p for p in ours if first_early + 0.1 < p[0] < last_early - 0.1]
    assert [p for p in ours if p[0] > last_early]
    (line,) = phone.log_lines("answered ")
    call_id = line.split("callid=")[1].split()[0]
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", side="caller")
    assert record.answer_at is not None and record.accept_at is not None
    # The called party answered (200 OK) after the early media, and was billed from
    # acceptance, not from the 183.
    assert record.answer_at.timestamp() >= last_early - 0.3
    assert record.accept_at > record.answer_at
    assert record.talked_seconds <= 5
