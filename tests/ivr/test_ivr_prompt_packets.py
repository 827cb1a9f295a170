"""The media clock's one-packet path sends exactly what the general path would."""

from __future__ import annotations

import itertools

import pytest

from ivr import PCMU, PortAllocator
from ivr.events import PlaybackFinished
from ivr.rtp import RtpPacket
from ivr.session import MediaSession

PEER = ("127.0.0.1", 40000)


def _session() -> MediaSession:
    return MediaSession(PCMU, ssrc=0x1234ABCD, now=0.0, remote=PEER, rtcp_interval=0.5)


def _drive(fast: bool) -> tuple[list[bytes], int, list[object]]:
    """Play a 1.5 s prompt on 20 ms ticks (half a tick late, as the media clock asks),
    with a key press sent and a 150 ms stall of the loop on the way."""
    s = _session()
    prompt = bytes(range(240)) * 50  # 75 distinct-looking frames
    s.play(prompt, 0.1)
    rtp: list[bytes] = []
    rtcp = 0
    events: list[object] = []
    t = 0.1
    tick = 0
    while s.playing or tick < 90:
        tick += 1
        t = 0.1 + tick * 0.02 + (0.15 if tick >= 40 else 0.0)  # the stall at tick 40
        if tick == 20:
            s.send_digit("5", t)
        at = t + 0.01
        packet = s.prompt_packet(at) if fast else None
        if packet is not None:
            rtp.append(packet)
        else:
            for out in s.datagrams_to_send(at):
                if out.rtcp:
                    rtcp += 1
                else:
                    rtp.append(out.data)
        while (ev := s.next_event()) is not None:
            events.append(type(ev))
        s.handle_timer(at)
        if tick > 200:
            break
    return rtp, rtcp, events


def test_one_packet_path_sends_what_the_general_path_sends() -> None:
    fast, fast_rtcp, fast_events = _drive(True)
    slow, slow_rtcp, slow_events = _drive(False)
    assert fast == slow
    assert fast_rtcp == slow_rtcp > 0
    assert fast_events == slow_events == [PlaybackFinished]
    packets = [RtpPacket.parse(d) for d in fast]
    audio = [p for p in packets if p.payload_type == 0]
    assert audio[0].marker and not any(p.marker for p in audio[1:])
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert any(p.payload_type == 101 for p in packets)  # the key press went out too


def test_one_packet_path_declines_what_it_does_not_handle() -> None:
    s = _session()
    assert s.prompt_packet(1.0) is None  # nothing playing
    s.play(bytes(480), 1.0)  # three frames: the first is waiting to go out
    assert s.prompt_packet(1.021) is None  # output is waiting (and an RTCP report is due)
    assert len(s.datagrams_to_send(1.0)) == 2  # frame 0 and the report
    assert s.prompt_packet(1.005) is None  # frame 1 is not due yet
    assert s.prompt_packet(1.045) is None  # frames 1 and 2 are due together
    s.stop_playback(1.05)
    s.play(bytes(480), 1.1)
    s.datagrams_to_send(1.1)
    packet = s.prompt_packet(1.121)
    assert packet is not None
    assert RtpPacket.parse(packet).timestamp == s.rtp_timestamp(1.12)
    assert s.prompt_packet(1.141) is None  # the last frame ends the prompt: general path
    s.send_digit("1", 1.141)
    assert s.prompt_packet(1.141) is None  # a key press is queued


def test_port_allocator_refuses_a_port_it_never_gave() -> None:
    ports = PortAllocator(20000, 20009)
    for bad in (20001, 19998, 20010, 30000):
        with pytest.raises(ValueError, match="not from this allocator"):
            ports.release(bad)
    ports.release(20008)  # the last pair of the range is its own
