"""Three-way calling end to end: a real `ics serve`, SIPp on both sides, and a called party
whose phone plays a pcap with a hook flash and dial tone after accepting.

Under the default policy (``flag``) the call goes on and its CDR names the signals; under
``disconnect`` both parties hear the warning, the controller ends the call, and it is
settled for the time talked.
"""

from __future__ import annotations

import struct
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio import RtpSink
from checks import Balances, assert_billed, assert_cdr, connected_call_id
from e2e_setup import Peers, prepare_e2e_service
from harness import Service, Sipp, SippResult

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
import threeway_corpus as tc

pytestmark = pytest.mark.e2e

RATE = 8000
AC_TX = "ac-15125550100"
#: This file's own account in its own service (the disconnect test).
NUMBER = "+15125550149"
ACCOUNT = "ac-e2e-three-way"


def attempt_audio() -> np.ndarray:
    """The called party after accepting: talk over line noise, then a hook flash (the line
    open for half a second, a click at each edge) and 3 s of dial tone, then the line."""
    rng = np.random.default_rng(15)
    n = 2 * RATE
    talk = rng.normal(0, tc.db(-24), n) * np.abs(np.sin(np.arange(n) * np.pi * 3 / RATE))
    line = rng.normal(0, tc.db(-50), n)
    flash, _ = tc.flash(rng, 0.5)
    tone = tc.dial_tone(3.0, -13.0) + rng.normal(0, tc.db(-50), 3 * RATE)
    x = np.concatenate([line[: RATE], talk + line, flash, tone, line])
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, samples: np.ndarray) -> None:
    """``samples`` as PCMU RTP, 20 ms a packet, in a pcap SIPp's play_pcap_audio replays."""
    codec = tc.audioop.lin2ulaw(samples.astype("<i2").tobytes(), 2)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet
    for i in range(len(codec) // 160):
        rtp = struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x3A3A3A3A) + codec[i * 160:(i + 1) * 160]
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                                   bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))
        ip[10:12] = struct.pack("!H", _ip_checksum(bytes(ip)))
        frame = b"\x00" * 12 + b"\x08\x00" + bytes(ip) + udp
        at = i * 0.02
        out.append(struct.pack("<IIII", int(at), round(at % 1 * 1e6), len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def called_party(peers: Peers, timeout_s: float) -> Sipp:
    """The carrier side: answers, accepts with 1, then plays the attempt (no echo)."""
    peers.count += 1
    sipp = Sipp(peers.workdir, f"{peers.count:02d}-carrier_three_way", "carrier_three_way",
                local_ip="127.0.0.1", timeout_s=timeout_s,
                sets={"ring_ms": 200, "dtmf_ms": 1000, "attempt_ms": 2500})
    i = sipp.cmd.index("-p")
    sipp.cmd[i + 1] = str(peers.service.ports.carrier)
    sipp.sip_port = peers.service.ports.carrier
    write_pcap(sipp.dir / "three_way.pcap", attempt_audio())
    return sipp.start().wait_listening()


def place(peers: Peers, scenario: str, number: str, *, timeout_s: float = 60,
          **facility: object) -> tuple[SippResult, SippResult]:
    carrier = called_party(peers, timeout_s)
    try:
        fac = peers.facility(scenario, number, timeout_s=timeout_s,
                             **facility).run()  # type: ignore[arg-type]
        car = carrier.wait()
    finally:
        carrier.kill()
    return fac, car


def signals(record: object) -> list[str]:
    return [name for name, _ in record.three_way]  # type: ignore[attr-defined]


def metric(service: Service, facility: str, action: str) -> float:
    with urllib.request.urlopen(f"{service.http_base}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = f'ics_three_way_calls_total{{action="{action}",facility="{facility}"}} '
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_a_flash_and_dial_tone_after_acceptance_is_flagged(service: Service,
                                                            peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    before = metric(service, "tx-state-prison", "flag")
    fac, car = place(peers, "facility_call", "+15125550100", sets={"talk_ms": 12000},
                     timeout_s=50)
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    # Flagged, and the call went on until the caller hung up.
    assert_cdr(record, outcome="completed", number="+15125550100", side="caller")
    assert signals(record) == ["flash", "dial_tone"], record
    flash_at = record.three_way[0][1]
    # In the call's time: the attempt starts 2.5 s after the key, 1 s + 2 s into the pcap.
    assert 3.0 <= flash_at <= 9.0, record
    assert_billed(service, record, talked_about=12)
    assert balances.delta(AC_TX) == record.total_units
    assert metric(service, "tx-state-prison", "flag") == before + 1


@pytest.fixture(scope="module")
def disconnecting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service of its own whose tx-state-prison disconnects three-way calls."""
    svc = prepare_e2e_service(tmp_path_factory.mktemp("ics-three-way"))
    svc.edit("facilities/tx-state-prison.toml",
             lambda text: 'three_way_policy = "disconnect"\n' + text)
    svc.edit("seed/demo.toml", lambda text: text + (
        f'\n[[accounts]]\nid = "{ACCOUNT}"\nproduct = "advance_connect"\n'
        f'numbers = ["{NUMBER}"]\nholder = "End-to-end test"\n'
        'deposit = "5.00"\ndeposit_method = "card"\n'))
    svc.start()
    try:
        yield svc
    finally:
        status = svc.stop()
        assert status == 0, f"ics serve exited with {status}:\n{svc.log()[-4000:]}"


def test_under_disconnect_the_call_is_warned_ended_and_settled(
        disconnecting: Service, tmp_path: Path) -> None:
    service = disconnecting
    peers = Peers(service, tmp_path)
    balances = Balances(service, ACCOUNT)
    with RtpSink("127.0.0.11") as sink:
        fac, car = place(peers, "facility_call_held", NUMBER,
                         keys={"rtp_port": str(sink.port)}, timeout_s=60)
        heard = sink.heard("three_way_warning")
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()  # the called party got its BYE too
    byes = fac.log_lines("bye ")
    assert len(byes) == 1 and "text=three-way calling detected" in byes[0], fac.describe()
    assert heard > 0.6, heard  # the caller heard the warning before the end
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=NUMBER, side="controller")
    assert record.disconnect_reason == "three-way calling detected"
    assert signals(record) == ["flash", "dial_tone"], record
    # Billed for what was talked: acceptance to the end of the warning, nothing more.
    talked = (record.end_at - record.accept_at).total_seconds()
    assert_billed(service, record, talked_about=talked, tolerance=1.0)
    assert 5 <= record.talked_seconds <= 20, record
    assert balances.delta(ACCOUNT) == record.total_units
    assert service.held(ACCOUNT) == 0
    assert service.open_reservations() == []
    assert metric(service, "tx-state-prison", "disconnect") == 1
