"""Allocation of RTP port pairs (even RTP, odd RTCP) from a configured range."""

from __future__ import annotations

from ivr.errors import PortsExhausted


class PortAllocator:
    """Hands out even ports in ``[first, last]`` round-robin, so a port just freed
    is not reused at once (late packets of the old call would reach the new one)."""

    def __init__(self, first: int, last: int) -> None:
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} must lie within 1024-65535")
        first += first % 2
        if first + 1 > last:
            raise ValueError(f"RTP port range {first}-{last} holds no even/odd pair")
        self.first = first
        self.last = last
        self._ports = list(range(first, last, 2))
        self._free = set(self._ports)
        self._next = 0

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        return len(self._ports) - len(self._free)

    def allocate(self) -> int:
        if not self._free:
            raise PortsExhausted(
                f"all {len(self._ports)} RTP port pairs in {self.first}-{self.last} are in use"
            )
        n = len(self._ports)
        for i in range(n):
            port = self._ports[(self._next + i) % n]
            if port in self._free:
                self._free.discard(port)
                self._next = (self._next + i + 1) % n
                return port
        raise AssertionError("free set and port list disagree")

    def release(self, port: int) -> None:
        if not (self.first <= port < self.last and (port - self.first) % 2 == 0):
            raise ValueError(f"port {port} is not from this allocator")
        self._free.add(port)
