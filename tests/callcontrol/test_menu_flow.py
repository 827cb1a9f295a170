"""A menu call driven in memory with a fake clock: the caller's menu inside the call flow.

The caller's leg is answered at once; language, PIN and number come by keys;
every refusal and outcome is spoken to the caller before the BYE; a caller who
hangs up in any phase leaves nothing talked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from decimal import Decimal

import pytest

from accounts import CallOutcome, Refusal, RefusalReason
from callcontrol import outcomes
from callcontrol.actions import (
    AnswerCaller,
    AuthorizeCall,
    CancelCarrier,
    CheckCallerPin,
    ConnectCaller,
    DialCarrier,
    HangUpCaller,
    HangUpCarrier,
    PlayRingbackToCaller,
    PlayToCalled,
    PlayToCaller,
    RejectCaller,
    RingCaller,
    StopCallerPlayback,
)
from callcontrol.events import CallAccepted, CallEnded
from callcontrol.flow import (
    CallDetails,
    CallFlow,
    CallGrant,
    CallState,
    FlowSettings,
    Input,
    Output,
)
from ivr import caller_menu as cm
from ivr.caller_menu import CallerMenu, PinInvalid, PinLocked, PinSuspended, PinValid

FACILITY = "tx-state-prison"
SETTINGS = FlowSettings(ring_timeout=30.0, carrier_response_timeout=8.0, heartbeat_interval=15.0,
                        menu_choice_timeout=6.0, menu_attempts=3, farewell_guard=15.0)
GRANT = CallGrant(max_seconds=1200, language="en", rate_per_minute=Decimal("0.0600"),
                  max_cost=Decimal("1.20"))
PIN = "100001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def played(outputs: Sequence[object]) -> list[tuple[str, ...]]:
    return [o.sequence for o in outputs if isinstance(o, PlayToCaller)]


def only(outputs: Sequence[object], kind: type) -> object:
    found = [o for o in outputs if isinstance(o, kind)]
    assert len(found) == 1, outputs
    return found[0]


def menu_call(clock: Clock, languages: tuple[str, ...] = ("en", "es"),
              menu_limit: float = 90.0) -> tuple[CallFlow, list[Output]]:
    menu = CallerMenu(languages, menu_limit=menu_limit)
    flow = CallFlow(FACILITY, clock.now, SETTINGS, caller_menu=menu)
    assert flow.state is CallState.MENU
    return flow, list(flow.start_menu(clock.now))


def keys(flow: CallFlow, clock: Clock, digits: str) -> list[Output]:
    out: list[Output] = []
    for d in digits:
        out += flow.caller_digit(d, clock.advance(0.2))
    return out


def to_pin_check(clock: Clock, lang_key: str = "1") -> CallFlow:
    flow, out = menu_call(clock)
    assert isinstance(out[0], AnswerCaller)
    assert played(out) == [("offer_en", "offer_es")]
    out = keys(flow, clock, lang_key + PIN + "#")
    assert only(out, CheckCallerPin) == CheckCallerPin(PIN)
    return flow


def to_screening(clock: Clock, *, balance: Decimal | None = None,
                 number: str = "5125550100") -> CallFlow:
    flow = to_pin_check(clock)
    out = flow.pin_checked(PinValid("en", balance), clock.advance(0.1))
    assert played(out)[-1][-1] == "number_prompt"
    clock.advance(2.0)
    out = keys(flow, clock, number + "#")
    request = only(out, AuthorizeCall)
    assert isinstance(request, AuthorizeCall)
    assert request.details == CallDetails(PIN, "+1" + number[-10:], use_debit=True)
    assert flow.state is CallState.AUTHORIZING
    return flow


def to_ringback(clock: Clock) -> CallFlow:
    flow = to_screening(clock)
    out = flow.authorized(GRANT, clock.advance(0.05))
    assert isinstance(out[0], DialCarrier)  # the dial goes first: post-dial delay
    assert played(out) == [("please_hold",)]
    assert flow.caller_prompt_finished(clock.advance(2.0)) == [PlayRingbackToCaller()]
    out = flow.carrier_progress(180, clock.advance(0.5))
    assert not any(isinstance(o, RingCaller) for o in out)  # answered already: no 180
    return flow


def to_prompt(clock: Clock) -> CallFlow:
    flow = to_ringback(clock)
    out = flow.carrier_answered(clock.advance(3.0))
    assert any(isinstance(o, PlayToCalled) for o in out)
    return flow


def goodbye(flow: CallFlow, clock: Clock) -> CallEnded:
    """The caller hears the last prompt to its end: BYE, and the call's end."""
    assert flow.state is CallState.GOODBYE, flow.state
    out = flow.caller_prompt_finished(clock.advance(3.0))
    assert isinstance(out[0], HangUpCaller)
    end = only(out, CallEnded)
    assert isinstance(end, CallEnded)
    assert flow.ended is end and not flow.accepts(Input.HANG_UP)
    return end


def test_a_menu_call_to_acceptance_bills_talk_only_and_counts_the_menu() -> None:
    clock = Clock()
    start = clock.now
    flow = to_pin_check(clock)
    out = flow.pin_checked(PinValid("en", Decimal("9.94")), clock.advance(0.1))
    assert played(out) == [("balance_intro", "num_9", "word_dollars", "word_and", "num_90",
                            "num_4", "word_cents", "number_prompt")]
    keys(flow, clock, "5125550100#")
    handed_over = clock.now
    flow.authorized(GRANT, clock.advance(0.1))
    flow.caller_prompt_finished(clock.advance(2.0))
    flow.carrier_progress(180, clock.advance(1.0))
    flow.carrier_answered(clock.advance(4.0))
    out = flow.digit("1", clock.advance(3.0))
    kinds = [type(o) for o in out]
    assert kinds.index(StopCallerPlayback) < kinds.index(ConnectCaller)  # the ringback stops
    assert only(out, ConnectCaller) == ConnectCaller(record=True, answered=True)
    accepted = only(out, CallAccepted)
    assert isinstance(accepted, CallAccepted) and accepted.at == clock.now
    assert flow.state is CallState.CONNECTED
    out = flow.caller_hung_up(clock.advance(42.5))
    assert isinstance(out[0], HangUpCarrier)
    end = only(out, CallEnded)
    assert isinstance(end, CallEnded)
    assert end.outcome is CallOutcome.COMPLETED and end.status == 200
    assert end.talked_seconds == 42
    assert end.menu_seconds == round(handed_over - start)
    assert end.side == "caller"


@pytest.mark.parametrize(("reason", "spoken"), [
    (RefusalReason.BLOCKED, ("refused_blocked", "goodbye")),
    (RefusalReason.NOT_ALLOWED, ("refused_not_allowed", "goodbye")),
    (RefusalReason.NO_PAYER, ("refused_no_payer", "goodbye")),
    (RefusalReason.STORE_UNAVAILABLE, ("call_failed", "goodbye")),
])
def test_each_refusal_is_spoken_then_bye(reason: RefusalReason, spoken: tuple[str, ...]) -> None:
    clock = Clock()
    flow = to_screening(clock)
    how = outcomes.from_refusal(Refusal(reason))
    out = flow.refused(how, clock.advance(0.1), reason=reason)
    assert not any(isinstance(o, RejectCaller) for o in out)
    assert played(out) == [spoken]
    end = goodbye(flow, clock)
    assert end.outcome is how.outcome and end.status == 200 and end.text == how.text
    assert end.talked_seconds == 0 and end.accept_at is None


def test_outside_calling_hours_says_the_hours() -> None:
    clock = Clock()
    flow = to_screening(clock)
    how = outcomes.from_refusal(Refusal(RefusalReason.OUTSIDE_HOURS))
    out = flow.refused(how, clock.now, reason=RefusalReason.OUTSIDE_HOURS,
                       hours=((time(6), time(23, 30)),))
    (seq,) = played(out)
    assert seq[:3] == ("refused_hours", "hours_intro", "word_from") and seq[-1] == "goodbye"


def test_a_number_the_menu_took_but_screening_cannot_route_is_spoken_invalid() -> None:
    clock = Clock()
    flow = to_screening(clock)
    how = outcomes.from_refusal(Refusal(RefusalReason.INVALID_NUMBER))
    out = flow.refused(how, clock.now, reason=RefusalReason.INVALID_NUMBER)
    assert played(out) == [("number_invalid", "goodbye")]


@pytest.mark.parametrize(("status", "spoken", "outcome"), [
    (486, "called_busy", CallOutcome.BUSY),
    (480, "called_no_answer", CallOutcome.NO_ANSWER),
    (503, "call_failed", CallOutcome.FAILED),
])
def test_the_carrier_refusal_is_spoken_to_the_caller(status: int, spoken: str,
                                                     outcome: CallOutcome) -> None:
    clock = Clock()
    flow = to_ringback(clock)
    out = flow.carrier_failed(outcomes.from_carrier_status(status), clock.advance(1.0))
    assert StopCallerPlayback() in out  # the ringback stops first
    assert played(out) == [(spoken, "goodbye")]
    assert goodbye(flow, clock).outcome is outcome


def test_ringing_too_long_is_spoken_no_answer() -> None:
    clock = Clock()
    flow = to_ringback(clock)
    deadline = flow.get_timer()
    assert deadline is not None
    clock.now = deadline
    out = flow.handle_timer(clock.now)
    assert isinstance(out[0], CancelCarrier)
    assert played(out) == [("called_no_answer", "goodbye")]
    assert goodbye(flow, clock).outcome is CallOutcome.NO_ANSWER


def test_a_decline_plays_the_farewell_to_the_called_party_then_tells_the_caller() -> None:
    clock = Clock()
    flow = to_prompt(clock)
    out = flow.digit("2", clock.advance(2.0))
    assert not any(isinstance(o, (RejectCaller, PlayToCaller)) for o in out)
    assert flow.state is CallState.FAREWELL
    out = flow.prompt_finished(clock.advance(2.0))
    assert isinstance(out[0], HangUpCarrier)
    assert played(out) == [("called_declined", "goodbye")]
    end = goodbye(flow, clock)
    assert end.outcome is CallOutcome.DECLINED and end.side == "called"


def test_the_called_party_hanging_up_at_the_prompt_is_spoken_declined() -> None:
    clock = Clock()
    flow = to_prompt(clock)
    out = flow.called_hung_up(clock.advance(1.0))
    assert played(out) == [("called_declined", "goodbye")]
    assert goodbye(flow, clock).outcome is CallOutcome.DECLINED


def test_a_caller_hanging_up_on_the_goodbye_ends_with_the_answer_given() -> None:
    clock = Clock()
    flow = to_ringback(clock)
    flow.carrier_failed(outcomes.BUSY, clock.advance(1.0))
    out = flow.caller_hung_up(clock.advance(0.5))
    assert not any(isinstance(o, HangUpCaller) for o in out)
    end = only(out, CallEnded)
    assert isinstance(end, CallEnded) and end.outcome is CallOutcome.BUSY


def _hang_up_in(phase: str, clock: Clock) -> tuple[CallFlow, list[Output]]:
    if phase == "language":
        flow, _ = menu_call(clock)
    elif phase == "pin":
        flow, _ = menu_call(clock)
        keys(flow, clock, "1" + PIN[:3])
    elif phase == "checking-pin":
        flow = to_pin_check(clock)
    elif phase == "number":
        flow = to_pin_check(clock)
        flow.pin_checked(PinValid("en"), clock.now)
        keys(flow, clock, "512")
    elif phase == "authorizing":
        flow = to_screening(clock)
    elif phase == "ringing":
        flow = to_ringback(clock)
    elif phase == "prompting":
        flow = to_prompt(clock)
    else:
        flow = to_prompt(clock)
        flow.digit("2", clock.now)
    return flow, flow.caller_hung_up(clock.advance(1.0))


@pytest.mark.parametrize("phase", ["language", "pin", "checking-pin", "number", "authorizing",
                                   "ringing", "prompting", "farewell"])
def test_a_caller_hanging_up_in_any_phase_leaves_nothing_talked(phase: str) -> None:
    clock = Clock()
    flow, out = _hang_up_in(phase, clock)
    end = only(out, CallEnded)
    assert isinstance(end, CallEnded)
    assert end.outcome is CallOutcome.CANCELLED and end.side == "caller"
    assert end.talked_seconds == 0 and end.accept_at is None
    assert not any(isinstance(o, (ConnectCaller, HangUpCaller, RejectCaller)) for o in out)
    if phase == "ringing":
        assert CancelCarrier() in out
    if phase in ("prompting", "farewell"):
        assert any(isinstance(o, HangUpCarrier) for o in out)
    assert flow.state is CallState.ENDED and flow.get_timer() is None
    assert flow.caller_menu is not None and flow.caller_menu.outcome is not None


def test_authorization_answering_after_the_caller_left_changes_nothing() -> None:
    clock = Clock()
    flow = to_screening(clock)
    flow.caller_hung_up(clock.advance(0.5))
    assert not flow.accepts(Input.AUTHORIZED)


def test_the_menu_limit_ends_with_goodbye() -> None:
    clock = Clock()
    flow, _ = menu_call(clock, languages=("en",), menu_limit=20.0)
    out: list[Output] = []
    # A caller who keeps starting the PIN again (*) never times an entry out: only the limit.
    while flow.state is CallState.MENU:
        flow.caller_prompt_finished(clock.advance(1.0))
        when = flow.get_timer()
        assert when is not None
        if when > clock.now + 3.0:
            out = flow.caller_digit("*", clock.advance(3.0))
            continue
        clock.now = when
        out = flow.handle_timer(clock.now)
    assert played(out) == [("menu_time_limit", "goodbye")]
    assert clock.now == pytest.approx(1020.0)
    end = goodbye(flow, clock)
    assert end.outcome is CallOutcome.REFUSED and end.text == "caller's menu: menu time limit"
    assert end.menu_seconds == 20


def test_a_locked_station_hears_the_lock_and_goodbye() -> None:
    clock = Clock()
    flow = to_pin_check(clock)
    out = flow.pin_checked(PinLocked(), clock.advance(0.1))
    assert played(out) == [("station_locked", "goodbye")]
    end = goodbye(flow, clock)
    assert end.outcome is CallOutcome.REFUSED and "station locked" in end.text


def test_a_suspended_person_is_told_so() -> None:
    clock = Clock()
    flow = to_pin_check(clock)
    out = flow.pin_checked(PinSuspended(), clock.advance(0.1))
    assert played(out) == [("not_allowed", "goodbye")]
    goodbye(flow, clock)


def test_three_wrong_pins_end_with_goodbye() -> None:
    clock = Clock()
    flow = to_pin_check(clock)
    for attempt in range(3):
        out = flow.pin_checked(PinInvalid(), clock.advance(0.2))
        if attempt < 2:
            assert played(out) == [("pin_invalid", "pin_prompt")]
            assert isinstance(only(keys(flow, clock, "999999#"), CheckCallerPin), CheckCallerPin)
        else:
            assert played(out) == [("pin_invalid", "goodbye")]
    end = goodbye(flow, clock)
    assert end.outcome is CallOutcome.REFUSED and end.accept_at is None


def test_spanish_from_the_language_key_and_from_the_record() -> None:
    clock = Clock()
    flow, _ = menu_call(clock)
    out = keys(flow, clock, "2")
    assert [o.lang for o in out if isinstance(o, PlayToCaller)] == ["es"]
    keys(flow, clock, PIN + "#")
    out = flow.pin_checked(PinValid("es"), clock.advance(0.1))
    assert [o.lang for o in out if isinstance(o, PlayToCaller)] == ["es"]
    # An English speaker who pressed 2 hears English once the record says so.
    clock2 = Clock()
    flow2 = to_pin_check(clock2, lang_key="2")
    out = flow2.pin_checked(PinValid("en"), clock2.now)
    assert [o.lang for o in out if isinstance(o, PlayToCaller)] == ["en"]


def test_an_operator_hang_up_in_the_menu_byes_the_caller() -> None:
    clock = Clock()
    flow, _ = menu_call(clock)
    out = flow.hang_up(outcomes.by_operator("test"), clock.advance(1.0))
    assert isinstance(out[0], HangUpCaller)
    end = only(out, CallEnded)
    assert isinstance(end, CallEnded) and end.status == 200


def test_late_keys_while_ringing_are_ignored() -> None:
    clock = Clock()
    flow = to_ringback(clock)
    assert flow.caller_digit("5", clock.advance(1.0)) == []


def test_a_facility_at_its_limit_is_spoken_then_bye() -> None:
    clock = Clock()
    flow = to_screening(clock)
    out = flow.refused(outcomes.FACILITY_BUSY, clock.advance(0.1),
                       spoken=cm.Refusal.FACILITY_BUSY)
    assert not any(isinstance(o, RejectCaller) for o in out)
    assert played(out) == [("refused_busy", "goodbye")]
    end = goodbye(flow, clock)
    assert end.outcome is outcomes.FACILITY_BUSY.outcome and end.status == 200
    assert end.text == "facility at its concurrency limit" and end.talked_seconds == 0
