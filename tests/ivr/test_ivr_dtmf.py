"""DTMF three ways: RFC 4733 events, SIP INFO bodies, in-band tones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivr import g711
from ivr.catalogue import PromptCatalogue
from ivr.inband import InbandDetector, dtmf_tone
from ivr.rfc4733 import TelephoneEvent, TelephoneEventReceiver, event_packets, parse_red
from ivr.rtp import RtpPacket
from ivr.sip_info import parse_dtmf_info

DIGITS = "0123456789*#ABCD"
PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


# -- RFC 4733 -----------------------------------------------------------------


def test_event_round_trip_and_truncation() -> None:
    ev = TelephoneEvent(11, True, 10, 1280)
    assert TelephoneEvent.parse(ev.serialize()) == ev
    assert ev.digit == "#"
    for n in range(4):
        with pytest.raises(ValueError, match=f"telephone-event truncated: {n} bytes"):
            TelephoneEvent.parse(ev.serialize()[:n])


def test_sender_packets_then_receiver_reports_each_digit_once() -> None:
    rx = TelephoneEventReceiver()
    got = []
    for i, d in enumerate(DIGITS):
        ts = 10_000 + i * 4000
        packets = event_packets(d, duration_ms=100)
        assert packets[0].marker and not any(p.marker for p in packets[1:])
        assert [p.payload for p in packets[-3:]] == [packets[-1].payload] * 3  # end sent 3 times
        for p in packets:
            got += rx.receive(p.payload, ts, now=i + p.offset)
    assert [g.digit for g in got] == list(DIGITS)
    assert {g.duration_ms for g in got} == {100}


def test_receiver_ignores_duplicate_end_and_reports_lost_end_on_timer() -> None:
    rx = TelephoneEventReceiver(end_timeout=0.25)
    start = TelephoneEvent(5, False, 10, 160).serialize()
    assert rx.receive(start, 1000, 0.0) == []
    assert rx.get_timer() == pytest.approx(0.25)
    assert rx.handle_timer(0.2) == []
    [digit] = rx.handle_timer(0.3)
    assert digit.digit == "5"
    # A late end packet of the same event is not a second key press.
    assert rx.receive(TelephoneEvent(5, True, 10, 800).serialize(), 1000, 0.4) == []
    assert rx.get_timer() is None


def test_receiver_rejects_bad_payload_length() -> None:
    with pytest.raises(ValueError, match="not 4\\*n"):
        TelephoneEventReceiver().receive(b"\x01\x02\x03", 0, 0.0)


def test_multi_event_payload_reports_the_earlier_event_once() -> None:
    rx = TelephoneEventReceiver()
    # '1' starts at ts 0; its end is lost but repeated in the next event's packet.
    assert rx.receive(TelephoneEvent(1, False, 10, 320).serialize(), 0, 0.0) == []
    end_1 = TelephoneEvent(1, True, 10, 800).serialize()
    both = end_1 + TelephoneEvent(2, False, 10, 160).serialize()
    got = rx.receive(both, 1600, 0.2)
    assert [g.digit for g in got] == ["1"]
    got += rx.receive(both, 1600, 0.22)  # redundant copy
    got += rx.receive(TelephoneEvent(2, True, 10, 800).serialize(), 1600, 0.3)
    assert [g.digit for g in got] == ["1", "2"]


def test_rfc2198_redundancy_split() -> None:
    old = TelephoneEvent(3, True, 10, 800).serialize()
    new = TelephoneEvent(4, False, 10, 160).serialize()
    header = bytes([0x80 | 101]) + ((320 << 10) | 4).to_bytes(3, "big") + bytes([101])
    blocks = parse_red(header + old + new)
    assert [(b.payload_type, b.timestamp_offset, b.data) for b in blocks] == [
        (101, 320, old),
        (101, 0, new),
    ]
    with pytest.raises(ValueError, match="RFC 2198"):
        parse_red(header[:3])


def read_pcap_rtp(path: Path) -> list[RtpPacket]:
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, pos = [], 24
    while pos < len(data):
        incl = int.from_bytes(data[pos + 8 : pos + 12], "little")
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        out.append(RtpPacket.parse(frame[14 + 20 + 8 :]))  # Ethernet, IPv4, UDP
    return out


@pytest.mark.skipif(not PCAP.exists(), reason="SIPp's pcaps are not installed")
def test_sipp_shipped_pcap_gives_digit_1_once() -> None:
    rx = TelephoneEventReceiver()
    got = []
    for i, p in enumerate(read_pcap_rtp(PCAP)):
        assert p.payload_type == 101
        got += rx.receive(p.payload, p.timestamp, i * 0.02)
    assert [(g.digit, g.duration_ms) for g in got] == [("1", 280)]


# -- SIP INFO -----------------------------------------------------------------


def test_dtmf_relay_body() -> None:
    d = parse_dtmf_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
    assert (d.digit, d.duration_ms) == ("5", 160)
    assert parse_dtmf_info("Application/DTMF-Relay; charset=utf-8", "Signal= #\n").digit == "#"
    assert parse_dtmf_info("application/dtmf-relay", "Signal=10\nDuration=100").digit == "*"


def test_dtmf_body() -> None:
    assert parse_dtmf_info("application/dtmf", b"9\r\n").digit == "9"
    assert parse_dtmf_info("application/dtmf", "a").digit == "A"


@pytest.mark.parametrize(
    ("ctype", "body", "message"),
    [
        ("text/plain", "5", "does not carry DTMF"),
        ("application/dtmf-relay", "Duration=100", "no Signal line"),
        ("application/dtmf-relay", "Signal=Z", "'Z' is not a DTMF digit"),
        ("application/dtmf-relay", "Signal=5\nDuration=long", "'long' is not an integer"),
        ("application/dtmf-relay", "Signal=5\nDuration=-1", "out of range"),
        ("application/dtmf-relay", "Signal 5", "has no '='"),
        ("application/dtmf", "", "is empty"),
        ("application/dtmf", b"\xff", "not UTF-8"),
    ],
)
def test_bad_info_bodies(ctype: str, body: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dtmf_info(ctype, body)


# -- in-band ------------------------------------------------------------------


def detect(samples: np.ndarray, chunk: int = 160) -> str:
    det = InbandDetector()
    return "".join(
        d.digit for i in range(0, len(samples), chunk) for d in det.feed(samples[i : i + chunk])
    )


def keyed(digits: str, level: float, tone_ms: int = 60, gap_ms: int = 60) -> np.ndarray:
    gap = np.zeros(8 * gap_ms, dtype=np.int16)
    parts = [gap]
    for d in digits:
        parts += [dtmf_tone(d, tone_ms, level), gap]
    return np.concatenate(parts)


@pytest.mark.parametrize("level", [-3.0, -10.0, -20.0, -28.0])
def test_all_sixteen_digits_at_several_levels_through_g711(level: float) -> None:
    x = keyed(DIGITS, level)
    # Through the codec, as they arrive over RTP.
    assert detect(g711.ulaw_decode(g711.ulaw_encode(x))) == DIGITS
    assert detect(g711.alaw_decode(g711.alaw_encode(x))) == DIGITS


@pytest.mark.parametrize("snr_db", [20.0, 12.0])
def test_all_digits_with_noise(snr_db: float) -> None:
    rng = np.random.default_rng(7)
    x = keyed(DIGITS, -10.0).astype(np.float64)
    tone_power = 2 * (22_700 * 10 ** (-10 / 20)) ** 2 / 2
    noise = rng.normal(0, np.sqrt(tone_power / 10 ** (snr_db / 10)), len(x))
    assert detect(np.clip(x + noise, -32768, 32767)) == DIGITS


def test_minimum_duration() -> None:
    # 40 ms tones are caught wherever they fall in the analysis windows...
    for offset in range(0, 80, 9):
        x = np.concatenate([np.zeros(offset), dtmf_tone("7", 40), np.zeros(400)])
        assert detect(x) == "7", offset
    # ...23 ms ones never are.
    for offset in range(0, 80, 9):
        x = np.concatenate([np.zeros(offset), dtmf_tone("7", 23), np.zeros(400)])
        assert detect(x) == "", offset


def test_a_long_key_press_is_one_digit_and_a_pause_separates_repeats() -> None:
    assert detect(dtmf_tone("5", 1000)) == "5"
    assert detect(keyed("55", -10, tone_ms=80, gap_ms=40)) == "55"


def test_twist_limits() -> None:
    assert detect(dtmf_tone("8", 100, -10, twist_db=-7)) == "8"  # normal twist within 8 dB
    assert detect(dtmf_tone("8", 100, -10, twist_db=3)) == "8"  # reverse twist within 4 dB
    assert detect(dtmf_tone("8", 100, -10, twist_db=-10)) == ""
    assert detect(dtmf_tone("8", 100, -10, twist_db=6)) == ""


def test_too_quiet_is_ignored() -> None:
    assert detect(dtmf_tone("1", 100, -40)) == ""


def test_no_false_detection_on_noise_or_single_tones() -> None:
    rng = np.random.default_rng(3)
    assert detect(rng.normal(0, 3000, 8000 * 20)) == ""
    t = np.arange(8000) / 8000
    assert detect(10_000 * np.sin(2 * np.pi * 770 * t)) == ""  # a row tone alone
    # A DTMF pair buried in loud speech-band noise is not a clean tone either.
    noisy = dtmf_tone("1", 200, -25).astype(float) + rng.normal(0, 8000, 1600)
    assert detect(noisy) == ""


@pytest.mark.parametrize("lang", ["en", "es"])
def test_no_false_detection_on_any_shipped_prompt(lang: str) -> None:
    cat = PromptCatalogue(lang)
    names = cat.names() + [f"facility/{f}" for f in cat.facility_ids()]
    assert len(names) > 50
    for name in names:
        audio = cat.audio(name)
        assert detect(audio) == "", name
        assert detect(g711.ulaw_decode(g711.ulaw_encode(audio))) == "", name
    # And the whole greeting as it is really played.
    seq = tuple(n for n in names if not n.startswith("num_"))
    assert detect(cat.render(seq)) == ""
