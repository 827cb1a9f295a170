"""The PIN-guessing rule on its own: failures per station within a window set a lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.station_locks import PinGuardPolicy, record_failure

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POLICY = PinGuardPolicy()  # 5 failures in 10 minutes lock for 15 minutes


def fail_times(*minutes: float) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in minutes]


def test_the_fifth_failure_within_ten_minutes_locks_for_fifteen() -> None:
    kept: tuple[datetime, ...] = ()
    for i, at in enumerate(fail_times(0, 2, 4, 6)):
        outcome = record_failure("tx", "4001", kept, at, POLICY)
        assert outcome.lock is None
        kept = outcome.kept
        assert len(kept) == i + 1
    at = T0 + timedelta(minutes=9, seconds=59)
    outcome = record_failure("tx", "4001", kept, at, POLICY)
    assert outcome.lock is not None
    assert outcome.lock.until == at + timedelta(minutes=15)
    assert outcome.lock.failures == 5
    assert outcome.lock.active(at + timedelta(minutes=14, seconds=59))
    assert not outcome.lock.active(at + timedelta(minutes=15))
    assert outcome.kept == ()  # the count starts again after a lock


def test_failures_older_than_the_window_do_not_count() -> None:
    kept = tuple(fail_times(0, 1, 2, 3))
    outcome = record_failure("tx", "4001", kept, T0 + timedelta(minutes=10), POLICY)
    assert outcome.lock is None
    assert outcome.kept == tuple(fail_times(1, 2, 3, 10))  # the one at 0 is exactly 10 min old


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="failures"):
        PinGuardPolicy(failures=0)
    with pytest.raises(ValueError, match="lock_seconds"):
        PinGuardPolicy(lock_seconds=0)


@given(st.lists(st.integers(min_value=0, max_value=3600), max_size=40),
       st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=900))
def test_a_lock_comes_exactly_when_the_window_holds_enough_failures(
    offsets: list[int], limit: int, window: int
) -> None:
    policy = PinGuardPolicy(failures=limit, window_seconds=window, lock_seconds=60)
    kept: tuple[datetime, ...] = ()
    since_lock: list[datetime] = []
    for offset in sorted(offsets):
        at = T0 + timedelta(seconds=offset)
        outcome = record_failure("tx", "s", kept, at, policy)
        since_lock.append(at)
        in_window = [t for t in since_lock if t > at - timedelta(seconds=window)]
        assert (outcome.lock is not None) == (len(in_window) >= limit)
        if outcome.lock is not None:
            since_lock = []
        assert len(outcome.kept) < limit
        kept = outcome.kept
