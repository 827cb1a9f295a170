"""The node's periodic takeover task: renew this node's lease, adopt the calls of nodes
whose lease expired, and show both in the node's metrics.

It runs beside the controller in ``ics serve`` on a Redis store. Before the
controller takes its first call, ``start`` settles this node's own calls left
open by a crash (none of them can still be live), then takes the lease. After
a clean drain, ``stop`` gives the lease up so no survivor looks for its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from accounts.adoption import adopt_expired, settle_own_leftovers
from accounts.calls import Calls
from accounts.errors import AccountsError
from accounts.redis.leases import NodeLeases

log = logging.getLogger("callcontrol.takeover")


class TakeoverMetrics:
    """``ics_node_calls_connected``, ``ics_node_calls_adopted_total`` and
    ``ics_node_lease_age_seconds``, in the node's registry."""

    def __init__(self, registry: Any, node: str, connected: Callable[[], int]) -> None:
        from prometheus_client import Counter, Gauge

        self.node = node
        self.connected = Gauge(
            "ics_node_calls_connected", "Calls of this node with both parties talking",
            ["node"], registry=registry,
        )
        self.connected.labels(node).set_function(lambda: float(connected()))
        self.adopted = Counter(
            "ics_node_calls_adopted", "Calls of a node whose lease expired, settled by this one",
            ["node", "from_node"], registry=registry,
        )
        self.lease_age = Gauge(
            "ics_node_lease_age_seconds",
            "Seconds since each node known to the store renewed its lease, as this node sees it",
            ["node"], registry=registry,
        )

    def adopted_calls(self, from_node: str, count: int) -> None:
        self.adopted.labels(self.node, from_node).inc(count)

    def lease_ages(self, ages: dict[str, float]) -> None:
        # Nodes forgotten since the last round (all their calls adopted) drop out.
        self.lease_age.clear()
        for name, age in ages.items():
            self.lease_age.labels(name).set(age)


class NodeTakeover:
    """One node's lease and its watch over the other nodes' leases."""

    def __init__(
        self,
        service: Calls,
        leases: NodeLeases,
        node: str,
        *,
        renew_seconds: float,
        ttl_seconds: float,
        metrics: TakeoverMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.leases = leases
        self.node = node
        self.renew_seconds = renew_seconds
        self.ttl_seconds = ttl_seconds
        self.metrics = metrics
        self.clock = clock
        self.renewed_at: datetime | None = None
        self.adopted = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Settle this node's leftovers, take the lease, start renewing; leftovers settled."""
        leftovers = await settle_own_leftovers(self.service, self.leases, self.node, self.clock())
        for s in leftovers.settlements:
            log.warning("node %s: settled its call %s left from before its restart (%s s)",
                        self.node, s.reservation.call_id, s.reservation.talked_seconds)
        await self._renew()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return len(leftovers.settlements)

    async def stop(self, *, release: bool) -> None:
        """Stop renewing; ``release`` (every call of this node settled) gives the lease up."""
        if self._task is not None:
            self._task.cancel()
            with _quiet():
                await self._task
            self._task = None
        if release:
            with _quiet():
                await self.leases.release(self.node)

    def lease_age(self, now: datetime | None = None) -> float | None:
        """Seconds since this node last renewed its lease; None before the first renewal."""
        if self.renewed_at is None:
            return None
        return max(0.0, ((now or self.clock()) - self.renewed_at).total_seconds())

    async def _renew(self) -> None:
        at = self.clock()
        await self.leases.renew(self.node, at, self.ttl_seconds)
        self.renewed_at = at

    async def tick(self) -> int:
        """One round: renew, then adopt what expired nodes left; how many calls were adopted."""
        await self._renew()
        now = self.clock()
        if self.metrics is not None:
            # Before adoption: a node whose calls are all adopted is forgotten.
            leases = await self.leases.leases()
            self.metrics.lease_ages({lease.node: lease.age(now) for lease in leases})
        count = 0
        for adopted in await adopt_expired(self.service, self.leases, self.node, now):
            n = len(adopted.settlements)
            if not n:
                continue
            count += n
            log.warning("node %s: adopted %d call(s) of node %s, whose lease expired",
                        self.node, n, adopted.node)
            if self.metrics is not None:
                self.metrics.adopted_calls(adopted.node, n)
        self.adopted += count
        return count

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.tick()
            except AccountsError as exc:  # the store may be away; the next round tries again
                log.warning("node %s: lease round failed: %s", self.node, exc)


def _quiet() -> contextlib.suppress:
    """What stopping the task or releasing the lease on a store that is away raises."""
    return contextlib.suppress(AccountsError, asyncio.CancelledError)
