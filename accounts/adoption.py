"""Adoption: a surviving node settles the open calls of a node whose lease expired.

Each call is settled from its last heartbeat (the controller heartbeats every
``accounts.heartbeat_seconds``, at most 15 s, so the payer is charged never
more than was talked and at most one interval less), its CDR is written by
the account service's one CDR builder, and the rest of its hold is released.
A call is claimed in Redis before it is touched, so of two survivors racing
only one settles it and writes its CDR; a node that comes back after its
calls were adopted finds nothing open of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from accounts.calls import Calls, Settlement
from accounts.errors import NotFound
from accounts.model import Reservation
from accounts.redis.leases import NodeLeases

#: How long a claim keeps other survivors off a call; past it, a survivor that
#: died between claiming and settling leaves the call to the next one.
CLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class Adopted:
    """The calls one survivor settled for one node that was gone."""

    node: str
    settlements: tuple[Settlement, ...]


async def adopt_holds(
    service: Calls,
    leases: NodeLeases,
    holds: list[Reservation],
    *,
    dead: str,
    survivor: str,
    at: datetime,
    claim_seconds: float = CLAIM_SECONDS,
) -> Adopted:
    """Claim, settle and record each of ``dead``'s ``holds``; what this survivor settled."""
    if dead == survivor:
        reason = f"settled by node {survivor} at its restart from the last heartbeat"
    else:
        reason = f"settled by node {survivor} from the last heartbeat: node {dead}'s lease expired"
    done: list[Settlement] = []
    for hold in holds:
        try:
            if not await leases.claim_call(hold.id, survivor, claim_seconds):
                continue  # another survivor has it
        except NotFound:
            continue  # settled and expired meanwhile
        settlement = await service.settle_orphan(hold, at, reason)
        if settlement is not None:
            done.append(settlement)
    return Adopted(dead, tuple(done))


async def adopt_expired(
    service: Calls,
    leases: NodeLeases,
    survivor: str,
    at: datetime,
    *,
    claim_seconds: float = CLAIM_SECONDS,
) -> list[Adopted]:
    """Adopt the open calls of every node whose lease expired; forget nodes left with none."""
    dead = [lease.node for lease in await leases.leases()
            if not lease.alive and lease.node != survivor]
    if not dead:
        return []
    holds = await leases.open_holds()
    adopted = []
    for node in dead:
        mine = holds.get(node, [])
        if mine:
            adopted.append(await adopt_holds(
                service, leases, mine, dead=node, survivor=survivor, at=at,
                claim_seconds=claim_seconds,
            ))
        if not mine or len(adopted[-1].settlements) == len(mine):
            await leases.forget(node)
    return adopted


async def settle_own_leftovers(
    service: Calls, leases: NodeLeases, node: str, at: datetime
) -> Adopted:
    """At start-up: this node's calls from before its restart cannot be live any more.

    Calls a survivor adopted meanwhile are settled already and not open, so
    nothing is done twice.
    """
    holds = (await leases.open_holds()).get(node, [])
    return await adopt_holds(service, leases, holds, dead=node, survivor=node, at=at)
