"""PIN guessing: failed PINs counted per station, and the lock that a run of them sets.

A station is the phone a call comes from (the From URI's user part on a
facility trunk). Someone trying PINs one after another on the same handset is
stopped: after ``failures`` wrong PINs from one station within
``window_seconds``, that station's PIN entry is locked for ``lock_seconds``.
A correct PIN does not clear the count (a guesser who finds one PIN must not
get a fresh run of tries); the lock lapses by itself or is cleared by an
operator through the admin API.

This module is the rule, with no I/O: ``record_failure`` says, from the
failure times a store kept for one station, which to keep and whether the
station is now locked. Each store applies it atomically (one SQL transaction;
one Lua script on Redis, which mirrors it), so that locks hold across nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class PinGuardPolicy:
    """How many failures, within how long, lock a station, and for how long."""

    failures: int = 5
    window_seconds: int = 600
    lock_seconds: int = 900

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("failures must be at least 1")
        if self.window_seconds < 1 or self.lock_seconds < 1:
            raise ValueError("window_seconds and lock_seconds must be at least 1")


@dataclass(frozen=True, slots=True)
class StationLock:
    """A station whose PIN entry is refused until ``until``."""

    facility_id: str
    station: str
    locked_at: datetime
    until: datetime
    failures: int

    def active(self, at: datetime) -> bool:
        return at < self.until


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """What a store keeps after one more failure, and the lock it sets (if any)."""

    kept: tuple[datetime, ...]
    lock: StationLock | None


def record_failure(facility_id: str, station: str, prior: Sequence[datetime], at: datetime,
                   policy: PinGuardPolicy) -> FailureOutcome:
    """One more wrong PIN from ``station`` at ``at``, after the failures ``prior`` kept.

    Failures older than the window are dropped. When the failures left, this one
    included, reach ``policy.failures``, the station is locked from ``at`` for
    ``policy.lock_seconds`` and the count starts again from nothing.
    """
    since = at - timedelta(seconds=policy.window_seconds)
    kept = (*sorted(t for t in prior if t > since), at)
    if len(kept) < policy.failures:
        return FailureOutcome(kept, None)
    lock = StationLock(facility_id, station, at, at + timedelta(seconds=policy.lock_seconds),
                       len(kept))
    return FailureOutcome((), lock)
