"""The call flow driven in memory with a fake clock: every path from INVITE to CallEnded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import CallOutcome, Refusal, RefusalReason
from callcontrol import outcomes
from callcontrol.actions import (
    AuthorizeCall,
    BlockFacility,
    CancelCarrier,
    ConnectCaller,
    DialCarrier,
    HangUpCaller,
    HangUpCarrier,
    PlayLimitWarning,
    PlayToCalled,
    RejectCaller,
    RingCaller,
    SendHeartbeat,
    StopCalledPlayback,
)
from callcontrol.errors import IllegalTransition
from callcontrol.events import CallAccepted, CallAnswered, CallEnded, KeyPressed
from callcontrol.flow import (
    MENU_CALL_TRANSITIONS,
    TRANSITIONS,
    CallDetails,
    CallFlow,
    CallGrant,
    CallState,
    FlowSettings,
    Input,
)

FACILITY = "tx-state-prison"
SETTINGS = FlowSettings(ring_timeout=30.0, carrier_response_timeout=8.0, heartbeat_interval=15.0,
                        menu_choice_timeout=6.0, menu_attempts=3, farewell_guard=15.0)
DETAILS = CallDetails(pin="100001", dialled="+15125550100")
GRANT = CallGrant(max_seconds=1200, language="en", rate_per_minute=Decimal("0.0600"),
                  max_cost=Decimal("1.20"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def kinds(outputs: list[object]) -> list[type]:
    return [type(o) for o in outputs]


def ended(outputs: list[object]) -> CallEnded:
    found = [o for o in outputs if isinstance(o, CallEnded)]
    assert len(found) == 1, outputs
    return found[0]


def rejection(outputs: list[object]) -> RejectCaller:
    found = [o for o in outputs if isinstance(o, RejectCaller)]
    assert len(found) == 1, outputs
    return found[0]


def run_timers(flow: CallFlow, clock: Clock, until: float) -> list[object]:
    """Fire every timer due up to ``until``, as the adapter would."""
    out: list[object] = []
    while flow.state is not CallState.ENDED:
        when = flow.get_timer()
        if when is None or when > until:
            break
        clock.now = max(clock.now, when)
        out += flow.handle_timer(clock.now)
    clock.now = max(clock.now, until)
    return out


def requested_call(now: float, details: CallDetails = DETAILS) -> CallFlow:
    """A call whose INVITE asked for a number: authorization is under way."""
    flow = CallFlow(FACILITY, now, SETTINGS)
    assert flow.state is CallState.COLLECTING
    assert flow.call_requested(details, now) == [AuthorizeCall(details)]
    assert flow.state is CallState.AUTHORIZING
    return flow


def answered_call(grant: CallGrant = GRANT) -> tuple[CallFlow, Clock, list[object]]:
    clock = Clock()
    flow = requested_call(clock.now)
    assert flow.authorized(grant, clock.advance(0.005)) == [DialCarrier()]
    assert flow.carrier_progress(100, clock.advance(0.01)) == []
    assert flow.carrier_progress(180, clock.advance(0.5)) == [RingCaller()]
    assert flow.carrier_progress(183, clock.advance(0.1)) == []  # rung once only
    out = flow.carrier_answered(clock.advance(2.0))
    return flow, clock, out


def connected_call(grant: CallGrant = GRANT) -> tuple[CallFlow, Clock, list[object]]:
    flow, clock, _ = answered_call(grant)
    out = flow.digit("1", clock.advance(3.0), "sip-info")
    assert flow.state is CallState.CONNECTED
    return flow, clock, out


# -- the transition table ---------------------------------------------------------------


def test_every_state_but_ended_can_be_hung_up_and_ended_accepts_nothing() -> None:
    menu_only = {CallState.MENU, CallState.GOODBYE}
    for table, states in ((TRANSITIONS, set(CallState) - menu_only),
                          (MENU_CALL_TRANSITIONS, set(CallState))):
        assert {s for s, _ in table} == states - {CallState.ENDED}
        for state in states - {CallState.ENDED}:
            assert table[(state, Input.HANG_UP)] is CallState.ENDED


def test_an_input_the_state_does_not_accept_raises_and_changes_nothing() -> None:
    flow = requested_call(0.0)
    with pytest.raises(IllegalTransition, match="carrier-answered is not accepted while "
                                                "authorizing"):
        flow.carrier_answered(1.0)
    assert flow.state is CallState.AUTHORIZING
    with pytest.raises(IllegalTransition):
        flow.caller_hung_up(1.0)
    assert flow.state is CallState.AUTHORIZING


def test_ended_call_refuses_further_inputs() -> None:
    flow = requested_call(0.0)
    flow.refused(outcomes.NOT_ROUTABLE, 0.1)
    with pytest.raises(IllegalTransition):
        flow.authorized(GRANT, 0.2)
    assert flow.get_timer() is None
    assert flow.digit("1", 0.3) == []


# -- the caller's request -------------------------------------------------------------


def test_a_call_waits_for_its_request_then_authorizes_it() -> None:
    clock = Clock()
    flow = CallFlow(FACILITY, clock.now, SETTINGS)
    assert flow.state is CallState.COLLECTING
    assert flow.pin == "" and flow.dialled == "" and flow.get_timer() is None
    details = CallDetails(pin="100002", dialled="5125550100", use_debit=True)
    assert flow.call_requested(details, clock.advance(4.0)) == [AuthorizeCall(details)]
    assert flow.state is CallState.AUTHORIZING
    assert (flow.pin, flow.dialled, flow.details) == ("100002", "5125550100", details)
    assert flow.setup_at == 1000.0  # the INVITE's arrival, not the request's
    with pytest.raises(IllegalTransition, match="requested is not accepted while authorizing"):
        flow.call_requested(DETAILS, clock.advance(0.1))
    assert flow.details is details


def test_no_pin_is_403_and_leaves_a_refused_record() -> None:
    clock = Clock()
    flow = CallFlow(FACILITY, clock.now, SETTINGS)
    out = flow.call_requested(CallDetails(pin="", dialled="+15125550100"), clock.advance(0.002))
    assert kinds(out) == [RejectCaller, CallEnded]
    assert rejection(out) == RejectCaller(403, 'Q.850;cause=21;text="no PIN"')
    end = ended(out)
    assert end.outcome is CallOutcome.REFUSED and end.side == "" and end.status == 403
    assert end.setup_at == 1000.0 and end.end_at == 1000.002 and end.talked_seconds == 0
    assert flow.state is CallState.ENDED and flow.dialled == "+15125550100"


@pytest.mark.parametrize(
    ("dialled", "status", "reason"),
    [("abc", 404, 'Q.850;cause=1;text="number invalid or not routable"'),
     ("", 404, 'Q.850;cause=1;text="number invalid or not routable"'),
     ("512555", 484, 'Q.850;cause=28;text="address incomplete"'),
     ("+" + "1" * 16, 404, 'Q.850;cause=1;text="number invalid or not routable"')],
)
def test_a_number_that_cannot_be_dialled_is_refused_before_authorization(
    dialled: str, status: int, reason: str
) -> None:
    clock = Clock()
    flow = CallFlow(FACILITY, clock.now, SETTINGS)
    out = flow.call_requested(CallDetails(pin="100001", dialled=dialled), clock.advance(0.001))
    assert kinds(out) == [RejectCaller, CallEnded]  # no AuthorizeCall: nothing is spent
    assert rejection(out) == RejectCaller(status, reason)
    assert ended(out).outcome is CallOutcome.REFUSED
    assert flow.pin == "100001"


def test_no_pin_is_judged_before_the_number() -> None:
    flow = CallFlow(FACILITY, 0.0, SETTINGS)
    out = flow.call_requested(CallDetails(pin="", dialled="abc"), 0.1)
    assert rejection(out).status == 403


@pytest.mark.parametrize("how", ["cancel", "hang-up"])
def test_a_call_can_end_before_its_request_is_known(how: str) -> None:
    flow = CallFlow(FACILITY, 0.0, SETTINGS)
    if how == "cancel":
        out = flow.caller_cancelled(1.0)
        assert kinds(out) == [CallEnded] and ended(out).outcome is CallOutcome.CANCELLED
    else:
        out = flow.hang_up(outcomes.SHUTTING_DOWN, 1.0)
        assert kinds(out) == [RejectCaller, CallEnded] and rejection(out).status == 503
    assert flow.pin == "" and flow.state is CallState.ENDED
    with pytest.raises(IllegalTransition):
        flow.call_requested(DETAILS, 2.0)


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "status", "cause"),
    [
        (RefusalReason.UNKNOWN_PIN, 403, 21),
        (RefusalReason.OUTSIDE_HOURS, 403, 21),
        (RefusalReason.BLOCKED, 403, 21),
        (RefusalReason.NOT_ALLOWED, 403, 21),
        (RefusalReason.SELF_BLOCKED, 403, 21),
        (RefusalReason.PERSON_RESTRICTED, 403, 21),
        (RefusalReason.INVALID_NUMBER, 404, 1),
        (RefusalReason.NO_PAYER, 402, 31),
        (RefusalReason.STORE_UNAVAILABLE, 503, 41),
    ],
)
def test_refusal_answers_the_outcome_table_with_its_reason(
    reason: RefusalReason, status: int, cause: int
) -> None:
    flow = requested_call(10.0)
    out = flow.refused(outcomes.from_refusal(Refusal(reason)), 10.004)
    reject = rejection(out)
    assert reject.status == status
    assert reject.reason == f'Q.850;cause={cause};text="{reason.text}"'
    end = ended(out)
    assert end.outcome is (CallOutcome.FAILED if status == 503 else CallOutcome.REFUSED)
    assert end.talked_seconds == 0 and end.answer_at is None and end.accept_at is None
    assert flow.state is CallState.ENDED


@pytest.mark.parametrize(
    ("dialled", "status"),
    [("5125550100", None), ("15125550100", None), ("+15125550100", None),
     ("011525512345678", None), ("512555", 484), ("12", 484), ("abc", 404), ("512-555", 404),
     ("", 404), ("+" + "1" * 16, 404)],
)
def test_dialled_number_check(dialled: str, status: int | None) -> None:
    result = outcomes.check_dialled(dialled)
    assert (result.status if result else None) == status


@pytest.mark.parametrize(
    ("carrier_status", "status", "outcome"),
    [(486, 486, CallOutcome.BUSY), (600, 486, CallOutcome.BUSY),
     (480, 480, CallOutcome.NO_ANSWER), (408, 480, CallOutcome.NO_ANSWER),
     (404, 404, CallOutcome.REFUSED), (500, 503, CallOutcome.FAILED),
     (502, 503, CallOutcome.FAILED), (403, 503, CallOutcome.FAILED)],
)
def test_carrier_final_responses_map_to_the_outcome_table(
    carrier_status: int, status: int, outcome: CallOutcome
) -> None:
    flow = requested_call(0.0)
    flow.authorized(GRANT, 0.01)
    flow.carrier_progress(180, 0.5)
    out = flow.carrier_failed(outcomes.from_carrier_status(carrier_status), 1.0)
    assert rejection(out).status == status
    assert ended(out).outcome is outcome


@pytest.mark.parametrize(("timed_out", "cause", "text"),
                         [(True, 102, "carrier did not respond"), (False, 41, "carrier failure")])
def test_a_carrier_invite_that_never_got_through_is_503(timed_out: bool, cause: int,
                                                        text: str) -> None:
    flow = requested_call(0.0)
    flow.authorized(GRANT, 0.01)
    out = flow.carrier_unreachable(4.0, timed_out=timed_out)
    assert kinds(out) == [RejectCaller, CallEnded]  # no dialog, no transaction left to end
    assert rejection(out) == RejectCaller(503, f'Q.850;cause={cause};text="{text}"')
    assert ended(out).outcome is CallOutcome.FAILED and ended(out).side == ""


def test_an_unusable_carrier_answer_byes_the_carrier_and_is_503() -> None:
    flow = requested_call(0.0)
    flow.authorized(GRANT, 0.01)
    flow.carrier_progress(180, 0.5)
    out = flow.carrier_answer_unusable(2.0)
    assert kinds(out) == [HangUpCarrier, RejectCaller, CallEnded]
    assert out[0] == HangUpCarrier('Q.850;cause=41;text="carrier failure"')
    assert rejection(out) == RejectCaller(503, 'Q.850;cause=41;text="carrier failure"')
    assert ended(out).outcome is CallOutcome.FAILED and ended(out).answer_at is None


@pytest.mark.parametrize(("reason", "text"), [("fraud suspected", "fraud suspected"),
                                               ("", "ended by an operator")])
def test_an_operator_hang_up_names_the_operators_reason(reason: str, text: str) -> None:
    flow, clock, _ = connected_call()
    out = flow.hang_up(outcomes.by_operator(reason), clock.advance(10.0))
    assert kinds(out) == [HangUpCarrier, HangUpCaller, CallEnded]
    assert out[1] == HangUpCaller(f'Q.850;cause=16;text="{text}"')
    end = ended(out)
    assert end.text == text and end.side == "controller" and end.talked_seconds == 10


# -- dialing ----------------------------------------------------------------------------


def test_ring_timeout_cancels_the_carrier_and_answers_480() -> None:
    clock = Clock()
    flow = requested_call(clock.now)
    flow.authorized(GRANT, clock.now)
    flow.carrier_progress(180, clock.advance(0.2))
    assert flow.get_timer() == pytest.approx(1000.0 + 30.0)
    assert run_timers(flow, clock, 1029.0) == []
    out = run_timers(flow, clock, 1031.0)
    assert kinds(out) == [CancelCarrier, RejectCaller, CallEnded]
    assert rejection(out).status == 480
    assert ended(out).outcome is CallOutcome.NO_ANSWER


def test_silent_carrier_is_a_503_long_before_the_ring_timeout() -> None:
    clock = Clock()
    flow = requested_call(clock.now)
    flow.authorized(GRANT, clock.now)
    out = run_timers(flow, clock, 1010.0)
    assert kinds(out) == [CancelCarrier, RejectCaller, CallEnded]
    assert rejection(out).status == 503
    assert 'cause=102' in rejection(out).reason
    assert ended(out).end_at == pytest.approx(1008.0)


def test_a_trying_carrier_gets_the_full_ring_timeout() -> None:
    clock = Clock()
    flow = requested_call(clock.now)
    flow.authorized(GRANT, clock.now)
    flow.carrier_progress(100, clock.advance(0.01))
    assert run_timers(flow, clock, 1020.0) == []
    out = run_timers(flow, clock, 1031.0)
    assert rejection(out).status == 480


@pytest.mark.parametrize("ringing", [False, True])
def test_caller_cancel_while_dialing_cancels_the_carrier(ringing: bool) -> None:
    flow = requested_call(0.0)
    flow.authorized(GRANT, 0.01)
    if ringing:
        flow.carrier_progress(180, 0.5)
    out = flow.caller_cancelled(2.0)
    assert kinds(out) == [CancelCarrier, CallEnded]  # the endpoint already sent 487
    end = ended(out)
    assert end.outcome is CallOutcome.CANCELLED and end.side == "caller" and end.status == 487


def test_caller_cancel_during_authorization_ends_the_call_without_a_response() -> None:
    flow = requested_call(0.0)
    out = flow.caller_cancelled(0.001)
    assert kinds(out) == [CallEnded]
    # The authorization that returns afterwards is refused by the table.
    with pytest.raises(IllegalTransition):
        flow.authorized(GRANT, 0.002)


# -- the prompt -------------------------------------------------------------------------


def test_answer_plays_the_greeting_naming_the_facility_with_the_recording_notice() -> None:
    flow, _, out = answered_call()
    assert kinds(out) == [CallAnswered, PlayToCalled]
    play = out[1]
    assert isinstance(play, PlayToCalled)
    assert play.sequence[:3] == ("intro_prepaid", f"facility/{FACILITY}", "recording_notice")
    assert "opt_accept" in play.sequence and "press_3" not in play.sequence
    assert flow.state is CallState.PROMPTING


def test_privileged_call_has_no_recording_notice_and_is_not_recorded() -> None:
    grant = CallGrant(max_seconds=600, privileged=True)
    flow, clock, out = answered_call(grant)
    play = out[1]
    assert isinstance(play, PlayToCalled) and "recording_notice" not in play.sequence
    out = flow.digit("1", clock.advance(1.0))
    assert ConnectCaller(record=False) in out


def test_spanish_greeting_for_a_spanish_speaker() -> None:
    flow, _, out = answered_call(CallGrant(max_seconds=600, language="es"))
    assert isinstance(out[1], PlayToCalled) and out[1].sequence[0] == "intro_prepaid"
    assert flow.menu is not None and flow.menu.lang == "es"


def test_accept_connects_records_and_starts_talk_time() -> None:
    flow, clock, out = answered_call()
    out = flow.digit("1", clock.advance(4.0), "rfc4733")
    assert kinds(out) == [KeyPressed, StopCalledPlayback, ConnectCaller, CallAccepted]
    assert out[2] == ConnectCaller(record=True)
    assert flow.accept_at == clock.now
    # Talk time is billed from acceptance: 95.9 s after it is 95 s.
    out = flow.caller_hung_up(clock.advance(95.9))
    assert kinds(out) == [HangUpCarrier, CallEnded]
    end = ended(out)
    assert end.outcome is CallOutcome.COMPLETED and end.side == "caller"
    assert end.talked_seconds == 95
    assert end.answer_at is not None and end.accept_at is not None
    assert end.setup_at < end.answer_at < end.accept_at < end.end_at


def test_called_party_hangs_up_a_connected_call() -> None:
    flow, clock, _ = connected_call()
    out = flow.called_hung_up(clock.advance(30.0))
    assert kinds(out) == [HangUpCaller, CallEnded]
    assert ended(out).side == "called" and ended(out).talked_seconds == 30


def test_key_2_declines_with_603_after_a_farewell() -> None:
    flow, clock, _ = answered_call()
    out = flow.digit("2", clock.advance(2.0))
    assert kinds(out) == [KeyPressed, StopCalledPlayback, RejectCaller, PlayToCalled]
    assert rejection(out).status == 603
    assert flow.state is CallState.FAREWELL
    out = flow.prompt_finished(clock.advance(1.5))
    assert kinds(out) == [HangUpCarrier, CallEnded]
    assert ended(out).outcome is CallOutcome.DECLINED and ended(out).talked_seconds == 0


def test_farewell_that_never_finishes_is_cut_by_its_guard() -> None:
    flow, clock, _ = answered_call()
    flow.digit("2", clock.advance(2.0))
    out = run_timers(flow, clock, clock.now + 16.0)
    assert kinds(out) == [HangUpCarrier, CallEnded]


def test_called_party_hanging_up_during_the_farewell_needs_no_bye() -> None:
    flow, clock, _ = answered_call()
    flow.digit("2", clock.advance(2.0))
    out = flow.called_hung_up(clock.advance(0.5))
    assert kinds(out) == [CallEnded]
    assert ended(out).outcome is CallOutcome.DECLINED


def test_called_party_hangs_up_during_the_prompt_is_603() -> None:
    flow, clock, _ = answered_call()
    out = flow.called_hung_up(clock.advance(5.0))
    assert kinds(out) == [RejectCaller, CallEnded]
    assert rejection(out).status == 603
    assert ended(out).outcome is CallOutcome.DECLINED and ended(out).side == "called"


def test_key_9_then_9_blocks_the_facility_and_declines() -> None:
    flow, clock, _ = answered_call()
    out = flow.digit("9", clock.advance(2.0))
    assert isinstance(out[-1], PlayToCalled) and out[-1].sequence == ("block_confirm",)
    assert flow.state is CallState.PROMPTING
    out = flow.digit("9", clock.advance(2.0))
    assert BlockFacility() in out
    assert rejection(out).status == 603
    assert "blocked" in rejection(out).reason
    assert PlayToCalled(("blocked",)) in out
    out = flow.prompt_finished(clock.advance(2.0))
    assert ended(out).outcome is CallOutcome.BLOCKED_BY_CALLED_PARTY


def test_key_9_then_another_key_goes_back_to_the_menu() -> None:
    flow, clock, _ = answered_call()
    flow.digit("9", clock.advance(2.0))
    out = flow.digit("4", clock.advance(1.0))
    assert BlockFacility() not in out and flow.state is CallState.PROMPTING
    out = flow.digit("1", clock.advance(1.0))
    assert flow.state is CallState.CONNECTED


def test_key_5_speaks_rate_and_maximum_cost_then_back_to_the_menu_then_accept() -> None:
    grant = CallGrant(max_seconds=1200, rate_per_minute=Decimal("0.0600"),
                      max_cost=Decimal("1.20"))
    flow, clock, _ = answered_call(grant)
    out = flow.digit("5", clock.advance(2.0))
    plays = [o for o in out if isinstance(o, PlayToCalled)]
    assert len(plays) == 1
    seq = plays[0].sequence
    assert seq[0] == "rate_intro" and "per_minute" in seq and "for_up_to" in seq
    # 6 cents per minute, $1.20 for up to 20 minutes.
    assert "num_6" in seq and "num_20" in seq
    out = flow.prompt_finished(clock.advance(5.0))
    assert isinstance(out[-1], PlayToCalled) and "opt_accept" in out[-1].sequence
    out = flow.digit("1", clock.advance(1.0))
    assert ConnectCaller(record=True) in out


def test_single_call_offers_the_charge_and_key_3_accepts() -> None:
    grant = CallGrant(max_seconds=900, single_call_charge=Decimal("0.90"),
                      rate_per_minute=Decimal("0.0600"), max_cost=Decimal("0.90"))
    flow, clock, out = answered_call(grant)
    play = out[1]
    assert isinstance(play, PlayToCalled)
    assert play.sequence[0] == "intro_single" and "press_3" in play.sequence
    assert "opt_accept" not in play.sequence
    assert flow.digit("1", clock.advance(1.0))[-1] != ConnectCaller(record=True)
    assert flow.state is CallState.PROMPTING  # 1 is not offered on a Single Call
    out = flow.digit("3", clock.advance(1.0))
    accepted = [o for o in out if isinstance(o, CallAccepted)]
    assert accepted and accepted[0].single_call
    end = ended(flow.caller_hung_up(clock.advance(61.0)))
    assert end.single_call and end.talked_seconds == 61


def test_prompt_timeout_after_every_repetition_is_480() -> None:
    flow, clock, _ = answered_call()
    out: list[object] = []
    for _ in range(3):
        out += flow.prompt_finished(clock.advance(20.0))
        out += run_timers(flow, clock, clock.now + 6.5)
    assert flow.state is CallState.FAREWELL
    assert rejection(out).status == 480
    assert "no choice" in rejection(out).reason
    out = flow.prompt_finished(clock.advance(3.0))
    end = ended(out)
    assert end.outcome is CallOutcome.NO_ANSWER and end.side == "controller"


def test_caller_cancel_during_the_prompt_hangs_up_the_called_party() -> None:
    flow, clock, _ = answered_call()
    out = flow.caller_cancelled(clock.advance(3.0))
    assert kinds(out) == [HangUpCarrier, CallEnded]
    assert ended(out).outcome is CallOutcome.CANCELLED


def test_caller_cancel_crossing_the_acceptance_bills_nothing() -> None:
    flow, clock, _ = connected_call()
    out = flow.caller_cancelled(clock.advance(0.01))
    assert kinds(out) == [HangUpCarrier, CallEnded]
    assert ended(out).talked_seconds == 0 and ended(out).accept_at is None


def test_digits_outside_the_prompt_are_ignored() -> None:
    flow, clock, _ = connected_call()
    assert flow.digit("2", clock.advance(1.0)) == []
    assert flow.state is CallState.CONNECTED


# -- supervision ------------------------------------------------------------------------


def test_heartbeats_warning_and_limit() -> None:
    grant = CallGrant(max_seconds=180)
    flow, clock, _ = connected_call(grant)
    accepted = clock.now
    out = run_timers(flow, clock, accepted + 179.0)
    beats = [o.talked_seconds for o in out if isinstance(o, SendHeartbeat)]
    assert beats == [15, 30, 45, 60, 75, 90, 105, 120, 135, 150, 165]
    warnings = [i for i, o in enumerate(out) if isinstance(o, PlayLimitWarning)]
    assert len(warnings) == 1
    assert flow.state is CallState.CONNECTED
    out = run_timers(flow, clock, accepted + 181.0)
    assert kinds(out) == [HangUpCarrier, HangUpCaller, CallEnded]
    end = ended(out)
    assert end.talked_seconds == 180 and end.side == "controller"
    assert end.text == "call time limit reached"


def test_warning_comes_one_minute_before_the_limit() -> None:
    flow, clock, _ = connected_call(CallGrant(max_seconds=600))
    accepted = clock.now
    out = run_timers(flow, clock, accepted + 539.0)
    assert PlayLimitWarning() not in out
    out = run_timers(flow, clock, accepted + 541.0)
    assert PlayLimitWarning() in out


def test_a_call_shorter_than_the_warning_lead_gets_no_warning() -> None:
    flow, clock, _ = connected_call(CallGrant(max_seconds=45))
    accepted = clock.now
    out = run_timers(flow, clock, accepted + 50.0)
    assert PlayLimitWarning() not in out
    assert ended(out).talked_seconds == 45


def test_media_inactivity_ends_a_connected_call() -> None:
    flow, clock, _ = connected_call()
    out = flow.media_lost(clock.advance(70.0))
    assert kinds(out) == [HangUpCarrier, HangUpCaller, CallEnded]
    assert ended(out).talked_seconds == 70


def test_media_that_cannot_connect_is_a_503_and_bills_nothing() -> None:
    flow, clock, _ = connected_call()
    out = flow.media_lost(clock.advance(0.01), before_acceptance_answer=True)
    assert kinds(out) == [HangUpCarrier, RejectCaller, CallEnded]
    assert rejection(out).status == 503 and ended(out).talked_seconds == 0


def test_missing_ack_ends_both_legs() -> None:
    flow, clock, _ = connected_call()
    out = flow.caller_lost(clock.advance(32.0))
    assert kinds(out) == [HangUpCarrier, HangUpCaller, CallEnded]


def test_a_facility_that_never_pracks_our_180_gets_500_and_the_carrier_is_cancelled() -> None:
    # The controller's answer to ProvisionalUnacknowledged (RFC 3262 3: a 5xx).
    clock = Clock()
    flow = requested_call(clock.now)
    flow.authorized(GRANT, clock.now)
    flow.carrier_progress(180, clock.advance(1.0))
    out = flow.hang_up(outcomes.PRACK_MISSING, clock.advance(32.0))
    assert kinds(out) == [CancelCarrier, RejectCaller, CallEnded]
    assert rejection(out).status == 500 and "cause=111" in rejection(out).reason
    assert ended(out).talked_seconds == 0


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("collecting", [RejectCaller, CallEnded]),
        ("authorizing", [RejectCaller, CallEnded]),
        ("ringing", [CancelCarrier, RejectCaller, CallEnded]),
        ("prompting", [HangUpCarrier, RejectCaller, CallEnded]),
        ("connected", [HangUpCarrier, HangUpCaller, CallEnded]),
    ],
)
def test_operator_or_shutdown_hang_up_in_every_state(setup: str, expected: list[type]) -> None:
    clock = Clock()
    if setup == "collecting":
        flow = CallFlow(FACILITY, clock.now, SETTINGS)
    elif setup == "authorizing":
        flow = requested_call(clock.now)
    elif setup == "ringing":
        flow = requested_call(clock.now)
        flow.authorized(GRANT, clock.now)
        flow.carrier_progress(180, clock.advance(1.0))
    elif setup == "prompting":
        flow, clock, _ = answered_call()
    else:
        flow, clock, _ = connected_call()
    out = flow.hang_up(outcomes.SHUTTING_DOWN, clock.advance(1.0))
    assert kinds(out) == expected
    if RejectCaller in expected:
        assert rejection(out).status == 503
    assert flow.state is CallState.ENDED
