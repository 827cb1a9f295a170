"""Legs opened from RTP socket pairs bound ahead of need."""

from __future__ import annotations

import asyncio
import socket

import pytest
from ivr_loops import LOOPS, free_range, run

from ivr import PCMU, PortAllocator, PortsExhausted, RtpEndpoint, SparePairs


async def _until_ready(spares: SparePairs, count: int) -> None:
    for _ in range(200):
        if spares.ready >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {spares.ready} of {count} spares bound")


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_leg_from_a_spare_carries_media_and_gives_its_port_back(loop_kind: str) -> None:
    async def main() -> None:
        lo, hi = free_range(64)
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "127.0.0.1", target=3)
        spares.fill()
        await _until_ready(spares, 3)
        assert ports.in_use == 3
        # A ready spare makes opening a leg a coroutine that never suspends.
        coro = RtpEndpoint.open(PCMU, host="127.0.0.1", spares=spares)
        with pytest.raises(StopIteration) as done:
            coro.send(None)
        ep: RtpEndpoint = done.value.value
        assert lo <= ep.port < hi
        assert spares.ready == 2  # the replacement is on its way
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2)
        try:
            ep.configure(codec=PCMU, remote=peer.getsockname(), telephone_event_pt=101)
            ep.play(b"\xff" * 480)
            data, addr = peer.recvfrom(2048)
            assert addr == ("127.0.0.1", ep.port) and len(data) == 172
        finally:
            peer.close()
        await _until_ready(spares, 3)
        ep.close()
        spares.close()
        assert ports.in_use == 0
        assert spares.ready == 0

    run(loop_kind, main)


def test_without_a_ready_spare_a_leg_binds_its_own() -> None:
    async def main() -> None:
        lo, hi = free_range(32)
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "127.0.0.1", target=2)
        ep = await RtpEndpoint.open(PCMU, host="127.0.0.1", spares=spares)
        assert lo <= ep.port < hi
        await _until_ready(spares, 2)
        # Another host than the spares' binds on that host, from the same range.
        other = await RtpEndpoint.open(PCMU, host="127.0.0.2", spares=spares)
        assert other.session is not None and lo <= other.port < hi
        assert spares.ready == 2
        for leg in (ep, other):
            leg.close()
        spares.close()
        assert ports.in_use == 0

    asyncio.run(main())


def test_spares_never_hold_the_ports_legs_need() -> None:
    async def main() -> None:
        lo, hi = free_range(4)  # four pairs: one is kept spare at most
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "127.0.0.1", target=64)
        assert spares.target == 1
        spares.fill()
        legs = [await RtpEndpoint.open(PCMU, host="127.0.0.1", spares=spares) for _ in range(4)]
        assert sorted(leg.port for leg in legs) == list(range(lo, hi, 2))
        with pytest.raises(PortsExhausted):
            await RtpEndpoint.open(PCMU, host="127.0.0.1", spares=spares)
        for leg in legs:
            leg.close()
        spares.close()
        await asyncio.sleep(0.01)
        assert ports.in_use == 0

    asyncio.run(main())


def test_spares_must_share_the_allocator() -> None:
    async def main() -> None:
        lo, hi = free_range(4)
        spares = SparePairs(PortAllocator(lo, hi), "127.0.0.1")
        with pytest.raises(ValueError, match="own allocator"):
            await RtpEndpoint.open(PCMU, allocator=PortAllocator(lo, hi), spares=spares)

    asyncio.run(main())


def test_a_host_name_binds_through_the_resolver() -> None:
    async def main() -> None:
        lo, hi = free_range(4)
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "localhost", target=1)
        spares.fill()
        await _until_ready(spares, 1)
        taken = await RtpEndpoint.open(PCMU, host="localhost", spares=spares)
        own = await RtpEndpoint.open(PCMU, host="localhost", allocator=ports)
        assert {taken.port, own.port} <= set(range(lo, hi, 2))
        assert taken.port != own.port
        for leg in (taken, own):
            leg.close()
        spares.close()
        # A replacement still being bound gives its port back as its cancellation lands.
        for _ in range(100):
            if ports.in_use == 0:
                break
            await asyncio.sleep(0.005)
        assert ports.in_use == 0

    asyncio.run(main())


def test_take_spare_gives_a_leg_at_once_or_none() -> None:
    async def main() -> None:
        lo, hi = free_range(8)
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "127.0.0.1", target=1)
        assert RtpEndpoint.take_spare(PCMU, spares) is None  # none bound yet
        await _until_ready(spares, 1)
        leg = RtpEndpoint.take_spare(PCMU, spares, remote=("127.0.0.1", 9))
        assert leg is not None and lo <= leg.port < hi
        assert leg.session.remote == ("127.0.0.1", 9)
        leg.close()
        await _until_ready(spares, 1)
        spares.close()
        assert ports.in_use == 0

    asyncio.run(main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_binding_a_pair_on_an_address_never_suspends(loop_kind: str) -> None:
    async def main() -> None:
        lo, hi = free_range(8)
        ports = PortAllocator(lo, hi)
        spares = SparePairs(ports, "127.0.0.1", target=1)  # none bound yet
        legs = []
        for coro in (RtpEndpoint.open(PCMU, host="127.0.0.1", allocator=ports),
                     RtpEndpoint.open(PCMU, host="127.0.0.1", spares=spares)):
            with pytest.raises(StopIteration) as done:
                coro.send(None)
            legs.append(done.value.value)
        assert all(lo <= leg.port < hi for leg in legs)
        for leg in legs:
            leg.close()
        spares.close()
        assert ports.in_use == 0

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_burst_is_read_in_full_and_a_leg_closed_by_its_handler_reads_no_more(
    loop_kind: str,
) -> None:
    async def main() -> None:
        lo, hi = free_range(8)
        ports = PortAllocator(lo, hi)
        ep = await RtpEndpoint.open(PCMU, host="127.0.0.1", allocator=ports)
        closing = await RtpEndpoint.open(PCMU, host="127.0.0.1", allocator=ports)
        got: list[bytes] = []
        after_close: list[bytes] = []

        def close_on_third(data: bytes, addr: tuple[str, int]) -> None:
            after_close.append(data)
            if len(after_close) == 3:
                closing.close()

        ep.divert(lambda data, addr: got.append(data), lambda data, addr: None)
        closing.divert(close_on_third, lambda data, addr: None)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        try:
            # More than one readiness callback reads (32 each), all sent before the
            # loop runs again.
            for i in range(100):
                peer.sendto(i.to_bytes(2, "big"), ("127.0.0.1", ep.port))
                peer.sendto(i.to_bytes(2, "big"), ("127.0.0.1", closing.port))
            for _ in range(200):
                if len(got) == 100:
                    break
                await asyncio.sleep(0.005)
            assert [int.from_bytes(d, "big") for d in got] == list(range(100))
            # Datagrams still queued on a closed leg go nowhere, and nothing raises.
            assert len(after_close) == 3 and closing.closed
        finally:
            peer.close()
        ep.close()
        assert ports.in_use == 0

    run(loop_kind, main)
