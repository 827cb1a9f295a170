"""Running media tests under both event loops, on loopback ports that are free right now."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

LOOPS = ["asyncio", "uvloop"]


def run(loop_kind: str, main: Callable[[], Awaitable[None]]) -> None:
    if loop_kind == "uvloop":
        import uvloop  # a dependency of the project (pyproject.toml)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def free_range(n: int) -> tuple[int, int]:
    """A port range that is free right now (best effort: bind-probe it)."""
    for base in range(31000, 60000, 200):
        socks = []
        try:
            for p in range(base, base + 2 * n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base, base + 2 * n - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")
