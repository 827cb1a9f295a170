"""Real loopback sockets: endpoints, prompt playback, bridging with transcoding and recording."""

from __future__ import annotations

import asyncio
import socket
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import pytest
from ivr_loops import LOOPS, free_range, run

from ivr import (
    PCMA,
    PCMU,
    Bridge,
    Codec,
    DtmfReceived,
    PlaybackFinished,
    PortAllocator,
    PortsExhausted,
    RtpEndpoint,
    g711,
    open_recording,
)
from ivr.events import Address, MediaEvent
from ivr.rfc4733 import event_packets
from ivr.rtp import RtpPacket, build_packet


class Phone(asyncio.DatagramProtocol):
    """A far-end phone: a bare UDP socket that records what it receives."""

    def __init__(self) -> None:
        self.received: list[RtpPacket] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if 192 <= data[1] <= 223:
            return  # RTCP
        self.received.append(RtpPacket.parse(data))
        self.arrived.set()

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)


async def phone() -> Phone:
    loop = asyncio.get_running_loop()
    _, p = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    return p


async def two_phones_and_legs(
    b_codec: Codec = PCMU,
) -> tuple[Phone, Phone, RtpEndpoint, RtpEndpoint]:
    """Alice and Bob on loopback phones, and our legs to them: ``a`` (PCMU) to Alice and
    ``b`` (``b_codec``) to Bob, on ports of a fresh range."""
    lo, hi = free_range(4)
    ports = PortAllocator(lo, hi)
    alice, bob = await phone(), await phone()
    a = await RtpEndpoint.open(PCMU, allocator=ports, remote=alice.address)
    b = await RtpEndpoint.open(b_codec, allocator=ports, remote=bob.address)
    return alice, bob, a, b


E = TypeVar("E", bound=MediaEvent)


async def next_event(ep: RtpEndpoint, kind: type[E]) -> E:
    """The next event of ``kind`` that ``ep`` reports, skipping others (5 s for each)."""
    while True:
        ev = await asyncio.wait_for(ep.events.get(), 5)
        if isinstance(ev, kind):
            return ev


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_prompt_playback_and_dtmf_over_real_sockets(loop_kind: str) -> None:
    async def main() -> None:
        lo, hi = free_range(2)
        ports = PortAllocator(lo, hi)
        far = await phone()
        ep = await RtpEndpoint.open(PCMA, allocator=ports, remote=far.address)
        audio = g711.alaw_encode(np.zeros(160 * 10, dtype=np.int16))
        ep.play(audio)
        await next_event(ep, PlaybackFinished)
        await wait_for(lambda: len([p for p in far.received if p.payload_type == 8]) == 10)
        assert [p.payload for p in far.received[:10]] == [audio[:160]] * 10
        # The far end presses 6 (RFC 4733).
        for i, p in enumerate(event_packets("6", 80)):
            far.send(build_packet(101, i, 4000, 99, p.payload, p.marker), ("127.0.0.1", ep.port))
        ev = await next_event(ep, DtmfReceived)
        assert (ev.digit, ev.source) == ("6", "rfc4733")
        ep.close()
        assert ports.in_use == 0

    run(loop_kind, main)


def test_port_exhaustion_is_clean_and_taken_ports_are_skipped() -> None:
    async def main() -> None:
        lo, hi = free_range(2)
        ports = PortAllocator(lo, hi)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", lo))  # another program holds the first pair
        try:
            ep = await RtpEndpoint.open(PCMU, allocator=ports)
            assert ep.port == lo + 2
            with pytest.raises(PortsExhausted) as exc:
                await RtpEndpoint.open(PCMU, allocator=ports)
            assert exc.value.sip_status == 503
            assert ports.in_use == 1  # nothing leaked by the failed attempts
            ep.close()
            assert ports.in_use == 0
        finally:
            blocker.close()

    asyncio.run(main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_bridge_transcodes_passes_dtmf_records_and_times_out(
    loop_kind: str, tmp_path: Path
) -> None:
    async def main() -> None:
        lo, hi = free_range(4)
        ports = PortAllocator(lo, hi)
        alice, bob = await phone(), await phone()
        # The facility leg speaks PCMU with events on 101; the called leg PCMA on 96.
        a = await RtpEndpoint.open(PCMU, allocator=ports, remote=("127.0.0.1", 9))
        b = await RtpEndpoint.open(
            Codec("PCMA", 8), allocator=ports, remote=bob.address, telephone_event_pt=96
        )
        recorder = open_recording(tmp_path, "call-1", privileged=False, codecs=(PCMU, PCMA),
                                  now=asyncio.get_running_loop().time())
        inactive: list[RtpEndpoint] = []
        bridge = Bridge(a, b, recorder=recorder, inactivity_timeout=0.5,
                        on_inactive=inactive.append, flush_interval=0.1)
        bridge.start()
        tone = g711.ulaw_encode(np.full(160, 3000, dtype=np.int16))
        back = g711.alaw_encode(np.full(160, -3000, dtype=np.int16))
        for i in range(20):
            # Alice's real address differs from what SDP said: learned (symmetric RTP).
            alice.send(build_packet(0, i, i * 160, 1, tone), ("127.0.0.1", a.port))
            bob.send(build_packet(8, i, i * 160, 2, back), ("127.0.0.1", b.port))
            await asyncio.sleep(0.02)
        ev = event_packets("9", 60)[-1]
        alice.send(build_packet(101, 99, 9999, 1, ev.payload, False), ("127.0.0.1", a.port))
        await wait_for(lambda: len(bob.received) >= 21 and len(alice.received) >= 20)
        audio_to_bob = [p for p in bob.received if p.payload_type == 8]
        assert audio_to_bob and audio_to_bob[0].payload == g711.alaw_encode(g711.ulaw_decode(tone))
        assert next(p for p in bob.received if p.payload_type == 96).payload == ev.payload
        assert {p.payload for p in alice.received} == {g711.ulaw_encode(g711.alaw_decode(back))}
        assert a.session.remote == alice.address
        # Both stop talking: the bridge notices and ends.
        await wait_for(lambda: bool(inactive), timeout=5.0)
        assert not bridge.running
        assert recorder is not None and recorder.closed
        assert recorder.wait_closed(5)
        with wave.open(str(tmp_path / "call-1.wav")) as w:
            assert w.getnchannels() == 2
            frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
        assert (frames[:, 0] == g711.ulaw_decode(tone)[0]).sum() == 20 * 160
        assert (frames[:, 1] == g711.alaw_decode(back)[0]).sum() == 20 * 160
        a.close()
        b.close()
        assert ports.in_use == 0

    run(loop_kind, main)


def test_privileged_calls_are_never_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob, a, b = await two_phones_and_legs()
        recorder = open_recording(tmp_path, "attorney-call", privileged=True,
                                  codecs=(PCMU, PCMU), now=0.0)
        assert recorder is None
        bridge = Bridge(a, b, recorder=recorder)
        bridge.start()
        for i in range(5):
            alice.send(build_packet(0, i, i * 160, 1, b"\x10" * 160), ("127.0.0.1", a.port))
        await wait_for(lambda: len(bob.received) == 5)
        assert bob.received[0].payload == b"\x10" * 160  # same codec: passed through untouched
        bridge.stop()
        a.close()
        b.close()

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="cannot name a recording file"):
        open_recording(tmp_path, "../x", privileged=False, codecs=(PCMU, PCMU), now=0.0)


def test_announcement_to_both_parties_while_bridged() -> None:
    async def main() -> None:
        alice, bob, a, b = await two_phones_and_legs(PCMA)
        bridge = Bridge(a, b)
        bridge.start()
        n = 25  # half a second
        warning_u = g711.ulaw_encode(np.full(160 * n, 500, dtype=np.int16))
        warning_a = g711.alaw_encode(np.full(160 * n, 500, dtype=np.int16))
        done = bridge.announce(warning_u, warning_a)
        # Meanwhile the parties keep talking: they do not hear each other during it.
        for i in range(3):
            alice.send(build_packet(0, i, i * 160, 1, b"\x10" * 160), ("127.0.0.1", a.port))
        await asyncio.sleep(0.05)
        held = len(bob.received)
        await asyncio.wait_for(done, 10)
        frames = range(0, 160 * n, 160)
        assert [p.payload for p in alice.received] == [warning_u[i : i + 160] for i in frames]
        assert [p.payload for p in bob.received] == [warning_a[i : i + 160] for i in frames]
        assert held < n and {p.ssrc for p in bob.received} == {b.session.ssrc}
        # After it, relaying resumes.
        alice.send(build_packet(0, 9, 9 * 160, 1, b"\x10" * 160), ("127.0.0.1", a.port))
        await wait_for(lambda: len(bob.received) == n + 1)
        assert bob.received[-1].ssrc == 1
        assert bob.received[-1].payload == bytes([0x10]).translate(g711.ULAW_TO_ALAW) * 160
        bridge.stop()
        a.close()
        b.close()

    asyncio.run(main())


def test_bridge_does_not_relay_a_stray_source() -> None:
    async def main() -> None:
        alice, bob, a, b = await two_phones_and_legs()
        stranger = await phone()
        bridge = Bridge(a, b)
        bridge.start()
        for i in range(5):
            alice.send(build_packet(0, i, i * 160, 1, b"\x01" * 160), ("127.0.0.1", a.port))
            stranger.send(build_packet(0, i, i * 160, 66, b"\x02" * 160), ("127.0.0.1", a.port))
            await asyncio.sleep(0.01)
        await wait_for(lambda: len(bob.received) >= 5)
        await asyncio.sleep(0.1)
        assert {p.ssrc for p in bob.received} == {1}
        assert a.session.ignored_sources == 5
        bridge.stop()
        a.close()
        b.close()

    asyncio.run(main())
