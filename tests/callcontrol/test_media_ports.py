"""RTP ports taken by another program are skipped under uvloop too (the `ics serve` loop)."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from ivr import PCMU, PortAllocator, RtpEndpoint


def _free_even_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port % 2 == 0 and port < 65530:
            return port
    raise RuntimeError("no free even port")


def test_taken_port_pair_is_skipped_under_uvloop() -> None:
    async def main() -> tuple[int, int]:
        first = _free_even_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", first))
        try:
            ports = PortAllocator(first, first + 5)
            ep = await RtpEndpoint.open(PCMU, host="127.0.0.1", allocator=ports)
            ep.close()
            return first, ep.port
        finally:
            blocker.close()

    first, port = uvloop.run(main())
    assert port == first + 2


def test_asyncio_loop_skips_too() -> None:
    async def main() -> tuple[int, int]:
        first = _free_even_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", first))
        try:
            ep = await RtpEndpoint.open(PCMU, host="127.0.0.1",
                                        allocator=PortAllocator(first, first + 5))
            ep.close()
            return first, ep.port
        finally:
            blocker.close()

    first, port = asyncio.run(main())
    assert port == first + 2
