"""The call flow's three-way policy: flag, warn, or warn and disconnect (billed as talked)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from accounts import CallOutcome
from callcontrol import outcomes
from callcontrol.actions import HangUpCaller, HangUpCarrier, PlayThreeWayWarning
from callcontrol.events import CallEnded, ThreeWayDetected
from callcontrol.flow import CallFlow, CallState, FlowSettings

from .test_flow import SETTINGS, Clock, connected_call, kinds, run_timers

SIGNALS = (("flash", 61.2), ("dial_tone", 61.9))


def with_policy(policy: str) -> tuple[CallFlow, Clock]:
    flow, clock, _ = connected_call()
    flow.settings = replace(SETTINGS, three_way_policy=policy)
    return flow, clock


def test_flag_reports_the_signals_and_the_call_goes_on() -> None:
    flow, clock = with_policy("flag")
    out = flow.three_way_suspected(SIGNALS, clock.advance(62.0))
    assert out == [ThreeWayDetected(clock.now, SIGNALS, "flag")]
    assert flow.state is CallState.CONNECTED
    # A later decision changes nothing; the record keeps the first.
    assert flow.three_way_suspected((("ringback", 80.0),), clock.advance(20)) == []
    end = flow.caller_hung_up(clock.advance(10))
    record = next(o for o in end if isinstance(o, CallEnded))
    assert record.three_way == SIGNALS
    assert record.outcome is CallOutcome.COMPLETED


def test_warn_plays_the_warning_once_and_the_call_goes_on() -> None:
    flow, clock = with_policy("warn")
    out = flow.three_way_suspected(SIGNALS, clock.advance(5))
    assert kinds(out) == [ThreeWayDetected, PlayThreeWayWarning]
    assert flow.three_way_warning_played(clock.advance(3)) == []
    assert flow.state is CallState.CONNECTED
    assert run_timers(flow, clock, clock.now + 20) != []  # heartbeats, no end
    assert flow.state is CallState.CONNECTED


def test_disconnect_warns_then_ends_and_bills_the_time_talked() -> None:
    flow, clock = with_policy("disconnect")
    accepted = flow.accept_at
    assert accepted is not None
    out = flow.three_way_suspected(SIGNALS, clock.advance(30.4))
    assert kinds(out) == [ThreeWayDetected, PlayThreeWayWarning]
    assert out[0] == ThreeWayDetected(clock.now, SIGNALS, "disconnect")
    end = flow.three_way_warning_played(clock.advance(3.0))
    assert kinds(end) == [HangUpCarrier, HangUpCaller, CallEnded]
    record = end[-1]
    assert isinstance(record, CallEnded)
    assert record.outcome is CallOutcome.COMPLETED and record.side == "controller"
    assert record.text == outcomes.THREE_WAY.text
    assert record.talked_seconds == 33  # 33.4 s talked, the started second not billed
    assert record.three_way == SIGNALS
    assert flow.state is CallState.ENDED


def test_disconnect_ends_after_the_guard_if_the_warning_never_finishes() -> None:
    flow, clock = with_policy("disconnect")
    flow.three_way_suspected(SIGNALS, clock.advance(10))
    out = run_timers(flow, clock, clock.now + SETTINGS.farewell_guard + 0.1)
    assert CallEnded in kinds(out)
    assert flow.state is CallState.ENDED


def test_a_call_not_connected_is_not_judged() -> None:
    flow, clock, _ = connected_call()
    flow.caller_hung_up(clock.advance(1))
    assert flow.three_way_suspected(SIGNALS, clock.advance(1)) == []


def test_the_policy_must_be_known() -> None:
    with pytest.raises(ValueError, match="three_way_policy"):
        FlowSettings(three_way_policy="hang-up")
