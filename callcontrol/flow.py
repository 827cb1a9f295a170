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
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal

from accounts import Authorization
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
from rating import cents_str, rate_str

from . import outcomes
from .actions import (
    Action,
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
from .errors import IllegalTransition
from .events import CallAccepted, CallAnswered, CallEnded, Event, KeyPressed
from .outcomes import Disposition

Output = Action | Event


class CallState(enum.Enum):
    COLLECTING = "collecting"  # admitted; what the caller asks for is not known yet
    AUTHORIZING = "authorizing"  # screening and reserving funds
    DIALING = "dialing"  # INVITE sent to the carrier, no ringing yet
    RINGING = "ringing"  # the called phone rings
    PROMPTING = "prompting"  # answered; the acceptance prompt is playing
    FAREWELL = "farewell"  # the facility has its answer; a last word to the called party
    CONNECTED = "connected"  # accepted, bridged, billed
    ENDED = "ended"


class Input(enum.Enum):
    REQUESTED = "requested"  # the caller's PIN and number are known
    AUTHORIZED = "authorized"
    REFUSED = "refused"
    CARRIER_TRYING = "carrier-trying"
    CARRIER_RINGING = "carrier-ringing"
    CARRIER_ANSWERED = "carrier-answered"
    CARRIER_FAILED = "carrier-failed"
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
    (S.DIALING, In.DIAL_TIMEOUT): S.ENDED,
    (S.DIALING, In.CALLER_CANCELLED): S.ENDED,
    (S.DIALING, In.HANG_UP): S.ENDED,
    (S.RINGING, In.CARRIER_TRYING): S.RINGING,
    (S.RINGING, In.CARRIER_RINGING): S.RINGING,
    (S.RINGING, In.CARRIER_ANSWERED): S.PROMPTING,
    (S.RINGING, In.CARRIER_FAILED): S.ENDED,
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
}
del S, In


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Timing of one call; the defaults are the product's."""

    #: Ringing longer than this without an answer: CANCEL, 480.
    ring_timeout: float = 30.0
    #: No response at all from the carrier this long after the INVITE: 503.
    carrier_response_timeout: float = 8.0
    #: How often talk progress is written to the store while connected.
    heartbeat_interval: float = 15.0
    #: The warning is played this long before the limit.
    warning_lead: float = 60.0
    menu_choice_timeout: float = 6.0
    menu_attempts: int = 3
    #: Longest wait for a farewell prompt to finish before hanging up anyway.
    farewell_guard: float = 15.0


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
        self, facility_id: str, now: float, settings: FlowSettings | None = None
    ) -> None:
        self.facility_id = facility_id
        self.settings = settings or FlowSettings()
        self.state = CallState.COLLECTING
        self.setup_at = now
        self.details: CallDetails | None = None
        #: The funds held for the call, from the moment they are held whatever the
        #: call does meanwhile: its end settles or releases them.
        self.authorization: Authorization | None = None
        self.grant: CallGrant | None = None
        self.menu: AcceptanceMenu | None = None
        self.dial_at: float | None = None
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

    # -- plumbing -------------------------------------------------------------

    def _move(self, event: Input) -> None:
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise IllegalTransition(f"{event.value} is not accepted while {self.state.value}")
        self.state = target

    def accepts(self, event: Input) -> bool:
        return (self.state, event) in TRANSITIONS

    def _end(self, how: Disposition, side: str, now: float) -> CallEnded:
        talked = 0
        if self.accept_at is not None:
            # Billing starts at acceptance; a started second is not billed.
            talked = max(0, math.floor(now - self.accept_at + 1e-6))
        self.ended = CallEnded(
            outcome=how.outcome,
            status=how.status,
            reason=how.reason,
            text=how.text,
            side=side,
            talked_seconds=talked,
            setup_at=self.setup_at,
            answer_at=self.answer_at,
            accept_at=self.accept_at,
            end_at=now,
            single_call=self.single_call,
        )
        self.menu = None
        return self.ended

    def _reject(self, how: Disposition, side: str, now: float) -> list[Output]:
        return [RejectCaller(how.status, how.reason), self._end(how, side, now)]

    @property
    def pin(self) -> str:
        """The caller's PIN; empty while not given."""
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
        self.dial_at = now
        return [DialCarrier()]

    def refused(self, how: Disposition, now: float) -> list[Output]:
        """Screening or payment refused the call (403/404/484/402/503)."""
        self._move(Input.REFUSED)
        return self._reject(how, "", now)

    # -- carrier leg ----------------------------------------------------------

    def carrier_progress(self, status: int, now: float) -> list[Output]:
        """A provisional response from the carrier: 180/183 ring the caller."""
        ringing = status in (180, 183)
        self._move(Input.CARRIER_RINGING if ringing else Input.CARRIER_TRYING)
        self.carrier_responded = True
        if ringing and not self.ringing_sent:
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

    def carrier_failed(self, how: Disposition, now: float) -> list[Output]:
        """The carrier refused the call, never answered, or answered unusably."""
        self._move(Input.CARRIER_FAILED)
        return self._reject(how, "called" if how.outcome.value == "busy" else "", now)

    def carrier_unreachable(self, now: float, *, timed_out: bool) -> list[Output]:
        """The carrier INVITE got no response at all (``timed_out``, RFC 3261 timer B) or
        could not be sent: 503, cause 102 for the silence, 41 for the failure."""
        return self.carrier_failed(outcomes.CARRIER_SILENT if timed_out
                                   else outcomes.CARRIER_FAILURE, now)

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
        """BYE from the facility while connected."""
        self._move(Input.CALLER_HUNG_UP)
        how = outcomes.CALLER_HUNG_UP
        return [HangUpCarrier(how.reason), self._end(how, "caller", now)]

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
            return [HangUpCarrier(outcomes.MEDIA_LOST.reason),
                    self._end(self._farewell_outcome, "controller", now)]
        how = outcomes.CARRIER_FAILURE
        return [HangUpCarrier(how.reason), *self._reject(how, "controller", now)]

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
        if state in (CallState.COLLECTING, CallState.AUTHORIZING):
            return self._reject(how, "controller", now)
        if state in (CallState.DIALING, CallState.RINGING):
            return [CancelCarrier(), *self._reject(how, "controller", now)]
        if state is CallState.PROMPTING:
            return [HangUpCarrier(how.reason), *self._reject(how, "controller", now)]
        if state is CallState.FAREWELL:
            assert self._farewell_outcome is not None
            return [HangUpCarrier(how.reason),
                    self._end(self._farewell_outcome, "controller", now)]
        ended = outcomes.Disposition(200, how.cause, how.text, outcomes.CALLER_HUNG_UP.outcome)
        return [HangUpCarrier(ended.reason), HangUpCaller(ended.reason),
                self._end(ended, "controller", now)]

    # -- timers -------------------------------------------------------------------

    def get_timer(self) -> float | None:
        state = self.state
        if state in (CallState.DIALING, CallState.RINGING):
            assert self.dial_at is not None
            ring = self.dial_at + self.settings.ring_timeout
            if not self.carrier_responded:
                return min(ring, self.dial_at + self.settings.carrier_response_timeout)
            return ring
        if state is CallState.PROMPTING:
            return self.menu.get_timer() if self.menu is not None else None
        if state is CallState.FAREWELL:
            return self._farewell_deadline
        if state is CallState.CONNECTED:
            times = [t for t in (self._next_heartbeat, self._warning_at, self._limit_at)
                     if t is not None]
            return min(times) if times else None
        return None

    def handle_timer(self, now: float) -> list[Output]:
        state = self.state
        if state in (CallState.DIALING, CallState.RINGING):
            assert self.dial_at is not None
            s = self.settings
            if not self.carrier_responded and now >= self.dial_at + s.carrier_response_timeout:
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
        return [ConnectCaller(record=not self.grant.privileged), CallAccepted(now, single_call)]

    def _farewell(self, how: Disposition, farewell: tuple[str, ...] | object,
                  now: float) -> list[Output]:
        self._move(Input.MENU_ENDED)
        self.menu = None
        self._farewell_outcome = how
        self._farewell_side = "controller" if how is outcomes.PROMPT_TIMEOUT else "called"
        out: list[Output] = [RejectCaller(how.status, how.reason)]
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
        return [HangUpCarrier(how.reason), self._end(how, self._farewell_side, now)]
