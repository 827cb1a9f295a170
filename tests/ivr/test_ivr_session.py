"""Sans-IO media: prompt pacing, the session state machine, recording, port allocation."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr import PCMA, PCMU, PortAllocator, PortsExhausted, Recorder, g711
from ivr.events import (
    DtmfReceived,
    MediaTimedOut,
    PeerAddressLearned,
    PlaybackFinished,
    RtcpReportReceived,
)
from ivr.inband import dtmf_tone
from ivr.playback import PromptPlayer
from ivr.rfc4733 import event_packets
from ivr.rtcp import ReceiverReport, ReportBlock, SenderReport, parse_compound
from ivr.rtp import RtpPacket, build_packet
from ivr.session import MediaSession

PEER = ("127.0.0.1", 40000)


def test_pacing_has_no_drift_over_a_30_second_prompt() -> None:
    payload = bytes(160 * 1500)  # 30 s
    player = PromptPlayer(payload, start=100.0)
    rng = np.random.default_rng(1)
    sent: list[tuple[int, float]] = []
    now = 100.0
    while not player.finished:
        # Wake up late by up to 4 ms each time, like a busy event loop would.
        now = (player.next_time() or now) + float(rng.uniform(0, 0.004))
        sent += [(k, now) for k, _ in player.due(now)]
    assert [k for k, _ in sent] == list(range(1500))
    errors = [t - (100.0 + k * 0.02) for k, t in sent]
    assert max(errors) < 0.02  # under one packet, and it does not accumulate
    assert abs(np.mean(errors[-100:]) - np.mean(errors[:100])) < 0.002


def test_player_pads_last_frame_and_skips_a_long_stall() -> None:
    player = PromptPlayer(b"\x01" * 170, start=0.0, silence_byte=0xFF)
    frames = player.due(1.0)
    assert [k for k, _ in frames] == [0, 1]
    assert frames[1][1] == b"\x01" * 10 + b"\xff" * 150
    long = PromptPlayer(bytes(160 * 100), start=0.0)
    frames = long.due(1.0)  # 51 frames due at once: only the last 10 are sent
    assert len(frames) == 10 and long.skipped == 41


def session(**kw: object) -> MediaSession:
    return MediaSession(PCMU, ssrc=0x11223344, now=0.0, remote=PEER, **kw)  # type: ignore[arg-type]


def events(s: MediaSession) -> list[object]:
    out = []
    while (e := s.next_event()) is not None:
        out.append(e)
    return out


def test_playback_produces_paced_rtp_with_marker_and_finish_event() -> None:
    s = session()
    s.play(g711.ulaw_encode(np.zeros(800, dtype=np.int16)), now=1.0)
    t = 1.0
    packets = []
    while s.playing:
        packets += [RtpPacket.parse(o.data) for o in s.datagrams_to_send(t) if not o.rtcp]
        t = s.get_timer() or t
        s.handle_timer(t)
    packets += [RtpPacket.parse(o.data) for o in s.datagrams_to_send(t) if not o.rtcp]
    assert len(packets) == 5
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert [p.sequence_number - packets[0].sequence_number for p in packets] == [0, 1, 2, 3, 4]
    assert [p.timestamp - packets[0].timestamp for p in packets] == [0, 160, 320, 480, 640]
    assert {p.payload_type for p in packets} == {0}
    assert any(isinstance(e, PlaybackFinished) for e in events(s))


def test_stop_playback_stops_sending() -> None:
    s = session()
    s.play(bytes(1600), now=0.0)
    assert len([o for o in s.datagrams_to_send(0.0) if not o.rtcp]) == 1
    s.stop_playback(0.01)
    assert not s.playing
    assert [o for o in s.datagrams_to_send(0.5) if not o.rtcp] == []


def test_symmetric_rtp_learns_the_real_source_and_refuses_strays() -> None:
    s = session()
    real = ("127.0.0.1", 41000)
    s.receive_rtp(build_packet(0, 1, 160, 9, b"\xff" * 160), real, 0.1)
    assert events(s) == [PeerAddressLearned(real, 0.1)]
    assert s.remote == real
    # A stray source cannot press keys while the peer is talking...
    for i, p in enumerate(event_packets("1", 60)):
        s.receive_rtp(build_packet(101, 2 + i, 320, 9, p.payload), ("127.0.0.9", 9), 0.12)
    assert s.remote == real and events(s) == []
    assert s.ignored_sources == len(event_packets("1", 60))
    # ...but a peer that really moved (silent on the old address) is followed.
    s.receive_rtp(build_packet(0, 9, 480, 9, b"\xff" * 160), ("127.0.0.9", 9), 1.5)
    assert s.remote == ("127.0.0.9", 9)
    s.receive_rtp(build_packet(0, 10, 640, 9, b"\xff" * 160), real, 1.52)
    assert s.remote == ("127.0.0.9", 9)
    s.play(bytes(160), 1.6)
    assert {o.address for o in s.datagrams_to_send(1.6) if not o.rtcp} == {("127.0.0.9", 9)}


def test_dtmf_from_rfc4733_and_inband_and_info() -> None:
    s = session()
    ts = 8000
    for i, p in enumerate(event_packets("4", 100)):
        pkt = build_packet(101, 10 + i, ts, 5, p.payload, p.marker)
        s.receive_rtp(pkt, PEER, 0.1 + p.offset)
    tone = g711.ulaw_encode(np.concatenate([dtmf_tone("8", 100, -10), np.zeros(800)]))
    for i in range(0, len(tone), 160):
        s.receive_rtp(build_packet(0, 100 + i, i, 5, tone[i : i + 160]), PEER, 1.0 + i / 8000)
    s.receive_dtmf_info("#", 160, 2.0)
    got = [(e.digit, e.source) for e in events(s) if isinstance(e, DtmfReceived)]
    assert got == [("4", "rfc4733"), ("8", "inband"), ("#", "sip-info")]


def test_malformed_and_unknown_packets_are_counted_not_fatal() -> None:
    s = session()
    s.receive_rtp(b"\x80\x00", PEER, 0.1)
    s.receive_rtp(build_packet(101, 1, 0, 5, b"\x01\x02\x03"), PEER, 0.1)
    s.receive_rtp(build_packet(96, 2, 0, 5, b"x"), PEER, 0.1)
    s.receive_rtcp(b"\x80\xc9\x00\x09", PEER, 0.1)
    assert (s.malformed, s.unknown_payload) == (3, 1)


def test_inactivity_timeout_fires_once_and_rearms_on_traffic() -> None:
    s = session(inactivity_timeout=5.0)
    s.receive_rtp(build_packet(0, 1, 0, 5, b"\xff" * 160), PEER, 1.0)
    events(s)
    s.handle_timer(5.9)
    assert not [e for e in events(s) if isinstance(e, MediaTimedOut)]
    s.handle_timer(6.0)
    assert [e for e in events(s) if isinstance(e, MediaTimedOut)] == [MediaTimedOut(1.0, 6.0)]
    s.handle_timer(20.0)
    assert not [e for e in events(s) if isinstance(e, MediaTimedOut)]
    s.receive_rtp(build_packet(0, 2, 160, 5, b"\xff" * 160), PEER, 21.0)
    assert s.get_timer() is not None and s.get_timer() <= 26.0  # type: ignore[operator]


def test_rtcp_sender_report_sent_and_peer_reports_parsed() -> None:
    s = session(rtcp_interval=5.0)
    s.play(bytes(160 * 10), 0.0)
    s.receive_rtp(build_packet(0, 1, 0, 77, b"\xff" * 160), PEER, 0.05)
    out = [o for o in s.datagrams_to_send(2.6) if o.rtcp]
    assert out and out[0].address == (PEER[0], PEER[1] + 1)
    sr, sdes = parse_compound(out[0].data)
    assert isinstance(sr, SenderReport) and sr.ssrc == s.ssrc and sr.packet_count == s.packets_sent
    assert sr.reports[0].ssrc == 77
    assert b"ics" in sdes.serialize()
    rr = ReceiverReport(77, (ReportBlock(s.ssrc, 64, 12, 100, 80, 0, 0),))
    s.receive_rtcp(rr.serialize(), (PEER[0], PEER[1] + 1), 3.0)
    [rep] = [e for e in events(s) if isinstance(e, RtcpReportReceived)]
    assert rep.fraction_lost == 0.25 and rep.cumulative_lost == 12 and rep.jitter_ms == 10.0


def test_send_digit_needs_telephone_event() -> None:
    s = session(telephone_event_pt=None)
    with pytest.raises(ValueError, match="did not negotiate telephone-event"):
        s.send_digit("1", 0.0)


def test_recorder_two_channels_gaps_and_incremental_header(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = Recorder(path, (PCMU, PCMA), now=0.0)
    one = g711.ulaw_encode(np.full(160, 1000, dtype=np.int16))
    two = g711.alaw_encode(np.full(160, -2000, dtype=np.int16))
    for i in range(50):  # one second from each party
        rec.add(0, one, 1000 + i * 160)
        rec.add(1, two, 5000 + i * 160)
    rec.add(0, one, 1000 + 60 * 160)  # party 0 skipped 10 frames (silence suppression)
    rec.add(0, one, 1000)  # a late duplicate is dropped
    rec.flush(1.0)
    # The file is a valid WAV at this point, as after a crash.
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert w.getnframes() == 8000
        frames = np.frombuffer(w.readframes(8000), "<i2").reshape(-1, 2)
    assert frames[0, 0] == g711.ulaw_decode(one)[0] and frames[0, 1] == g711.alaw_decode(two)[0]
    # Party 1 goes quiet for two seconds: padded with silence against the clock.
    rec.flush(3.0)
    rec.close(3.0)
    assert rec.wait_closed(5)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 3 * 8000
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert np.all(frames[50 * 160 : 60 * 160, 0] == 0)  # the gap
    assert np.all(frames[60 * 160 : 61 * 160, 0] == g711.ulaw_decode(one)[0])
    alaw_silence = g711.alaw_decode(bytes([PCMA.silence_byte]))[0]  # A-law has no exact zero
    assert np.all(frames[8000:, 1] == alaw_silence)


def test_recorder_on_a_full_disk_stops_recording_and_raises_nothing(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = Recorder(path, (PCMU, PCMU), now=0.0)
    one = g711.ulaw_encode(np.full(160, 1000, dtype=np.int16))
    for i in range(50):
        rec.add(0, one, i * 160)
        rec.add(1, one, i * 160)
    rec.flush(1.0)
    assert rec.frames_written == 8000 and not rec.failed
    # The disk fills up: /dev/full answers every write with ENOSPC.
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, rec._fd)
    finally:
        os.close(full)
    for i in range(50, 100):
        rec.add(0, one, i * 160)
        rec.add(1, one, i * 160)
    rec.flush(2.0)  # no exception: the call goes on unrecorded
    assert rec.failed and rec.frames_written == 8000
    rec.close(3.0)
    assert rec.wait_closed(5)


def test_port_allocator_round_robin_exhaustion_and_release() -> None:
    ports = PortAllocator(20001, 20008)
    assert ports.capacity == 3  # 20002, 20004, 20006 (each with the odd port above it)
    got = [ports.allocate() for _ in range(3)]
    assert got == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted, match="all 3 RTP port pairs") as exc:
        ports.allocate()
    assert exc.value.sip_status == 503
    ports.release(20004)
    assert ports.allocate() == 20004
    assert ports.in_use == 3
    with pytest.raises(ValueError, match="not from this allocator"):
        ports.release(30000)
    with pytest.raises(ValueError, match="must lie within"):
        PortAllocator(80, 90)


def test_redundant_rfc2198_events_count_once() -> None:
    from ivr.rfc4733 import TelephoneEvent

    s = session(redundancy_pt=100)
    end_3 = TelephoneEvent(3, True, 10, 800).serialize()
    start_4 = TelephoneEvent(4, False, 10, 160).serialize()
    end_4 = TelephoneEvent(4, True, 10, 640).serialize()
    red = bytes([0x80 | 101]) + ((1600 << 10) | 4).to_bytes(3, "big") + bytes([101])
    # The end of '3' (started at ts 1000) was lost on its own, then rides in the red packet.
    s.receive_rtp(build_packet(101, 1, 1000, 5, TelephoneEvent(3, False, 10, 160).serialize()),
                  PEER, 0.0)
    s.receive_rtp(build_packet(100, 2, 2600, 5, red + end_3 + start_4), PEER, 0.2)
    s.receive_rtp(build_packet(100, 3, 2600, 5, red + end_3 + start_4), PEER, 0.22)
    s.receive_rtp(build_packet(101, 4, 2600, 5, end_4), PEER, 0.3)
    got = [e.digit for e in events(s) if isinstance(e, DtmfReceived)]
    assert got == ["3", "4"]


def test_configure_applies_the_sdp_answer() -> None:
    s = MediaSession(PCMU, ssrc=1, now=0.0)  # port offered before the answer came
    s.play(bytes(160), 0.0)
    assert s.datagrams_to_send(0.0) == []  # nowhere to send yet
    s.configure(codec=PCMA, remote=("127.0.0.1", 50000), telephone_event_pt=96)
    s.play(g711.alaw_encode(np.zeros(160, dtype=np.int16)), 0.1)
    [out] = [o for o in s.datagrams_to_send(0.1) if not o.rtcp]
    pkt = RtpPacket.parse(out.data)
    assert (out.address, pkt.payload_type) == (("127.0.0.1", 50000), 8)
    s.send_digit("5", 0.2, duration_ms=40)
    pts = {RtpPacket.parse(o.data).payload_type for o in s.datagrams_to_send(0.3) if not o.rtcp}
    assert pts == {96}
