"""Runs the three-way call detector over the called leg of every bridged call (asyncio adapter).

The bridge hands over the payloads of its called leg's audio packets (a list
append per packet, nothing decoded there); every ``interval`` the loop's one
`CalledLegWatch` decodes what each watched leg relayed since, analyses them
together (`ivr.threeway.feed_many`), runs each leg's policy, and calls the
leg's ``on_suspected`` once when a call looks like a three-way call. The legs
are dealt into ``SLOTS`` groups analysed one after the other across the
interval, so that no turn of the loop holds up the relay for long. No audio is
kept beyond a frame: the detector keeps levels and tone labels only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ivr.bridge import Bridge
from ivr.threeway import (
    Sensitivity,
    SignalHeard,
    ThreeWayDetector,
    ThreeWayPolicy,
    ThreeWaySuspected,
    feed_many,
)

log = logging.getLogger(__name__)

#: Seconds between analyses of a leg: a decision comes at most this long after its evidence.
INTERVAL = 0.5
#: Groups of legs, each analysed in its own turn of the loop, INTERVAL / SLOTS apart.
SLOTS = 10


class WatchedLeg:
    """One bridged call's called leg under watch."""

    __slots__ = ("audio", "bridge", "codec", "detector", "on_suspected", "policy", "slot")

    def __init__(self, bridge: Bridge, sensitivity: Sensitivity | None, start: float,
                 on_suspected: Callable[[ThreeWaySuspected], None]) -> None:
        self.bridge = bridge
        self.codec = bridge.b.session.codec
        self.audio: list[bytes] = []
        self.detector = ThreeWayDetector(sensitivity, start=start)
        self.policy = ThreeWayPolicy(sensitivity)
        self.on_suspected = on_suspected
        self.slot = 0


class CalledLegWatch:
    """The loop's watch over the called legs of its bridges."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = INTERVAL,
                 slots: int = SLOTS) -> None:
        self.loop = loop
        self.interval = interval
        self.slots = slots
        self._legs: dict[int, WatchedLeg] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._slot = 0  # the group analysed next
        self._dealt = 0

    def __len__(self) -> int:
        return len(self._legs)

    def watch(self, bridge: Bridge, on_suspected: Callable[[ThreeWaySuspected], None], *,
              sensitivity: Sensitivity | None = None, start: float = 0.0) -> WatchedLeg:
        """Watch ``bridge``'s called leg (``b``); ``start``: seconds in the call now."""
        leg = WatchedLeg(bridge, sensitivity, start, on_suspected)
        leg.slot = self._dealt % self.slots
        self._dealt += 1
        bridge.called_audio = leg.audio
        self._legs[id(leg)] = leg
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval / self.slots, self._tick)
        return leg

    def release(self, leg: WatchedLeg) -> None:
        """Stop watching ``leg`` (its call ended)."""
        if self._legs.pop(id(leg), None) is not None and leg.bridge.called_audio is leg.audio:
            leg.bridge.called_audio = None
        leg.audio.clear()
        if not self._legs and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        slot, self._slot = self._slot, (self._slot + 1) % self.slots
        legs = [leg for leg in self._legs.values() if leg.slot == slot and leg.audio]
        if legs:
            chunks = []
            for leg in legs:
                payload = b"".join(leg.audio)
                leg.audio.clear()
                chunks.append(leg.codec.decode(payload))
            heard = feed_many([leg.detector for leg in legs], chunks)
            for leg, signals in zip(legs, heard, strict=True):
                self._decide(leg, signals)
        if self._legs:
            self._timer = self.loop.call_later(self.interval / self.slots, self._tick)

    def _decide(self, leg: WatchedLeg, signals: list[SignalHeard]) -> None:
        now = leg.detector.now
        for signal in signals:
            decided = leg.policy.heard(signal, now)
            if decided is not None:
                try:
                    leg.on_suspected(decided)
                except Exception:
                    log.exception("three-way decision handler failed")


_watches: dict[asyncio.AbstractEventLoop, CalledLegWatch] = {}


def called_leg_watch(loop: asyncio.AbstractEventLoop) -> CalledLegWatch:
    """The loop's `CalledLegWatch` (made on first use)."""
    watch = _watches.get(loop)
    if watch is None or watch.loop is not loop:
        watch = _watches[loop] = CalledLegWatch(loop)
    return watch
