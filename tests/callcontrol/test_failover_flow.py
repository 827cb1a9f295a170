"""Failover in the call flow, with a fake clock: when a call moves to the next gateway."""

from __future__ import annotations

import pytest

from accounts import CallOutcome
from callcontrol import outcomes
from callcontrol.actions import CancelCarrier, DialCarrier, RejectCaller, RingCaller
from callcontrol.events import CallEnded
from callcontrol.flow import CallState

from .test_flow import GRANT, Clock, ended, kinds, rejection, requested_call, run_timers


def dialling(clock: Clock, routes_left: int):  # type: ignore[no-untyped-def]
    flow = requested_call(clock.now)
    assert flow.authorized(GRANT, clock.now) == [DialCarrier()]
    flow.routes_left = routes_left
    return flow


def test_503_moves_to_the_next_gateway_while_one_is_left() -> None:
    clock = Clock()
    flow = dialling(clock, 1)
    out = flow.carrier_failed(outcomes.CARRIER_FAILURE, clock.advance(0.1), fail_over=True)
    assert out == [DialCarrier()]
    assert (flow.state, flow.attempts, flow.routes_left) == (CallState.DIALING, 2, 0)
    out = flow.carrier_failed(outcomes.CARRIER_FAILURE, clock.advance(0.1), fail_over=True)
    assert kinds(out) == [RejectCaller, CallEnded]
    assert rejection(out).status == 503


def test_the_called_partys_answer_never_moves_the_call() -> None:
    clock = Clock()
    flow = dialling(clock, 3)
    flow.carrier_progress(180, clock.advance(0.1))
    out = flow.carrier_failed(outcomes.BUSY, clock.advance(1), fail_over=False)
    assert kinds(out) == [RejectCaller, CallEnded]
    assert rejection(out).status == 486
    assert ended(out).outcome is CallOutcome.BUSY


def test_a_ringing_gateway_that_fails_moves_on_without_ringing_the_caller_twice() -> None:
    clock = Clock()
    flow = dialling(clock, 1)
    assert flow.carrier_progress(180, clock.advance(0.1)) == [RingCaller()]
    assert flow.carrier_failed(outcomes.CARRIER_FAILURE, clock.advance(1),
                               fail_over=True) == [DialCarrier()]
    assert flow.carrier_progress(180, clock.advance(0.1)) == []
    assert flow.state is CallState.RINGING


def test_a_silent_gateway_is_given_up_for_the_next_at_the_response_timeout() -> None:
    clock = Clock()
    flow = dialling(clock, 1)
    assert flow.get_timer() == pytest.approx(1008.0)
    out = run_timers(flow, clock, 1008.0)
    assert out == [CancelCarrier(), DialCarrier()]
    # The next gateway gets its own response timeout; the ring timeout counts from the first.
    assert flow.get_timer() == pytest.approx(1016.0)
    flow.carrier_progress(100, clock.advance(1))
    assert flow.get_timer() == pytest.approx(1030.0)
    out = run_timers(flow, clock, 1031.0)
    assert rejection(out).status == 480


def test_no_gateway_moves_past_the_ring_timeout() -> None:
    clock = Clock()
    flow = dialling(clock, 10)
    out = run_timers(flow, clock, 1040.0)
    # Silent gateways at 1008, 1016, 1024; the fourth attempt ends with the ring timeout.
    assert kinds(out) == [CancelCarrier, DialCarrier] * 3 + [CancelCarrier, RejectCaller,
                                                              CallEnded]
    assert flow.attempts == 4
    assert ended(out).end_at == pytest.approx(1030.0)


def test_an_unreachable_gateway_moves_on() -> None:
    clock = Clock()
    flow = dialling(clock, 1)
    assert flow.carrier_unreachable(clock.advance(0.2), timed_out=False) == [DialCarrier()]
    out = flow.carrier_unreachable(clock.advance(0.2), timed_out=True)
    assert 'cause=102' in rejection(out).reason
