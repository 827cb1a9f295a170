"""Real loopback sockets: the shared media clock paces every playing leg; closed legs are freed."""

from __future__ import annotations

import asyncio
import gc
import itertools
import socket
import weakref

import pytest
from ivr_loops import LOOPS, free_range, run

from ivr import PCMU, Bridge, MediaEvent, PlaybackFinished, PortAllocator, RtpEndpoint
from ivr.playback import FRAME_SAMPLES, PTIME
from ivr.rtp import RtpPacket
from ivr.rtp_sockets import media_clock


class Listener(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(RtpPacket.parse(data))


async def listening_peer() -> tuple[asyncio.DatagramTransport, Listener]:
    """A loopback socket that keeps every RTP packet sent to it."""
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_one_clock_paces_every_playing_leg_without_drift(loop_kind: str) -> None:
    legs = 5
    frames = 40

    async def main() -> None:
        loop = asyncio.get_running_loop()
        alloc = PortAllocator(*free_range(legs))
        sinks = []
        endpoints = []
        finished: list[list[MediaEvent]] = []
        for _ in range(legs):
            transport, sink = await listening_peer()
            sinks.append((transport, sink))
            events: list[MediaEvent] = []
            finished.append(events)
            ep = await RtpEndpoint.open(PCMU, allocator=alloc, on_event=events.append,
                                        remote=transport.get_extra_info("sockname"),
                                        inactivity_timeout=0)
            endpoints.append(ep)
        for i, ep in enumerate(endpoints):
            ep.play(bytes([i + 1]) * (FRAME_SAMPLES * frames))
            await asyncio.sleep(0.003)  # legs start at different phases of the clock
        clock = media_clock(loop)
        assert clock is not None and clock.playing == legs
        deadline = loop.time() + frames * PTIME + 3.0
        while loop.time() < deadline and not all(
                any(isinstance(e, PlaybackFinished) for e in evs) for evs in finished):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        # Idle: the clock stops ticking and is forgotten.
        assert media_clock(loop) is None
        for i, (transport, sink) in enumerate(sinks):
            pkts = sink.packets
            assert len(pkts) == frames, f"leg {i}: {len(pkts)} packets"
            assert all(p.payload == bytes([i + 1]) * FRAME_SAMPLES for p in pkts)
            # Timestamps advance by exactly one frame: computed from the start, no drift.
            ts = [p.timestamp for p in pkts]
            assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ts)] == (
                [FRAME_SAMPLES] * (frames - 1))
            assert pkts[0].marker and not any(p.marker for p in pkts[1:])
            transport.close()
        for ep in endpoints:
            ep.close()

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_stopping_and_closing_leave_the_clock(loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        alloc = PortAllocator(*free_range(2))
        transport, sink = await listening_peer()
        peer = transport.get_extra_info("sockname")
        a = await RtpEndpoint.open(PCMU, allocator=alloc, remote=peer, inactivity_timeout=0)
        b = await RtpEndpoint.open(PCMU, allocator=alloc, remote=peer, inactivity_timeout=0)
        a.play(bytes(FRAME_SAMPLES * 500))
        b.play(bytes(FRAME_SAMPLES * 500))
        clock = media_clock(loop)
        assert clock is not None and clock.playing == 2
        a.stop_playback()
        assert clock.playing == 1
        b.close()
        await asyncio.sleep(0.05)
        assert media_clock(loop) is None
        sent = len(sink.packets)
        await asyncio.sleep(0.1)
        assert len(sink.packets) == sent  # nothing more after stop and close
        a.close()
        transport.close()

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_closed_bridged_call_is_freed_without_the_cycle_collector(loop_kind: str) -> None:
    """Legs hold handlers that reach back to their owner; closing cuts every cycle, so a
    finished call's objects go at once instead of waiting for a full collection."""

    class Owner:
        """Stands for the call: it holds the legs and its handlers are its methods."""

        def on_event(self, ev: MediaEvent) -> None:
            pass

        def on_inactive(self, leg: RtpEndpoint) -> None:
            pass

    async def main() -> None:
        alloc = PortAllocator(*free_range(2))
        transport, _ = await listening_peer()
        peer = transport.get_extra_info("sockname")
        owner = Owner()
        a = await RtpEndpoint.open(PCMU, allocator=alloc, remote=peer, on_event=owner.on_event)
        b = await RtpEndpoint.open(PCMU, allocator=alloc, remote=peer, on_event=owner.on_event)
        b.play(bytes(FRAME_SAMPLES * 100))
        bridge = Bridge(a, b, on_inactive=owner.on_inactive)
        owner.a, owner.b, owner.bridge = a, b, bridge  # type: ignore[attr-defined]
        bridge.start()
        await asyncio.sleep(0.05)
        refs = [weakref.ref(x) for x in (owner, a, b, bridge, a.session, b.session)]
        gc.disable()
        try:
            bridge.stop()
            bridge.on_inactive = None
            a.close()
            b.close()
            del owner, a, b, bridge
            await asyncio.sleep(0.05)  # the loop lets go of the closed transports
            alive = [r() for r in refs if r() is not None]
            assert alive == []
        finally:
            gc.enable()
        transport.close()

    run(loop_kind, main)


def test_a_leg_on_an_address_literal_is_bound_without_the_resolver() -> None:
    """uvloop resolves a ``local_addr`` in its thread pool (milliseconds under load, on
    the post-dial path) and the loop spins meanwhile; an address literal never goes
    there, so opening a leg takes a few loop iterations, not thousands."""
    import uvloop  # a dependency of the project (pyproject.toml)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        spins = 0
        opened = False

        def spin() -> None:
            nonlocal spins
            spins += 1
            if not opened:
                loop.call_soon(spin)

        lo, hi = free_range(3)
        alloc = PortAllocator(lo, hi)
        loop.call_soon(spin)
        legs = [await RtpEndpoint.open(PCMU, host="127.0.0.1", allocator=alloc)
                for _ in range(3)]
        opened = True
        try:
            assert [ep.port for ep in legs] == [lo, lo + 2, lo + 4]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, \
                    pytest.raises(OSError):
                probe.bind(("127.0.0.1", lo + 1))  # the RTCP port is held too
        finally:
            for ep in legs:
                ep.close()
        return spins

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        spins = runner.run(main())
    assert spins <= 30
