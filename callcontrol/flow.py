"""One inmate call as a sans-IO B2BUA state machine: screen, authorize, dial, prompt, bridge,
supervise.

Inputs are methods taking ``now`` (seconds on any monotonic clock); each returns
the actions for the adapter to carry out and the facts it should record, in
order. ``get_timer()`` says when ``handle_timer`` is next due. All state
transitions are in the one table `TRANSITIONS`; an input the current state does
not accept raises `IllegalTransition` and changes nothing.

A call starts once `callcontrol.admission` has admitted its INVITE, in
``COLLECTING``: what the caller asks for (`CallDetails`: PIN, dialled number,
payer) arrives by ``call_requested``, from the INVITE itself on a header trunk,
and could as well come later from a voice menu. The flow holds the call's
state (those details, the funds held, timers) and the called party's
`AcceptanceMenu`, translating its actions, so the whole call, prompt included,
can be driven in memory with a fake clock.

On a menu trunk the call starts in ``MENU`` instead: the facility leg is
answered at once (`AnswerCaller`) and the flow holds the caller's
`ivr.CallerMenu` as it holds the called party's menu, translating its actions
(prompts to the caller, the PIN check, the hand-over to ``call_requested``).
From then on the call goes as a header call does, except that every refusal
and outcome a header call answers with a final response is spoken to the
caller in ``GOODBYE`` and followed by a BYE: a menu call uses
`MENU_CALL_TRANSITIONS`, the table with those targets changed.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from accounts import Authorization, CallOutcome, RefusalReason
from ivr import (
    Accept,
    AcceptanceMenu,
    AcceptSingleCall,
    Block,
    Decline,
    HearRate,
    MenuAction,
    NoAnswer,
    Play,
    StopPlayback,
)
from ivr import caller_menu as cm
from rating import cents_str, rate_str

from . import outcomes
from .actions import (
    Action,
    AnswerCaller,
    AuthorizeCall,
    BlockFacility,
    CancelCarrier,
    CheckCallerPin,
    ConnectCaller,
    DialCarrier,
    HangUpCaller,
    HangUpCarrier,
    PlayLimitWarning,
    PlayRingbackToCaller,
    PlayThreeWayWarning,
    PlayToCalled,
    PlayToCaller,
    RejectCaller,
    RingCaller,
    SendHeartbeat,
    StopCalledPlayback,
    StopCallerPlayback,
)
from .errors import IllegalTransition
from .events import CallAccepted, CallAnswered, CallEnded, Event, KeyPressed, ThreeWayDetected
from .outcomes import Disposition

Output = Action | Event


class CallState(enum.Enum):
    MENU = "menu"  # a menu call: the caller keys language, PIN and number
    COLLECTING = "collecting"  # admitted; what the caller asks for is not known yet
    AUTHORIZING = "authorizing"  # screening and reserving funds
    DIALING = "dialing"  # INVITE sent to the carrier, no ringing yet
    RINGING = "ringing"  # the called phone rings
    PROMPTING = "prompting"  # answered; the acceptance prompt is playing
    FAREWELL = "farewell"  # the facility has its answer; a last word to the called party
    CONNECTED = "connected"  # accepted, bridged, billed
    GOODBYE = "goodbye"  # a menu call: the caller hears the answer, then BYE
    ENDED = "ended"


class Input(enum.Enum):
    REQUESTED = "requested"  # the caller's PIN and number are known
    AUTHORIZED = "authorized"
    REFUSED = "refused"
    CARRIER_TRYING = "carrier-trying"
    CARRIER_RINGING = "carrier-ringing"
    CARRIER_ANSWERED = "carrier-answered"
    CARRIER_FAILED = "carrier-failed"
    CARRIER_REDIAL = "carrier-redial"  # the call moves on to the next carrier gateway
    DIAL_TIMEOUT = "dial-timeout"
    CALLER_CANCELLED = "caller-cancelled"
    CALLER_HUNG_UP = "caller-hung-up"
    CALLED_HUNG_UP = "called-hung-up"
    MENU_ACCEPTED = "menu-accepted"
    MENU_ENDED = "menu-ended"  # declined, blocked or no choice: a farewell follows
    FAREWELL_DONE = "farewell-done"
    LIMIT_REACHED = "limit-reached"
    MEDIA_LOST = "media-lost"
    HANG_UP = "hang-up"  # an operator or the shutdown ends the call
    GOODBYE_DONE = "goodbye-done"  # the caller heard the last word of a menu call
    THREE_WAY_CALL = "three-way-call"  # the policy ends a call that sounded three-way


S, In = CallState, Input
TRANSITIONS: dict[tuple[CallState, Input], CallState] = {
    (S.COLLECTING, In.REQUESTED): S.AUTHORIZING,
    (S.COLLECTING, In.REFUSED): S.ENDED,
    (S.COLLECTING, In.CALLER_CANCELLED): S.ENDED,
    (S.COLLECTING, In.HANG_UP): S.ENDED,
    (S.AUTHORIZING, In.AUTHORIZED): S.DIALING,
    (S.AUTHORIZING, In.REFUSED): S.ENDED,
    (S.AUTHORIZING, In.CALLER_CANCELLED): S.ENDED,
    (S.AUTHORIZING, In.HANG_UP): S.ENDED,
    (S.DIALING, In.CARRIER_TRYING): S.DIALING,
    (S.DIALING, In.CARRIER_RINGING): S.RINGING,
    (S.DIALING, In.CARRIER_ANSWERED): S.PROMPTING,
    (S.DIALING, In.CARRIER_FAILED): S.ENDED,
    (S.DIALING, In.CARRIER_REDIAL): S.DIALING,
    (S.DIALING, In.DIAL_TIMEOUT): S.ENDED,
    (S.DIALING, In.CALLER_CANCELLED): S.ENDED,
    (S.DIALING, In.HANG_UP): S.ENDED,
    (S.RINGING, In.CARRIER_TRYING): S.RINGING,
    (S.RINGING, In.CARRIER_RINGING): S.RINGING,
    (S.RINGING, In.CARRIER_ANSWERED): S.PROMPTING,
    (S.RINGING, In.CARRIER_FAILED): S.ENDED,
    (S.RINGING, In.CARRIER_REDIAL): S.DIALING,
    (S.RINGING, In.DIAL_TIMEOUT): S.ENDED,
    (S.RINGING, In.CALLER_CANCELLED): S.ENDED,
    (S.RINGING, In.HANG_UP): S.ENDED,
    (S.PROMPTING, In.MENU_ACCEPTED): S.CONNECTED,
    (S.PROMPTING, In.MENU_ENDED): S.FAREWELL,
    (S.PROMPTING, In.CALLED_HUNG_UP): S.ENDED,
    (S.PROMPTING, In.CALLER_CANCELLED): S.ENDED,
    (S.PROMPTING, In.MEDIA_LOST): S.ENDED,
    (S.PROMPTING, In.HANG_UP): S.ENDED,
    (S.FAREWELL, In.FAREWELL_DONE): S.ENDED,
    (S.FAREWELL, In.CALLED_HUNG_UP): S.ENDED,
    (S.FAREWELL, In.MEDIA_LOST): S.ENDED,
    (S.FAREWELL, In.HANG_UP): S.ENDED,
    (S.CONNECTED, In.CALLER_HUNG_UP): S.ENDED,
    (S.CONNECTED, In.CALLED_HUNG_UP): S.ENDED,
    (S.CONNECTED, In.LIMIT_REACHED): S.ENDED,
    (S.CONNECTED, In.MEDIA_LOST): S.ENDED,
    (S.CONNECTED, In.HANG_UP): S.ENDED,
    # The facility's CANCEL can cross our 200 OK while media is being connected.
    (S.CONNECTED, In.CALLER_CANCELLED): S.ENDED,
    (S.CONNECTED, In.THREE_WAY_CALL): S.ENDED,
}

#: A menu call: the caller's leg is answered, so what a header call answers with a
#: final response goes to GOODBYE (spoken, then BYE), and the caller may hang up
#: (BYE) in any phase. Every other transition is the header call's.
MENU_CALL_TRANSITIONS: dict[tuple[CallState, Input], CallState] = {
    **TRANSITIONS,
    (S.MENU, In.REQUESTED): S.AUTHORIZING,
    (S.MENU, In.REFUSED): S.GOODBYE,
    (S.MENU, In.MENU_ENDED): S.GOODBYE,
    (S.MENU, In.CALLER_HUNG_UP): S.ENDED,
    (S.MENU, In.CALLER_CANCELLED): S.ENDED,
    (S.MENU, In.MEDIA_LOST): S.ENDED,
    (S.MENU, In.HANG_UP): S.ENDED,
    (S.AUTHORIZING, In.REFUSED): S.GOODBYE,
    (S.AUTHORIZING, In.CALLER_HUNG_UP): S.ENDED,
    (S.DIALING, In.CARRIER_FAILED): S.GOODBYE,
    (S.DIALING, In.DIAL_TIMEOUT): S.GOODBYE,
    (S.DIALING, In.CALLER_HUNG_UP): S.ENDED,
    (S.RINGING, In.CARRIER_FAILED): S.GOODBYE,
    (S.RINGING, In.DIAL_TIMEOUT): S.GOODBYE,
    (S.RINGING, In.CALLER_HUNG_UP): S.ENDED,
    (S.PROMPTING, In.CALLED_HUNG_UP): S.GOODBYE,
    (S.PROMPTING, In.MEDIA_LOST): S.GOODBYE,
    (S.PROMPTING, In.CALLER_HUNG_UP): S.ENDED,
    (S.FAREWELL, In.FAREWELL_DONE): S.GOODBYE,
    (S.FAREWELL, In.CALLED_HUNG_UP): S.GOODBYE,
    (S.FAREWELL, In.MEDIA_LOST): S.GOODBYE,
    (S.FAREWELL, In.CALLER_HUNG_UP): S.ENDED,
    (S.GOODBYE, In.GOODBYE_DONE): S.ENDED,
    (S.GOODBYE, In.CALLER_HUNG_UP): S.ENDED,
    (S.GOODBYE, In.MEDIA_LOST): S.ENDED,
    (S.GOODBYE, In.HANG_UP): S.ENDED,
}
del S, In

#: What the caller hears when screening refuses a menu call.
_SPOKEN_REFUSALS: dict[RefusalReason, cm.Refusal] = {
    RefusalReason.BLOCKED: cm.Refusal.BLOCKED_NUMBER,
    RefusalReason.SELF_BLOCKED: cm.Refusal.BLOCKED_NUMBER,
    RefusalReason.NOT_ALLOWED: cm.Refusal.NOT_ON_ALLOWED_LIST,
    RefusalReason.OUTSIDE_HOURS: cm.Refusal.OUTSIDE_CALLING_HOURS,
    RefusalReason.INVALID_NUMBER: cm.Refusal.INVALID_NUMBER,
    RefusalReason.NO_PAYER: cm.Refusal.NOBODY_CAN_PAY,
}
#: What the caller hears of the called leg's end.
_SPOKEN_OUTCOMES: dict[CallOutcome, cm.CalledOutcome] = {
    CallOutcome.DECLINED: cm.CalledOutcome.DECLINED,
    CallOutcome.NO_ANSWER: cm.CalledOutcome.NO_ANSWER,
    CallOutcome.BUSY: cm.CalledOutcome.BUSY,
    CallOutcome.BLOCKED_BY_CALLED_PARTY: cm.CalledOutcome.BLOCKED,
}


def menu_ending(reason: str) -> Disposition:
    """How a menu call that ended in the menu itself (wrong PINs, the limit, a lock) ends."""
    return Disposition(200, 16, f"caller's menu: {reason.replace('_', ' ')}",
                       CallOutcome.REFUSED)


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Timing of one call; the defaults are the product's."""

    #: Ringing longer than this without an answer: CANCEL, 480.
    ring_timeout: float = 30.0
    #: No response at all from a carrier gateway this long after the INVITE: the next
    #: gateway, or 503 when none is left.
    carrier_response_timeout: float = 8.0
    #: How often talk progress is written to the store while connected.
    heartbeat_interval: float = 15.0
    #: The warning is played this long before the limit.
    warning_lead: float = 60.0
    menu_choice_timeout: float = 6.0
    menu_attempts: int = 3
    #: Longest wait for a farewell prompt to finish before hanging up anyway.
    farewell_guard: float = 15.0
    #: A call that sounds like a three-way call: "flag" it in its record, "warn"
    #: both parties as well, or warn them and "disconnect".
    three_way_policy: str = "flag"

    def __post_init__(self) -> None:
        if self.three_way_policy not in THREE_WAY_POLICIES:
            raise ValueError(f"three_way_policy must be one of {', '.join(THREE_WAY_POLICIES)},"
                             f" not {self.three_way_policy!r}")


THREE_WAY_POLICIES = ("flag", "warn", "disconnect")


@dataclass(frozen=True, slots=True)
class CallDetails:
    """What the caller asks for: who calls (PIN), the number dialled, who pays.

    ``use_debit``: the caller's own debit account pays, if it can.
    """

    pin: str
    dialled: str
    use_debit: bool = False


@dataclass(frozen=True, slots=True)
class CallGrant:
    """What authorization decided, as the flow needs it."""

    max_seconds: int
    language: str = "en"
    privileged: bool = False
    #: Offered to the called party (key 3) when nobody else pays; None otherwise.
    single_call_charge: Decimal | None = None
    #: Spoken for key 5: the per-minute rate and the price of the longest call.
    rate_per_minute: Decimal = Decimal(0)
    max_cost: Decimal = Decimal(0)

    @classmethod
    def from_authorization(cls, auth: Authorization, language: str) -> CallGrant:
        """What the prompt needs of ``auth``, spoken in ``language``."""
        q = auth.max_quote
        rate = Decimal(rate_str(q.rate_units)) if q is not None else Decimal(0)
        cost = Decimal(cents_str(q.total_units)) if q is not None else Decimal(0)
        return cls(
            max_seconds=auth.max_seconds,
            language=language,
            privileged=auth.privileged,
            single_call_charge=cost if auth.single_call_offer else None,
            rate_per_minute=rate,
            max_cost=cost,
        )


class CallFlow:
    """One call from the facility INVITE to its end."""

    def __init__(
        self, facility_id: str, now: float, settings: FlowSettings | None = None,
        caller_menu: cm.CallerMenu | None = None,
    ) -> None:
        self.facility_id = facility_id
        self.settings = settings or FlowSettings()
        #: A menu call's caller's menu (None on a header trunk): start it with ``start_menu``.
        self.caller_menu = caller_menu
        self._table = TRANSITIONS if caller_menu is None else MENU_CALL_TRANSITIONS
        self.state = CallState.COLLECTING if caller_menu is None else CallState.MENU
        self.setup_at = now
        self.details: CallDetails | None = None
        #: The funds held for the call, from the moment they are held whatever the
        #: call does meanwhile: its end settles or releases them.
        self.authorization: Authorization | None = None
        self.grant: CallGrant | None = None
        self.menu: AcceptanceMenu | None = None
        self.dial_at: float | None = None
        #: When the INVITE to the current gateway went out (the ring timeout counts from
        #: ``dial_at``, the first), and how many more gateways the call may move on to
        #: (kept by the adapter from its `callcontrol.routes.RoutePlan`).
        self.attempt_at: float | None = None
        self.routes_left = 0
        self.attempts = 0
        self.carrier_responded = False
        self.ringing_sent = False
        self.answer_at: float | None = None
        self.accept_at: float | None = None
        self.single_call = False
        self.ended: CallEnded | None = None
        self._farewell_outcome: Disposition | None = None
        self._farewell_deadline: float | None = None
        self._farewell_side = "called"
        self._next_heartbeat: float | None = None
        self._warning_at: float | None = None
        self._limit_at: float | None = None
        self._refusal: cm.Refusal | None = None
        self._hours: tuple[tuple[time, time], ...] = ()
        self._goodbye: Disposition | None = None
        self._goodbye_side = ""
        self._goodbye_deadline: float | None = None
        #: What made the call look three-way: (signal, seconds after acceptance).
        self.three_way: tuple[tuple[str, float], ...] = ()
        self._three_way_deadline: float | None = None

    # -- plumbing -------------------------------------------------------------

    def _move(self, event: Input) -> None:
        target = self._table.get((self.state, event))
        if target is None:
            raise IllegalTransition(f"{event.value} is not accepted while {self.state.value}")
        self.state = target

    def accepts(self, event: Input) -> bool:
        return (self.state, event) in self._table

    def _end(self, how: Disposition, side: str, now: float) -> CallEnded:
        talked = 0
        if self.accept_at is not None:
            # Billing starts at acceptance; a started second is not billed.
            talked = max(0, math.floor(now - self.accept_at + 1e-6))
        self.ended = CallEnded(
            outcome=how.outcome,
            status=how.status if self.caller_menu is None else 200,
            reason=how.reason,
            text=how.text,
            side=side,
            talked_seconds=talked,
            setup_at=self.setup_at,
            answer_at=self.answer_at,
            accept_at=self.accept_at,
            end_at=now,
            single_call=self.single_call,
            menu_seconds=self._menu_seconds(now),
            three_way=self.three_way,
        )
        self.menu = None
        return self.ended

    def _menu_seconds(self, now: float) -> int:
        menu = self.caller_menu
        if menu is None or menu.started_at is None:
            return 0
        seconds = menu.menu_seconds
        return round(seconds if seconds is not None else now - menu.started_at)

    def _reject(self, how: Disposition, side: str, now: float) -> list[Output]:
        """Answer the caller ``how``: a final response, or on a menu call spoken words and BYE."""
        if self.caller_menu is None:
            return [RejectCaller(how.status, how.reason), self._end(how, side, now)]
        if self.state is CallState.GOODBYE:
            return self._speak(how, side, now)
        return [HangUpCaller(how.reason), self._end(how, side, now)]

    @property
    def menu_call(self) -> bool:
        return self.caller_menu is not None

    @property
    def pin(self) -> str:
        """The caller's PIN; empty while not given."""
        if self.details is None and self.caller_menu is not None:
            return self.caller_menu.pin or ""
        return self.details.pin if self.details is not None else ""

    @property
    def dialled(self) -> str:
        """The number as dialled; empty while not given."""
        return self.details.dialled if self.details is not None else ""

    # -- screening and authorization ------------------------------------------

    def call_requested(self, details: CallDetails, now: float) -> list[Output]:
        """The caller's PIN and number are known: authorize, or refuse what cannot be.

        No PIN is 403; a number that is plainly not one is 404 or 484
        (`outcomes.check_dialled`), before anything is spent on it.
        """
        bad = (outcomes.MISSING_PIN if not details.pin
               else outcomes.check_dialled(details.dialled))
        self._move(Input.REQUESTED if bad is None else Input.REFUSED)
        self.details = details
        if bad is not None:
            return self._reject(bad, "", now)
        return [AuthorizeCall(details)]

    def funds_held(self, authorization: Authorization) -> None:
        """The payer's funds are held for this call (even if it ended meanwhile)."""
        self.authorization = authorization

    def authorized(self, grant: CallGrant, now: float) -> list[Output]:
        """Funds are held: place the carrier leg."""
        if grant.max_seconds <= 0:
            raise ValueError("a grant must allow at least one second")
        self._move(Input.AUTHORIZED)
        self.grant = grant
        self.dial_at = self.attempt_at = now
        self.attempts = 1
        if self.caller_menu is None:
            return [DialCarrier()]
        return [DialCarrier(), *self._caller_actions(self.caller_menu.call_placed(now), now)]

    def refused(self, how: Disposition, now: float, *, reason: RefusalReason | None = None,
                hours: tuple[tuple[time, time], ...] = (),
                spoken: cm.Refusal | None = None) -> list[Output]:
        """Screening or payment refused the call (403/404/484/402/503).

        On a menu call ``reason`` (screening's) or ``spoken`` (the controller's
        own, e.g. the facility at its limit) says which refusal the caller
        hears, and ``hours`` are today's calling windows, said with a refusal
        for the hour.
        """
        self._move(Input.REFUSED)
        if spoken is not None:
            self._refusal = spoken
        elif reason is not None:
            self._refusal = _SPOKEN_REFUSALS.get(reason, cm.Refusal.FAILED)
        self._hours = hours
        return self._reject(how, "", now)

    # -- carrier leg ----------------------------------------------------------

    def carrier_progress(self, status: int, now: float) -> list[Output]:
        """A provisional response from the carrier: 180/183 ring the caller."""
        ringing = status in (180, 183)
        self._move(Input.CARRIER_RINGING if ringing else Input.CARRIER_TRYING)
        self.carrier_responded = True
        # A menu caller was answered already, and hears the ringback tone instead.
        if ringing and not self.ringing_sent and self.caller_menu is None:
            self.ringing_sent = True
            return [RingCaller()]
        return []

    def carrier_answered(self, now: float) -> list[Output]:
        """The called phone answered (200 OK, media set up): start the prompt."""
        self._move(Input.CARRIER_ANSWERED)
        assert self.grant is not None
        g = self.grant
        self.answer_at = now
        self.menu = AcceptanceMenu(
            g.language,
            facility_id=self.facility_id,
            privileged=g.privileged,
            single_call_charge=g.single_call_charge,
            choice_timeout=self.settings.menu_choice_timeout,
            max_attempts=self.settings.menu_attempts,
        )
        out: list[Output] = [CallAnswered(now)]
        out += self._menu_actions(self.menu.start(now), now)
        return out

    def carrier_failed(self, how: Disposition, now: float, *,
                       fail_over: bool = False) -> list[Output]:
        """The carrier refused the call, never answered, or answered unusably.

        ``fail_over``: the gateway failed rather than the called party (503, 408,
        `callcontrol.routes.fails_over`): with ``routes_left`` the call is placed
        again through the next gateway instead of ending.
        """
        if fail_over and self.routes_left > 0 and self.accepts(Input.CARRIER_REDIAL):
            return self._redial(now)
        self._move(Input.CARRIER_FAILED)
        return self._reject(how, "called" if how.outcome.value == "busy" else "", now)

    def carrier_unreachable(self, now: float, *, timed_out: bool) -> list[Output]:
        """The carrier INVITE got no response at all (``timed_out``, RFC 3261 timer B) or
        could not be sent: the next gateway, else 503, cause 102 for the silence, 41 for
        the failure."""
        return self.carrier_failed(outcomes.CARRIER_SILENT if timed_out
                                   else outcomes.CARRIER_FAILURE, now, fail_over=True)

    def _redial(self, now: float) -> list[Output]:
        self._move(Input.CARRIER_REDIAL)
        self.routes_left -= 1
        self.attempts += 1
        self.attempt_at = now
        self.carrier_responded = False
        return [DialCarrier()]

    def carrier_answer_unusable(self, now: float) -> list[Output]:
        """The called phone answered with an SDP we cannot use: BYE it, 503 the caller."""
        how = outcomes.CARRIER_FAILURE
        return [HangUpCarrier(how.reason), *self.carrier_failed(how, now)]

    # -- caller (facility) ----------------------------------------------------

    def caller_cancelled(self, now: float) -> list[Output]:
        """The facility CANCELled (it already has its 487): clean up every leg."""
        state = self.state
        self._move(Input.CALLER_CANCELLED)
        out: list[Output] = []
        if state in (CallState.DIALING, CallState.RINGING):
            out.append(CancelCarrier())
        elif state is CallState.PROMPTING:
            out.append(HangUpCarrier(outcomes.CANCELLED.reason))
        elif state is CallState.CONNECTED:
            self.accept_at = None  # the 200 OK never reached the caller: nothing talked
            out.append(HangUpCarrier(outcomes.CANCELLED.reason))
        out.append(self._end(outcomes.CANCELLED, "caller", now))
        return out

    def caller_hung_up(self, now: float) -> list[Output]:
        """BYE from the facility: while connected, or on a menu call at any point.

        A menu caller who hangs up before acceptance leaves nothing owed: a
        placed call is cancelled, and the end releases any hold.
        """
        state = self.state
        self._move(Input.CALLER_HUNG_UP)
        if state is CallState.CONNECTED:
            how = outcomes.CALLER_HUNG_UP
            return [HangUpCarrier(how.reason), self._end(how, "caller", now)]
        assert self.caller_menu is not None
        self.caller_menu.hangup(now)
        how = outcomes.MENU_ABANDONED
        out: list[Output] = []
        if state in (CallState.DIALING, CallState.RINGING):
            out.append(CancelCarrier())
        elif state in (CallState.PROMPTING, CallState.FAREWELL):
            out.append(HangUpCarrier(how.reason))
        if state is CallState.GOODBYE and self._goodbye is not None:
            how = self._goodbye  # the answer was given; hanging up on it changes nothing
        out.append(self._end(how, "caller", now))
        return out

    # -- the caller's menu (a menu call) ------------------------------------------

    def start_menu(self, now: float) -> list[Output]:
        """Answer the caller and start the menu."""
        if self.caller_menu is None or self.state is not CallState.MENU:
            raise IllegalTransition("start_menu is only for a menu call in its menu")
        return [AnswerCaller(), *self._caller_actions(self.caller_menu.start(now), now)]

    def caller_digit(self, digit: str, now: float) -> list[Output]:
        """A key from the caller: only the menu listens (late keys are dropped)."""
        if self.caller_menu is None or self.state is not CallState.MENU:
            return []
        return self._caller_actions(self.caller_menu.digit(digit, now), now)

    def pin_checked(self, result: cm.PinResult, now: float) -> list[Output]:
        """The answer to `CheckCallerPin`."""
        if self.caller_menu is None or self.state is not CallState.MENU:
            return []
        return self._caller_actions(self.caller_menu.pin_checked(result, now), now)

    def caller_prompt_finished(self, now: float) -> list[Output]:
        """What played to the caller reached its end."""
        if self.state is CallState.GOODBYE:
            return self._goodbye_done(now)
        if self.caller_menu is None or self.state is CallState.ENDED:
            return []
        return self._caller_actions(self.caller_menu.prompt_finished(now), now)

    def _caller_actions(self, actions: list[cm.CallerMenuAction], now: float) -> list[Output]:
        out: list[Output] = []
        for action in actions:
            if isinstance(action, cm.Play):
                out.append(PlayToCaller(tuple(action.sequence), action.lang))
            elif isinstance(action, StopPlayback):
                out.append(StopCallerPlayback())
            elif isinstance(action, cm.PlayRingback):
                out.append(PlayRingbackToCaller())
            elif isinstance(action, cm.CheckPin):
                out.append(CheckCallerPin(action.pin))
            elif isinstance(action, cm.PlaceCall):
                # The caller's own Debit account pays where it can, as X-Payer: debit asks.
                details = CallDetails(action.pin, action.number, use_debit=True)
                out += self.call_requested(details, now)
            elif isinstance(action, cm.EndCall):
                if self.state is CallState.MENU:
                    self._move(Input.MENU_ENDED)
                    self._goodbye = menu_ending(action.reason)
                    self._goodbye_side = "controller"
                out += self._play_goodbye(action, now)
            # Connected: ``_accept`` bridges; Abandoned: ``caller_hung_up`` ends the call.
        return out

    def _speak(self, how: Disposition, side: str, now: float) -> list[Output]:
        """In GOODBYE: tell the caller ``how`` the call ended, in their language."""
        assert self.caller_menu is not None
        self._goodbye, self._goodbye_side = how, side
        menu = self.caller_menu
        if menu.state is cm.CallerMenuState.SCREENING:
            refusal = self._refusal
            if refusal is None:
                refusal = (cm.Refusal.INVALID_NUMBER if how in (
                    outcomes.NOT_ROUTABLE, outcomes.ADDRESS_INCOMPLETE) else cm.Refusal.FAILED)
            said = menu.call_refused(refusal, now, hours=self._hours)
        else:
            said = menu.call_outcome(
                _SPOKEN_OUTCOMES.get(how.outcome, cm.CalledOutcome.FAILED), now)
        out = self._caller_actions(said, now)
        if self.state is CallState.GOODBYE and self._goodbye_deadline is None:
            out += self._goodbye_done(now)  # the menu had nothing to say
        return out

    def _play_goodbye(self, end: cm.EndCall, now: float) -> list[Output]:
        if not end.farewell:
            return self._goodbye_done(now)
        self._goodbye_deadline = now + self.settings.farewell_guard
        return [PlayToCaller(tuple(end.farewell), end.lang)]

    def _goodbye_done(self, now: float) -> list[Output]:
        self._move(Input.GOODBYE_DONE)
        how = self._goodbye
        assert how is not None
        return [HangUpCaller(how.reason), self._end(how, self._goodbye_side, now)]

    # -- called party ---------------------------------------------------------

    def called_hung_up(self, now: float) -> list[Output]:
        """BYE from the carrier: during the prompt it is a decline (603)."""
        state = self.state
        self._move(Input.CALLED_HUNG_UP)
        if state is CallState.PROMPTING:
            if self.menu is not None:
                self.menu.hangup(now)
            return self._reject(outcomes.HUNG_UP_AT_PROMPT, "called", now)
        if state is CallState.FAREWELL:
            assert self._farewell_outcome is not None
            if self.caller_menu is not None:
                return self._speak(self._farewell_outcome, "called", now)
            return [self._end(self._farewell_outcome, "called", now)]
        how = outcomes.CALLED_HUNG_UP
        return [HangUpCaller(how.reason), self._end(how, "called", now)]

    def digit(self, digit: str, now: float, source: str = "") -> list[Output]:
        """A key from the called party; only the prompt listens to keys."""
        if self.state is not CallState.PROMPTING or self.menu is None:
            return []
        return [KeyPressed(digit, source, now), *self._menu_actions(self.menu.digit(digit, now),
                                                                     now)]

    def prompt_finished(self, now: float) -> list[Output]:
        """The prompt playing to the called party reached its end."""
        if self.state is CallState.FAREWELL:
            return self._farewell_done(now)
        if self.state is not CallState.PROMPTING or self.menu is None:
            return []
        return self._menu_actions(self.menu.prompt_finished(now), now)

    # -- either side ------------------------------------------------------------

    def media_lost(self, now: float, *, before_acceptance_answer: bool = False) -> list[Output]:
        """A party stopped sending media, the caller never ACKed, or media could not connect.

        ``before_acceptance_answer`` means the facility never got its 200 OK
        (media could not be connected): it gets a 503 instead of a BYE.
        """
        state = self.state
        self._move(Input.MEDIA_LOST)
        if state is CallState.CONNECTED:
            if before_acceptance_answer:
                self.accept_at = None  # the caller never got its 200 OK: nothing talked
                how = outcomes.CONNECT_FAILED
                return [HangUpCarrier(how.reason), RejectCaller(how.status, how.reason),
                        self._end(how, "controller", now)]
            how = outcomes.MEDIA_LOST
            return [HangUpCarrier(how.reason), HangUpCaller(how.reason),
                    self._end(how, "controller", now)]
        if state is CallState.FAREWELL:
            assert self._farewell_outcome is not None
            if self.caller_menu is not None:
                return [HangUpCarrier(outcomes.MEDIA_LOST.reason),
                        *self._speak(self._farewell_outcome, "controller", now)]
            return [HangUpCarrier(outcomes.MEDIA_LOST.reason),
                    self._end(self._farewell_outcome, "controller", now)]
        if state in (CallState.MENU, CallState.GOODBYE):
            how = outcomes.MEDIA_LOST
            return [HangUpCaller(how.reason), self._end(self._goodbye or how, "controller", now)]
        how = outcomes.CARRIER_FAILURE
        return [HangUpCarrier(how.reason), *self._reject(how, "controller", now)]

    def session_expired(self, now: float, *, alive_at: float) -> list[Output]:
        """A leg's session timer (RFC 4028) ran out: BYE both legs. A connected call is
        settled to ``alive_at``, the last moment a refresh or media proved it alive."""
        if self.state is not CallState.CONNECTED:
            return self.media_lost(now)
        self._move(Input.MEDIA_LOST)
        how = outcomes.SESSION_EXPIRED
        end = now if self.accept_at is None else min(now, max(alive_at, self.accept_at))
        return [HangUpCarrier(how.reason), HangUpCaller(how.reason),
                self._end(how, "controller", end)]

    def caller_lost(self, now: float) -> list[Output]:
        """The facility never ACKed our 200 OK: end both legs."""
        self._move(Input.MEDIA_LOST)
        how = outcomes.ACK_LOST
        return [HangUpCarrier(how.reason), HangUpCaller(how.reason),
                self._end(how, "controller", now)]

    def hang_up(self, how: Disposition, now: float) -> list[Output]:
        """An operator or the shutdown ends the call, whatever it is doing."""
        state = self.state
        self._move(Input.HANG_UP)
        if state in (CallState.MENU, CallState.GOODBYE):
            return [HangUpCaller(how.reason), self._end(how, "controller", now)]
        if state in (CallState.COLLECTING, CallState.AUTHORIZING):
            return self._reject(how, "controller", now)
        if state in (CallState.DIALING, CallState.RINGING):
            return [CancelCarrier(), *self._reject(how, "controller", now)]
        if state is CallState.PROMPTING:
            return [HangUpCarrier(how.reason), *self._reject(how, "controller", now)]
        if state is CallState.FAREWELL:
            assert self._farewell_outcome is not None
            bye = [HangUpCaller(how.reason)] if self.caller_menu is not None else []
            return [HangUpCarrier(how.reason), *bye,
                    self._end(self._farewell_outcome, "controller", now)]
        ended = outcomes.Disposition(200, how.cause, how.text, outcomes.CALLER_HUNG_UP.outcome)
        return [HangUpCarrier(ended.reason), HangUpCaller(ended.reason),
                self._end(ended, "controller", now)]

    # -- three-way calling ---------------------------------------------------------------

    def three_way_suspected(self, signals: tuple[tuple[str, float], ...],
                            now: float) -> list[Output]:
        """The called leg sounded like a three-way call (``signals``: what was heard,
        seconds after acceptance). Only a connected call's first decision counts; the
        facility's policy says what follows."""
        if self.state is not CallState.CONNECTED or self.three_way or not signals:
            return []
        self.three_way = signals
        policy = self.settings.three_way_policy
        out: list[Output] = [ThreeWayDetected(now, signals, policy)]
        if policy == "flag":
            return out
        if policy == "disconnect":
            # Ended once the warning was heard, or after the guard if it never ends.
            self._three_way_deadline = now + self.settings.farewell_guard
        return [*out, PlayThreeWayWarning()]

    def three_way_warning_played(self, now: float) -> list[Output]:
        """The three-way warning reached its end (or could not be played)."""
        if self.state is CallState.CONNECTED and self._three_way_deadline is not None:
            return self._three_way_end(now)
        return []

    def _three_way_end(self, now: float) -> list[Output]:
        self._move(Input.THREE_WAY_CALL)
        self._three_way_deadline = None
        how = outcomes.THREE_WAY
        return [HangUpCarrier(how.reason), HangUpCaller(how.reason),
                self._end(how, "controller", now)]

    # -- timers -------------------------------------------------------------------

    def get_timer(self) -> float | None:
        state = self.state
        if state is CallState.MENU:
            assert self.caller_menu is not None
            return self.caller_menu.get_timer()
        if state is CallState.GOODBYE:
            return self._goodbye_deadline
        if state in (CallState.DIALING, CallState.RINGING):
            assert self.dial_at is not None and self.attempt_at is not None
            ring = self.dial_at + self.settings.ring_timeout
            if not self.carrier_responded:
                return min(ring, self.attempt_at + self.settings.carrier_response_timeout)
            return ring
        if state is CallState.PROMPTING:
            return self.menu.get_timer() if self.menu is not None else None
        if state is CallState.FAREWELL:
            return self._farewell_deadline
        if state is CallState.CONNECTED:
            times = [t for t in (self._next_heartbeat, self._warning_at, self._limit_at,
                                 self._three_way_deadline) if t is not None]
            return min(times) if times else None
        return None

    def handle_timer(self, now: float) -> list[Output]:
        state = self.state
        if state is CallState.MENU:
            assert self.caller_menu is not None
            return self._caller_actions(self.caller_menu.timer(now), now)
        if state is CallState.GOODBYE:
            if self._goodbye_deadline is not None and now >= self._goodbye_deadline:
                return self._goodbye_done(now)
            return []
        if state in (CallState.DIALING, CallState.RINGING):
            assert self.dial_at is not None and self.attempt_at is not None
            s = self.settings
            if not self.carrier_responded and now >= self.attempt_at + s.carrier_response_timeout:
                if self.routes_left > 0 and now < self.dial_at + s.ring_timeout:
                    return [CancelCarrier(), *self._redial(now)]
                self._move(Input.DIAL_TIMEOUT)
                return [CancelCarrier(), *self._reject(outcomes.CARRIER_SILENT, "", now)]
            if now >= self.dial_at + s.ring_timeout:
                self._move(Input.DIAL_TIMEOUT)
                return [CancelCarrier(), *self._reject(outcomes.NO_ANSWER, "called", now)]
            return []
        if state is CallState.PROMPTING and self.menu is not None:
            return self._menu_actions(self.menu.timer(now), now)
        if state is CallState.FAREWELL:
            if self._farewell_deadline is not None and now >= self._farewell_deadline:
                return self._farewell_done(now)
            return []
        if state is CallState.CONNECTED:
            return self._connected_timer(now)
        return []

    def _connected_timer(self, now: float) -> list[Output]:
        assert self.accept_at is not None
        if self._limit_at is not None and now >= self._limit_at:
            self._move(Input.LIMIT_REACHED)
            how = outcomes.TIME_LIMIT
            return [HangUpCarrier(how.reason), HangUpCaller(how.reason),
                    self._end(how, "controller", now)]
        if self._three_way_deadline is not None and now >= self._three_way_deadline:
            return self._three_way_end(now)
        out: list[Output] = []
        if self._warning_at is not None and now >= self._warning_at:
            self._warning_at = None
            out.append(PlayLimitWarning())
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            interval = self.settings.heartbeat_interval
            while self._next_heartbeat <= now:
                self._next_heartbeat += interval
            out.append(SendHeartbeat(max(0, math.floor(now - self.accept_at + 1e-6))))
        return out

    # -- the prompt ---------------------------------------------------------------

    def _menu_actions(self, actions: list[MenuAction], now: float) -> list[Output]:
        out: list[Output] = []
        for action in actions:
            if isinstance(action, Play):
                out.append(PlayToCalled(tuple(action.sequence)))
            elif isinstance(action, StopPlayback):
                out.append(StopCalledPlayback())
            elif isinstance(action, HearRate):
                assert self.menu is not None and self.grant is not None
                g = self.grant
                minutes = -(-g.max_seconds // 60)
                out += self._menu_actions(
                    self.menu.rate_info(g.rate_per_minute, minutes, g.max_cost, now), now
                )
            elif isinstance(action, (Accept, AcceptSingleCall)):
                out += self._accept(now, single_call=isinstance(action, AcceptSingleCall))
            elif isinstance(action, Decline):
                if action.hung_up:
                    continue  # the hang-up itself ends the call (called_hung_up)
                out += self._farewell(outcomes.DECLINED, action.farewell, now)
            elif isinstance(action, Block):
                out.append(BlockFacility())
                out += self._farewell(outcomes.BLOCKED, action.farewell, now)
            elif isinstance(action, NoAnswer):
                out += self._farewell(outcomes.PROMPT_TIMEOUT, action.farewell, now)
        return out

    def _accept(self, now: float, *, single_call: bool) -> list[Output]:
        self._move(Input.MENU_ACCEPTED)
        assert self.grant is not None
        self.menu = None
        self.accept_at = now
        self.single_call = single_call
        s = self.settings
        limit = self.grant.max_seconds
        self._limit_at = now + limit
        self._warning_at = now + limit - s.warning_lead if limit > s.warning_lead else None
        self._next_heartbeat = now + s.heartbeat_interval
        record = not self.grant.privileged
        if self.caller_menu is None:
            return [ConnectCaller(record=record), CallAccepted(now, single_call)]
        said = self._caller_actions(
            self.caller_menu.call_outcome(cm.CalledOutcome.ACCEPTED, now), now)
        return [*said, ConnectCaller(record=record, answered=True), CallAccepted(now, single_call)]

    def _farewell(self, how: Disposition, farewell: tuple[str, ...] | object,
                  now: float) -> list[Output]:
        self._move(Input.MENU_ENDED)
        self.menu = None
        self._farewell_outcome = how
        self._farewell_side = "controller" if how is outcomes.PROMPT_TIMEOUT else "called"
        # A menu caller hears the outcome once the called party heard the farewell.
        out: list[Output] = ([RejectCaller(how.status, how.reason)]
                             if self.caller_menu is None else [])
        sequence = tuple(farewell) if isinstance(farewell, tuple) else ()
        if sequence:
            self._farewell_deadline = now + self.settings.farewell_guard
            out.append(PlayToCalled(sequence))
            return out
        return out + self._farewell_done(now)

    def _farewell_done(self, now: float) -> list[Output]:
        self._move(Input.FAREWELL_DONE)
        how = self._farewell_outcome
        assert how is not None
        if self.caller_menu is not None:
            return [HangUpCarrier(how.reason), *self._speak(how, self._farewell_side, now)]
        return [HangUpCarrier(how.reason), self._end(how, self._farewell_side, now)]
