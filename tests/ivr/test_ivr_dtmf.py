"""DTMF three ways: RFC 4733 events, SIP INFO bodies, in-band tones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivr import g711
from ivr.catalogue import PromptCatalogue
from ivr.inband import (
    COLS,
    HOP,
    KEYPAD,
    RATE,
    ROWS,
    WINDOW,
    InbandDetector,
    dtmf_tone,
    feed_many,
    window_analysis,
    window_hits,
)
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


def test_sipp_shipped_pcap_gives_digit_1_once() -> None:
    assert PCAP.exists(), f"{PCAP} is missing: install sip-tester (scripts/test.sh does)"
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


# -- in-band, against a straightforward per-window reference ---------------------


def reference_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window: Goertzel power at the eight frequencies (the textbook recursion)
    and the energy of each quarter, window by window."""
    count = (len(x) - WINDOW) // HOP + 1
    windows = np.array([x[i * HOP : i * HOP + WINDOW] for i in range(count)], dtype=float)
    coeff = 2 * np.cos(2 * np.pi * np.array(ROWS + COLS) / RATE)
    s1 = np.zeros((count, 8))
    s2 = np.zeros((count, 8))
    for n in range(WINDOW):
        s1, s2 = windows[:, n : n + 1] + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    quarters = np.array([[float(np.sum(q * q)) for q in np.split(w, 4)] for w in windows])
    return power, quarters


def reference_labels(power: np.ndarray, quarters: np.ndarray) -> list[str | None]:
    """The detection criteria spelled out one window at a time."""
    min_power = (500.0 * WINDOW / 2) ** 2
    out: list[str | None] = []
    for p, q in zip(power, quarters, strict=True):
        rows, cols = sorted(p[:4]), sorted(p[4:])
        r, c = rows[-1], cols[-1]
        good = (
            r >= min_power
            and c >= min_power
            and r >= 4.0 * rows[-2]
            and c >= 4.0 * cols[-2]
            and c >= r / 10 ** 0.8  # column at most 8 dB below the row
            and r >= c / 10 ** 0.4  # and at most 4 dB above it
            and (r + c) * 2 / WINDOW >= 0.75 * sum(q)
            and min(q) >= 0.6 * max(q)
        )
        out.append(KEYPAD[int(np.argmax(p[:4]))][int(np.argmax(p[4:]))] if good else None)
    return out


def reference_detect(labels: list[str | None]) -> list[tuple[str, float]]:
    """Two agreeing windows make a digit; two windows without it end it."""
    found, candidate, seen, active, miss = [], None, 0, None, 0
    for i, label in enumerate(labels):
        if active is not None:
            if label == active:
                miss = 0
                continue
            miss += 1
            if miss < 2:
                continue
            active, miss = None, 0
        if label is None:
            candidate, seen = None, 0
            continue
        candidate, seen = label, seen + 1 if label == candidate else 1
        if seen >= 2:
            found.append((label, (i * HOP + WINDOW) / RATE))
            active, candidate, seen = label, None, 0
    return found


def varied_key_presses(seed: int, presses: int) -> np.ndarray:
    """Key presses of random length (some too short), level, twist and spacing."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(presses):
        digit = DIGITS[int(rng.integers(16))]
        level, twist = float(rng.uniform(-36, -2)), float(rng.uniform(-10, 6))
        parts.append(dtmf_tone(digit, int(rng.integers(15, 120)), level, twist).astype(float))
        parts.append(np.zeros(int(rng.integers(0, 600))))
    return np.concatenate(parts)


def test_window_figures_match_goertzel_on_random_and_tone_audio() -> None:
    rng = np.random.default_rng(11)
    keys = varied_key_presses(5, 30)
    cases = {
        "white noise": rng.normal(0, 4000, 4000),
        "full-scale random": rng.integers(-32768, 32768, 4000).astype(float),
        "tones": keys,
        "tones in noise": keys + rng.normal(0, 1500, len(keys)),
        "speech": PromptCatalogue("en").audio("intro_prepaid")[:8000].astype(float),
        "odd length": rng.normal(0, 100, 1234),
    }
    for name, x in cases.items():
        power, quarters = window_analysis(x)
        ref_power, ref_quarters = reference_features(x)
        assert power.shape == ref_power.shape == (len(ref_power), 8), name
        assert len(power) == (len(x) - WINDOW) // HOP + 1, name
        # Errors are rounding only: tiny next to what the window holds.
        scale = WINDOW * ref_quarters.sum(axis=1, keepdims=True) + 1.0
        assert np.all(np.abs(power - ref_power) <= 1e-9 * scale), name
        assert np.allclose(quarters, ref_quarters, rtol=1e-12, atol=1e-6), name
    assert [a.shape for a in window_analysis(np.zeros(WINDOW - 1))] == [(0, 8), (0, 4)]


def test_window_decisions_and_streamed_digits_match_the_reference() -> None:
    rng = np.random.default_rng(13)
    speech = PromptCatalogue("es").render(("intro_prepaid", "recording_notice")).astype(float)
    keys = varied_key_presses(17, 60)
    cases = [
        keys,
        keys + rng.normal(0, 2500, len(keys)),
        np.concatenate([speech[:24_000], keys[:20_000], speech[:8000]]),
        g711.alaw_decode(g711.alaw_encode(np.clip(keys, -32768, 32767).astype(np.int16))),
    ]
    total_hits = 0
    for x in cases:
        labels = reference_labels(*reference_features(x))
        hits = window_hits(*window_analysis(x))
        assert [(i, d) for i, d in enumerate(labels) if d is not None] == hits
        total_hits += len(hits)
        expected = reference_detect(labels)
        assert expected
        for chunk in (1, 77, 160, 1280, len(x)):
            det = InbandDetector()
            got = [
                (d.digit, d.at) for i in range(0, len(x), chunk) for d in det.feed(x[i : i + chunk])
            ]
            assert got == expected, chunk
    assert total_hits > 300  # the cases really exercise the tone path


def test_many_streams_analysed_together_find_what_each_finds_alone() -> None:
    rng = np.random.default_rng(21)
    speech = PromptCatalogue("en").render(("intro_prepaid", "recording_notice")).astype(float)
    keys = varied_key_presses(5, 40)
    streams = [
        keys,
        speech[: len(keys)],
        np.zeros(len(keys)),
        keys + rng.normal(0, 2500, len(keys)),
        np.concatenate([speech[:12_000], keyed("159#", -15.0), speech[:9000]]),
        dtmf_tone("5", 1000).astype(float),
        rng.normal(0, 3000, len(keys)),
    ]
    alone = [InbandDetector() for _ in streams]
    together = [InbandDetector() for _ in streams]
    expected: list[list[tuple[str, float]]] = [[] for _ in streams]
    got: list[list[tuple[str, float]]] = [[] for _ in streams]
    pos = [0] * len(streams)
    while any(p < len(x) for p, x in zip(pos, streams, strict=True)):
        # Uneven chunks, some streams silent in a round (as legs are in a loop turn).
        chunks = []
        for i, x in enumerate(streams):
            n = int(rng.choice([0, 1, 79, 160, 1280, 1443]))
            chunks.append(x[pos[i] : pos[i] + n])
            pos[i] += n
        for i, c in enumerate(chunks):
            expected[i] += [(d.digit, d.at) for d in alone[i].feed(c)]
        for i, found in enumerate(feed_many(together, chunks)):
            got[i] += [(d.digit, d.at) for d in found]
    assert got == expected
    assert "".join(d for d, _ in expected[4]) == "159#"
    assert [d for d, _ in expected[5]] == ["5"]
    assert expected[1] == expected[2] == expected[6] == []
    assert sum(len(e) for e in expected) > 30
    assert feed_many([], []) == []
    with pytest.raises(ValueError, match="2 detectors for 1 chunks"):
        feed_many([InbandDetector(), InbandDetector()], [np.zeros(10)])
