"""Carrier routes, sans-IO: which gateway a call tries first and next, and which are in service.

`RouteSelector` holds the configured `Gateway` list, each gateway's resolved
addresses (`Target`), whether it is up and how many calls it carries. A call
asks it for a `RoutePlan`: the gateways in priority order (lower first), those
of one priority in a weighted random order (RFC 2782's selection, the one SRV
uses), each gateway's targets in the order DNS gave them. ``RoutePlan.next``
skips what is down or full at that moment and holds a slot on the gateway it
returns until the call moves on or ends (``finish``).

A call moves on (`fails_over`) after 503 or 408, a transport error or no
response in time; never after a final answer that is the called party's (any
other 4xx, 5xx, 6xx) and never after a 2xx.

`KeepAlive` times OPTIONS probes: ``handle_timer(now)`` says which gateways to
probe, ``answered``/``failed`` report the outcome, and ``failures`` probes in a
row without an answer mark a gateway down until one is answered again. Time
is a parameter throughout; nothing here reads a clock or a socket.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Final responses after which the next gateway is tried: the gateway (or the network
#: behind it) failed, not the called party (RFC 3261 21.5.4, 21.4.9).
FAILOVER_STATUSES = frozenset({408, 503})


def fails_over(status: int) -> bool:
    """A final response ``status`` from a gateway moves the call to the next one."""
    return status in FAILOVER_STATUSES


@dataclass(frozen=True, slots=True)
class Gateway:
    """A configured carrier gateway: ``host`` is an IP address or a DNS name."""

    name: str
    host: str
    port: int | None = None
    transport: str = "udp"
    priority: int = 10
    weight: int = 1
    max_calls: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One resolved address of a gateway."""

    host: str
    port: int
    transport: str = "udp"


@dataclass(frozen=True, slots=True)
class GatewayDown:
    """A gateway missed ``failures`` keep-alives in a row: no calls go to it."""

    gateway: str
    at: float


@dataclass(frozen=True, slots=True)
class GatewayUp:
    """A gateway that was down answered a keep-alive: it takes calls again."""

    gateway: str
    at: float


GatewayChange = GatewayDown | GatewayUp


class GatewayState:
    """What is known of one gateway now."""

    __slots__ = ("calls", "failures", "gateway", "targets", "up")

    def __init__(self, gateway: Gateway, targets: Sequence[Target] = ()) -> None:
        self.gateway = gateway
        self.targets: tuple[Target, ...] = tuple(targets)
        self.up = True
        #: Keep-alives in a row that got no answer.
        self.failures = 0
        self.calls = 0

    @property
    def full(self) -> bool:
        limit = self.gateway.max_calls
        return limit is not None and self.calls >= limit

    @property
    def usable(self) -> bool:
        """Up, resolved, and below its call limit."""
        return self.up and bool(self.targets) and not self.full


def weighted_order(items: Sequence[tuple[int, str]], rng: random.Random) -> list[str]:
    """RFC 2782's ordering of one priority's items ``(weight, name)``: each pick is
    random with probability proportional to weight; weight 0 goes last but can win."""
    pool = sorted(items, key=lambda item: item[0])  # zero weights first, as RFC 2782 asks
    out: list[str] = []
    while pool:
        total = sum(w for w, _ in pool)
        # 0 can only pick a weight-0 item (RFC 2782); without one, weights are exact.
        low = 0 if pool[0][0] == 0 else 1
        pick = rng.randint(low, total) if total > 0 else 0
        running = 0
        for i, (w, name) in enumerate(pool):
            running += w
            if running >= pick:
                out.append(name)
                del pool[i]
                break
    return out


class RouteSelector:
    """The carrier gateways of one node and their state."""

    def __init__(self, gateways: Iterable[Gateway], *, rng: random.Random | None = None) -> None:
        self.states: dict[str, GatewayState] = {}
        for gw in gateways:
            if gw.name in self.states:
                raise ValueError(f"gateway {gw.name!r} is given twice")
            self.states[gw.name] = GatewayState(gw)
        if not self.states:
            raise ValueError("a route needs at least one gateway")
        self.rng = rng or random.Random()

    @property
    def gateways(self) -> list[Gateway]:
        return [s.gateway for s in self.states.values()]

    def set_targets(self, name: str, targets: Sequence[Target]) -> None:
        """The addresses ``name`` resolved to (none: it cannot be reached)."""
        self.states[name].targets = tuple(targets)

    def targets(self, name: str) -> tuple[Target, ...]:
        return self.states[name].targets

    def is_up(self, name: str) -> bool:
        return self.states[name].up

    def calls(self, name: str) -> int:
        return self.states[name].calls

    @property
    def any_up(self) -> bool:
        return any(s.up and s.targets for s in self.states.values())

    @property
    def any_usable(self) -> bool:
        return any(s.usable for s in self.states.values())

    def plan(self) -> RoutePlan:
        """The order one call tries the gateways in (chosen now, once per call)."""
        by_priority: dict[int, list[tuple[int, str]]] = {}
        for name, state in self.states.items():
            by_priority.setdefault(state.gateway.priority, []).append(
                (state.gateway.weight, name))
        order: list[str] = []
        for priority in sorted(by_priority):
            order += weighted_order(by_priority[priority], self.rng)
        return RoutePlan(self, order)

    # -- keep-alive outcomes -------------------------------------------------------

    def probe_answered(self, name: str, now: float) -> GatewayChange | None:
        state = self.states[name]
        state.failures = 0
        if state.up:
            return None
        state.up = True
        return GatewayUp(name, now)

    def probe_failed(self, name: str, now: float, failures_to_down: int) -> GatewayChange | None:
        state = self.states[name]
        state.failures += 1
        if not state.up or state.failures < failures_to_down:
            return None
        state.up = False
        return GatewayDown(name, now)


class RoutePlan:
    """The gateways one call tries, in order; it holds a slot on the one in use."""

    def __init__(self, selector: RouteSelector, order: Sequence[str]) -> None:
        self.selector = selector
        self.order = list(order)
        self._pos = 0
        #: The gateway the call is on now (its slot is held), and the target dialled.
        self.current: Gateway | None = None
        self.target: Target | None = None
        #: Every gateway tried, in order.
        self.tried: list[str] = []

    def next(self) -> tuple[Gateway, Target] | None:
        """Move to the next gateway that is up and has room, holding a slot on it;
        None when none is left (the previous gateway's slot is given back either way)."""
        self._release()
        states = self.selector.states
        while self._pos < len(self.order):
            state = states[self.order[self._pos]]
            self._pos += 1
            if not state.usable:
                continue
            state.calls += 1
            self.current, self.target = state.gateway, state.targets[0]
            self.tried.append(state.gateway.name)
            return self.current, self.target
        return None

    @property
    def remaining(self) -> int:
        """Gateways after the current one that could take the call now."""
        states = self.selector.states
        return sum(1 for name in self.order[self._pos:] if states[name].usable)

    def finish(self) -> None:
        """The call ended (or left this route): give the slot back."""
        self._release()
        self._pos = len(self.order)

    def _release(self) -> None:
        if self.current is not None:
            state = self.selector.states[self.current.name]
            state.calls = max(0, state.calls - 1)
            self.current = None


class KeepAlive:
    """When to send OPTIONS to each gateway, and what an unanswered one means."""

    def __init__(self, selector: RouteSelector, *, interval: float, timeout: float,
                 failures: int, now: float) -> None:
        if interval <= 0 or timeout <= 0 or failures < 1:
            raise ValueError("keep-alive needs a positive interval and timeout, failures >= 1")
        self.selector = selector
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self._next_round = now
        #: Gateway name -> when its outstanding probe counts as failed.
        self._outstanding: dict[str, float] = {}
        self.changes: list[GatewayChange] = []

    def get_timer(self) -> float:
        return min([self._next_round, *self._outstanding.values()])

    def handle_timer(self, now: float) -> list[tuple[str, Target]]:
        """Expire unanswered probes; at a round's time, the (gateway, target) to probe."""
        for name, deadline in list(self._outstanding.items()):
            if now >= deadline:
                del self._outstanding[name]
                self._failed(name, now)
        if now < self._next_round:
            return []
        while self._next_round <= now:
            self._next_round += self.interval
        probes = []
        for name, state in self.selector.states.items():
            if name in self._outstanding:
                continue  # still waiting on the last one
            if not state.targets:
                self._failed(name, now)  # nothing to send to: as good as unanswered
                continue
            self._outstanding[name] = now + self.timeout
            probes.append((name, state.targets[0]))
        return probes

    def answered(self, name: str, status: int, now: float) -> None:
        """A response to the probe of ``name``: any but 503 means it is in service."""
        if self._outstanding.pop(name, None) is None:
            return  # late: the probe was already counted as failed
        if status == 503:
            self._failed(name, now)
            return
        change = self.selector.probe_answered(name, now)
        if change is not None:
            self.changes.append(change)

    def failed(self, name: str, now: float) -> None:
        """The probe of ``name`` could not be sent or its transaction timed out."""
        if self._outstanding.pop(name, None) is not None:
            self._failed(name, now)

    def _failed(self, name: str, now: float) -> None:
        change = self.selector.probe_failed(name, now, self.failures)
        if change is not None:
            self.changes.append(change)

    def take_changes(self) -> list[GatewayChange]:
        changes, self.changes = self.changes, []
        return changes
