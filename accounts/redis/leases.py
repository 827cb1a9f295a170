"""Node leases in Redis: which ``ics serve`` nodes are alive, and a survivor's claim on a
dead node's call.

Each node renews a key with a time to live (``SET ... PX``): Redis's own clock
expires it, so a node that stops (kill -9, power, a partition) loses its lease
without anyone's help, and no two nodes' clocks need to agree. A hash beside
the leases remembers every node that ever renewed and when it last did (the
lease age the metrics show), so a survivor can tell "expired" from "never
here". The leases and that hash share one hash tag: one cluster slot.

A survivor claims a dead node's call with ``SET NX`` on a key under the
reservation's own hash tag, before it settles it; two survivors racing for
the same call cannot both win. The settlement itself is guarded too (the
write checks the hold is still open), so the claim keeps the second survivor
from doing the work and writing the CDR, not from moving money twice.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from redis.exceptions import RedisError

from accounts.model import Reservation
from accounts.redis.store import RedisAccountStore

T = TypeVar("T")

#: The hash tag of every lease key: one slot on a Redis Cluster.
LEASE_TAG = "leases"


@dataclass(frozen=True)
class NodeLease:
    """A node as the store knows it: when it last renewed, and whether its lease holds."""

    node: str
    renewed_at: datetime
    alive: bool

    def age(self, now: datetime) -> float:
        """Seconds since the node last renewed (as the node's own clock said then)."""
        return max(0.0, (now - self.renewed_at).total_seconds())


def _ms(seconds: float) -> int:
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"a lease or claim lasts a positive number of seconds, not {seconds!r}")
    return max(1, round(seconds * 1000))


class NodeLeases:
    """The leases of the nodes sharing one Redis account store."""

    def __init__(self, store: RedisAccountStore) -> None:
        self.store = store

    def _lease(self, node: str) -> str:
        return self.store._t(LEASE_TAG, "lease", node)

    @property
    def _nodes(self) -> str:
        return self.store._t(LEASE_TAG, "nodes")

    async def _guard(self, operation: str, step: Awaitable[T]) -> T:
        try:
            return await step
        except (RedisError, OSError) as exc:
            raise self.store._unavailable(operation, exc) from exc

    async def renew(self, node: str, at: datetime, ttl_seconds: float) -> None:
        """Hold (or take again) ``node``'s lease for ``ttl_seconds`` from now."""
        pipe = self.store._pipe()
        pipe.set(self._lease(node), at.isoformat(), px=_ms(ttl_seconds))
        pipe.hset(self._nodes, node, at.isoformat())
        await self._guard("renew_lease", pipe.execute())

    async def release(self, node: str) -> None:
        """A node that stopped cleanly (its calls all settled) gives its lease up."""
        pipe = self.store._pipe()
        pipe.delete(self._lease(node))
        pipe.hdel(self._nodes, node)
        await self._guard("release_lease", pipe.execute())

    async def leases(self) -> list[NodeLease]:
        """Every node that renewed and did not release, by name."""
        known: dict[str, str] = await self._guard("leases", self.store.client.hgetall(self._nodes))
        if not known:
            return []
        names = sorted(known)
        pipe = self.store._pipe()
        for name in names:
            pipe.exists(self._lease(name))
        alive = await self._guard("leases", pipe.execute())
        return [
            NodeLease(name, _when(known[name]), bool(up))
            for name, up in zip(names, alive, strict=True)
        ]

    async def forget(self, node: str) -> None:
        """Drop a dead node whose calls are all settled from the list of nodes.

        Not atomic with the lease check, and need not be: a node that comes back
        meanwhile writes itself into the list again at its next renewal.
        """
        if not await self._guard("forget_node", self.store.client.exists(self._lease(node))):
            await self._guard("forget_node", self.store.client.hdel(self._nodes, node))

    async def claim_call(self, reservation_id: str, node: str, ttl_seconds: float) -> bool:
        """Take the right to settle a dead node's call; True if ``node`` holds it.

        The claim lives under the reservation's hash tag and expires, so a
        survivor that dies between claiming and settling leaves the call to the
        next one.
        """
        tag = await self._guard("claim_call", self.store._reservation_tag(reservation_id))
        key = self.store._t(tag, "adopt", reservation_id)
        old = await self._guard(
            "claim_call",
            self.store.client.set(key, node, nx=True, px=_ms(ttl_seconds), get=True),
        )
        return old is None or old == node

    async def open_holds(self) -> dict[str, list[Reservation]]:
        """Open reservations by the node that owns them ("" for holds made without one)."""
        by_owner: dict[str, list[Reservation]] = {}
        for r in await self.store.open_reservations():
            by_owner.setdefault(r.owner, []).append(r)
        return by_owner


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
