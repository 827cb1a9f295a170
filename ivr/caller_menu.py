"""The caller's voice menu on a menu trunk as a sans-IO state machine: language, PIN, number.

A facility phone that sends a plain INVITE is answered and the caller keys in
a language, their PIN and the number they are calling; the menu then hands
over to the controller's screening and speaks its answers (refusals, the
called party's outcome) in the caller's language.

Inputs, each with ``now``: ``start``, ``digit``, ``prompt_finished``,
``timer`` (at ``get_timer()``), ``hangup``, and the controller's answers
``station_locked``, ``pin_checked``, ``call_refused``, ``call_placed`` and
``call_outcome``. Each returns the actions to carry out, in order:

* ``Play(sequence, purpose, lang)`` replaces anything playing; the controller
  reports ``prompt_finished`` when it ends. ``StopPlayback`` (``ivr.menu``'s)
  stops it: a key barges in on every prompt of the menu but the hold message.
  ``PlayRingback`` loops the ringback tone (``ivr.tones``) until
  ``StopPlayback`` or the end.
* ``CheckPin(pin)``: look the PIN up at this facility; answer with
  ``pin_checked(PinValid | PinInvalid | PinSuspended | PinLocked)``. The
  controller counts failures per station and answers ``PinLocked`` once the
  station is locked; a PIN of another facility is ``PinInvalid``, so the menu
  cannot tell anyone whether it exists elsewhere.
* ``PlaceCall(pin, number, dialled, language)``: screen and place the call as
  for a header call; answer ``call_refused(Refusal, ...)`` or ``call_placed``
  and later ``call_outcome(CalledOutcome)``. The menu's time ends here
  (``handed_over_at``): it is never billed and goes in the CDR as
  ``menu_seconds``.
* One terminal action: ``Connected`` (bridge the legs), ``EndCall(reason,
  farewell, lang)`` (play ``farewell``, then BYE) or ``Abandoned`` (the caller
  hung up; nothing is owed, and a call already placed must be cancelled).

Digits: PINs end with ``#`` or, with a fixed PIN length, at that length;
numbers end with ``#`` or after ``interdigit_timeout`` of silence. ``*``
starts the entry again. A, B, C and D keys are ignored. Keys pressed while
the controller is working (checking the PIN, screening, ringing) are late
and ignored. Wrong PINs, empty entries and invalid numbers are answered and
asked again, ``max_tries`` in all, then goodbye. The whole menu up to the
hand-over has a limit (``menu_limit``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from ivr import phrases
from ivr.menu import StopPlayback as StopPlayback  # the acceptance menu's, re-exported
from ivr.phrases import Sequence
from rating.errors import InvalidNumber
from rating.jurisdiction import classify_number

# -- actions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """Play this prompt sequence from ``lang``'s prompts (replacing anything playing)."""

    sequence: Sequence
    purpose: str  # "language", "pin", "number", "hold"
    lang: str


@dataclass(frozen=True, slots=True)
class PlayRingback:
    """Loop the ringback tone while the called party is rung."""


@dataclass(frozen=True, slots=True)
class CheckPin:
    """Look this PIN up at the facility; answer with ``pin_checked``."""

    pin: str


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """Screen and place the call; answer with ``call_refused`` or ``call_placed``.

    ``number`` is the E.164 form, ``dialled`` the digits as keyed.
    """

    pin: str
    number: str
    dialled: str
    language: str


@dataclass(frozen=True, slots=True)
class Connected:
    """The called party accepted: bridge the legs (the ringback was stopped)."""


@dataclass(frozen=True, slots=True)
class EndCall:
    """Play ``farewell`` from ``lang``'s prompts, then end the call with BYE."""

    reason: str
    farewell: Sequence
    lang: str


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The caller hung up. ``call_placed``: a call was handed over and must be cancelled."""

    call_placed: bool


CallerMenuAction = (
    Play | StopPlayback | PlayRingback | CheckPin | PlaceCall | Connected | EndCall | Abandoned
)
Ending = Connected | EndCall | Abandoned

# -- the controller's answers -------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinValid:
    """The PIN is a person at this facility who may call.

    ``language`` is the person's ("en", "es"); ``debit_balance`` is said when
    the payer will be their Debit account, else ``None``.
    """

    language: str
    debit_balance: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PinInvalid:
    """No such PIN here (whatever exists elsewhere)."""


@dataclass(frozen=True, slots=True)
class PinSuspended:
    """The person exists but may not place calls now."""


@dataclass(frozen=True, slots=True)
class PinLocked:
    """This station's PIN entry is locked after too many failures."""


PinResult = PinValid | PinInvalid | PinSuspended | PinLocked


class Refusal(enum.StrEnum):
    """Why screening refused the call; each is spoken before goodbye."""

    BLOCKED_NUMBER = "blocked_number"
    NOT_ON_ALLOWED_LIST = "not_on_allowed_list"
    OUTSIDE_CALLING_HOURS = "outside_calling_hours"
    NOBODY_CAN_PAY = "nobody_can_pay"
    FACILITY_BUSY = "facility_busy"
    INVALID_NUMBER = "invalid_number"
    FAILED = "failed"


class CalledOutcome(enum.StrEnum):
    """What became of the called leg."""

    ACCEPTED = "accepted"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    BLOCKED = "blocked"
    FAILED = "failed"


_REFUSAL_PROMPTS: dict[Refusal, Sequence] = {
    Refusal.BLOCKED_NUMBER: ("refused_blocked",),
    Refusal.NOT_ON_ALLOWED_LIST: ("refused_not_allowed",),
    Refusal.OUTSIDE_CALLING_HOURS: ("refused_hours",),
    Refusal.NOBODY_CAN_PAY: ("refused_no_payer",),
    Refusal.FACILITY_BUSY: ("refused_busy",),
    Refusal.INVALID_NUMBER: ("number_invalid",),
    Refusal.FAILED: ("call_failed",),
}

_OUTCOME_PROMPTS: dict[CalledOutcome, Sequence] = {
    CalledOutcome.DECLINED: ("called_declined",),
    CalledOutcome.NO_ANSWER: ("called_no_answer",),
    CalledOutcome.BUSY: ("called_busy",),
    CalledOutcome.BLOCKED: ("called_blocked",),
    CalledOutcome.FAILED: ("call_failed",),
}

# -- the machine --------------------------------------------------------------


class CallerMenuState(enum.Enum):
    IDLE = "idle"
    LANGUAGE = "language"
    PIN = "pin"
    CHECKING_PIN = "checking-pin"
    NUMBER = "number"
    SCREENING = "screening"
    HOLD = "hold"
    RINGBACK = "ringback"
    DONE = "done"


#: States where the caller keys something in.
_ENTRY = {CallerMenuState.LANGUAGE, CallerMenuState.PIN, CallerMenuState.NUMBER}
#: States before the hand-over to screening, where the menu limit applies.
_BEFORE_HANDOVER = {*_ENTRY, CallerMenuState.CHECKING_PIN}

_KEYS = frozenset("0123456789*#")
MAX_PIN_DIGITS = 12
#: ``011`` + a country code and up to 15 digits in all.
MAX_NUMBER_DIGITS = 18


def dialled_e164(digits: str) -> str | None:
    """The E.164 form of keyed digits: 10-digit NANP, ``1`` + 10 digits, ``011`` + international.

    ``None`` when they form no callable number (rating's classification, on
    libphonenumber's data, decides; the facility's state does not matter here).
    """
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return classify_number(digits, "").e164
    except InvalidNumber:
        return None


class CallerMenu:
    """One caller's way through the menu on a menu trunk."""

    def __init__(
        self,
        languages: Iterable[str] = phrases.LANGUAGES,
        *,
        pin_length: int | None = None,
        menu_limit: float = 90.0,
        max_tries: int = 3,
        no_input_timeout: float = 8.0,
        interdigit_timeout: float = 5.0,
        answer_timeout: float = 15.0,
        ring_guard: float = 330.0,
        prompt_guard: float = 60.0,
    ) -> None:
        self.languages = tuple(languages)
        if not self.languages:
            raise ValueError("the menu needs at least one language")
        for lang in self.languages:
            if lang not in phrases.TEXTS or lang not in phrases.LANGUAGE_KEYS:
                raise ValueError(f"no caller's menu for language {lang!r}")
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("a language is offered twice")
        if pin_length is not None and not 1 <= pin_length <= MAX_PIN_DIGITS:
            raise ValueError(f"pin_length must be 1..{MAX_PIN_DIGITS}")
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.pin_length = pin_length
        self.menu_limit = menu_limit
        self.max_tries = max_tries
        self.no_input_timeout = no_input_timeout
        self.interdigit_timeout = interdigit_timeout
        # How long the controller may take to answer CheckPin or PlaceCall.
        self.answer_timeout = answer_timeout
        # The controller ends ringing at the facility's ring timeout; this only
        # keeps the menu from waiting forever if it never says.
        self.ring_guard = ring_guard
        # If the end of a prompt is never reported, carry on as if it had been.
        self.prompt_guard = prompt_guard

        self.lang = self.languages[0]
        self.state = CallerMenuState.IDLE
        self.pin: str | None = None
        self.number: str | None = None
        self.outcome: Ending | None = None
        #: When the menu started and when it handed over to screening (or ended before).
        self.started_at: float | None = None
        self.handed_over_at: float | None = None
        self.ended_at: float | None = None

        self._playing = False
        self._digits = ""
        self._tries = 0
        self._deadline: float | None = None
        self._limit_at: float | None = None

    # -- inputs ------------------------------------------------------------

    def start(self, now: float) -> list[CallerMenuAction]:
        if self.state is not CallerMenuState.IDLE:
            return []
        self.started_at = now
        self._limit_at = now + self.menu_limit
        if len(self.languages) == 1:
            return self._begin_pin(now)
        self.state = CallerMenuState.LANGUAGE
        self._tries = 1
        return [self._play(self._language_offer(), "language", now)]

    def digit(self, d: str, now: float) -> list[CallerMenuAction]:
        if self.state not in _ENTRY or len(d) != 1 or d not in _KEYS:
            return []  # late keys, and keys (A to D) that no step uses
        out: list[CallerMenuAction] = self._stop()
        if self.state is CallerMenuState.LANGUAGE:
            chosen = next((lang for lang in self.languages if phrases.LANGUAGE_KEYS[lang] == d),
                          None)
            if chosen is None:
                return out + self._language_retry(now)
            self.lang = chosen
            return out + self._begin_pin(now)
        if d == "*":
            self._digits = ""
            return [*out, self._play(self._entry_prompt(), self._purpose(), now)]
        if d == "#":
            return out + self._submit(now)
        self._digits += d
        limit = MAX_PIN_DIGITS if self.state is CallerMenuState.PIN else MAX_NUMBER_DIGITS
        if self.state is CallerMenuState.PIN and self.pin_length is not None:
            limit = self.pin_length
        if len(self._digits) >= limit:
            return out + self._submit(now)
        self._deadline = now + self.interdigit_timeout
        return out

    def prompt_finished(self, now: float) -> list[CallerMenuAction]:
        if not self._playing:
            return []
        self._playing = False
        if self.state is CallerMenuState.HOLD:
            self.state = CallerMenuState.RINGBACK
            self._deadline = (self.handed_over_at or now) + self.ring_guard
            return [PlayRingback()]
        if self.state in _ENTRY:
            self._deadline = now + self.no_input_timeout
        return []

    def timer(self, now: float) -> list[CallerMenuAction]:
        if self.state in _BEFORE_HANDOVER and self._limit_at is not None and now >= self._limit_at:
            farewell = ("menu_time_limit", "goodbye")
            return [*self._stop(), self._end("menu_time_limit", farewell, now)]
        if self._deadline is None or now < self._deadline:
            return []
        if self._playing:
            return self.prompt_finished(now)
        if self.state is CallerMenuState.LANGUAGE:
            return self._language_retry(now)
        if self.state in (CallerMenuState.PIN, CallerMenuState.NUMBER):
            return self._submit(now)  # inter-digit timeout, or nothing keyed at all
        if self.state in (CallerMenuState.CHECKING_PIN, CallerMenuState.SCREENING):
            return [self._end("no_answer_from_controller", ("call_failed", "goodbye"), now)]
        if self.state is CallerMenuState.RINGBACK:
            return [StopPlayback(), self._end("ring_guard", ("call_failed", "goodbye"), now)]
        return []

    def hangup(self, now: float) -> list[CallerMenuAction]:
        if self.state is CallerMenuState.DONE:
            return []
        placed = self.handed_over_at is not None
        return [self._finish(Abandoned(call_placed=placed), now)]

    def station_locked(self, now: float) -> list[CallerMenuAction]:
        """The controller found this station locked (before or during PIN entry)."""
        if self.state not in _BEFORE_HANDOVER and self.state is not CallerMenuState.IDLE:
            return []
        if self.state is CallerMenuState.IDLE:
            self.started_at = now
        return [*self._stop(), self._end("station_locked", ("station_locked", "goodbye"), now)]

    def pin_checked(self, result: PinResult, now: float) -> list[CallerMenuAction]:
        if self.state is not CallerMenuState.CHECKING_PIN:
            return []
        if isinstance(result, PinLocked):
            return [self._end("station_locked", ("station_locked", "goodbye"), now)]
        if isinstance(result, PinSuspended):
            return [self._end("suspended", ("not_allowed", "goodbye"), now)]
        if isinstance(result, PinInvalid):
            self.pin = None
            return self._retry(("pin_invalid",), "pin_invalid", now)
        if result.language in phrases.TEXTS:
            self.lang = result.language
        preface: Sequence = ()
        if result.debit_balance is not None:
            preface = ("balance_intro", *phrases.say_money(self.lang, result.debit_balance))
        self.state = CallerMenuState.NUMBER
        self._tries = 1
        self._digits = ""
        return [self._play((*preface, "number_prompt"), "number", now)]

    def call_refused(
        self, reason: Refusal, now: float, *, hours: Iterable[tuple[time, time]] = ()
    ) -> list[CallerMenuAction]:
        """Screening refused the call; ``hours`` are the calling windows to tell of."""
        if self.state is not CallerMenuState.SCREENING:
            return []
        said = _REFUSAL_PROMPTS[reason]
        windows = tuple(hours)
        if reason is Refusal.OUTSIDE_CALLING_HOURS and windows:
            said = (*said, *phrases.calling_hours(self.lang, windows))
        return [self._end(str(reason), (*said, "goodbye"), now)]

    def call_placed(self, now: float) -> list[CallerMenuAction]:
        """Screening passed and the called party is being rung."""
        if self.state is not CallerMenuState.SCREENING:
            return []
        self.state = CallerMenuState.HOLD
        return [self._play(("please_hold",), "hold", now)]

    def call_outcome(self, outcome: CalledOutcome, now: float) -> list[CallerMenuAction]:
        if self.state not in (CallerMenuState.HOLD, CallerMenuState.RINGBACK):
            return []
        ringing = self.state is CallerMenuState.RINGBACK
        out: list[CallerMenuAction] = [StopPlayback()] if ringing else self._stop()
        if outcome is CalledOutcome.ACCEPTED:
            return [*out, self._finish(Connected(), now)]
        return [*out, self._end(str(outcome), (*_OUTCOME_PROMPTS[outcome], "goodbye"), now)]

    def get_timer(self) -> float | None:
        if self.state is CallerMenuState.DONE:
            return None
        times = [self._deadline] if self._deadline is not None else []
        if self.state in _BEFORE_HANDOVER and self._limit_at is not None:
            times.append(self._limit_at)
        return min(times, default=None)

    @property
    def menu_seconds(self) -> float | None:
        """Seconds from the start to the hand-over (or to the end, if it never came)."""
        if self.started_at is None:
            return None
        end = self.handed_over_at if self.handed_over_at is not None else self.ended_at
        return None if end is None else end - self.started_at

    # -- steps -------------------------------------------------------------

    def _language_offer(self) -> Sequence:
        return tuple(f"offer_{lang}" for lang in self.languages)

    def _language_retry(self, now: float) -> list[CallerMenuAction]:
        if self._tries >= self.max_tries:
            # Nobody chose: carry on in the facility's first language.
            return self._begin_pin(now)
        self._tries += 1
        return [self._play(self._language_offer(), "language", now)]

    def _begin_pin(self, now: float) -> list[CallerMenuAction]:
        self.state = CallerMenuState.PIN
        self._tries = 1
        self._digits = ""
        return [self._play(self._entry_prompt(), "pin", now)]

    def _entry_prompt(self) -> Sequence:
        if self.state is CallerMenuState.NUMBER:
            return ("number_prompt",)
        return ("pin_prompt_fixed",) if self.pin_length is not None else ("pin_prompt",)

    def _purpose(self) -> str:
        return "number" if self.state is CallerMenuState.NUMBER else "pin"

    def _submit(self, now: float) -> list[CallerMenuAction]:
        entered, self._digits = self._digits, ""
        if not entered:
            return self._retry(("no_entry",), "no_entry", now)
        if self.state is CallerMenuState.PIN:
            self.pin = entered
            self.state = CallerMenuState.CHECKING_PIN
            self._deadline = now + self.answer_timeout
            return [CheckPin(entered)]
        e164 = dialled_e164(entered)
        if e164 is None:
            return self._retry(("number_invalid",), "number_invalid", now)
        assert self.pin is not None
        self.number = e164
        self.state = CallerMenuState.SCREENING
        self.handed_over_at = now
        self._deadline = now + self.answer_timeout
        return [PlaceCall(self.pin, e164, entered, self.lang)]

    def _retry(self, preface: Sequence, reason: str, now: float) -> list[CallerMenuAction]:
        """Another try at the PIN or the number, or goodbye after the last."""
        if self.state is CallerMenuState.CHECKING_PIN:
            self.state = CallerMenuState.PIN
        if self._tries >= self.max_tries:
            return [self._end(reason, (*preface, "goodbye"), now)]
        self._tries += 1
        return [self._play((*preface, *self._entry_prompt()), self._purpose(), now)]

    def _play(self, seq: Sequence, purpose: str, now: float) -> Play:
        self._playing = True
        self._deadline = now + self.prompt_guard
        return Play(seq, purpose, self.lang)

    def _stop(self) -> list[CallerMenuAction]:
        if not self._playing:
            return []
        self._playing = False
        return [StopPlayback()]

    def _end(self, reason: str, farewell: Sequence, now: float) -> EndCall:
        ending = EndCall(reason, farewell, self.lang)
        self._finish(ending, now)
        return ending

    def _finish(self, outcome: Ending, now: float) -> Ending:
        self.state = CallerMenuState.DONE
        self._playing = False
        self._deadline = None
        self.ended_at = now
        self.outcome = outcome
        return outcome
