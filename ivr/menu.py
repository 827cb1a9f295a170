"""The called party's acceptance menu as a sans-IO state machine.

Inputs: ``start``, ``digit``, ``prompt_finished``, ``rate_info``, ``timer`` and
``hangup``, each with ``now``. Each returns the actions for the controller to
carry out, in order. ``get_timer()`` says when to call ``timer`` next.

Keys (per the product design): 1 accept, 2 decline, 5 hear the cost, 9 block
(asks to confirm with 9 again), 3 accept with a one-time Single Call charge
(only when offered; then 1 is not), * repeat the options. A key stops the
prompt that is playing (barge-in). An invalid key or silence after the options
replays them, up to ``max_attempts`` plays in all, then the menu gives up
(``NoAnswer``). Terminal actions carry a ``farewell`` sequence for the
controller to play before it hangs up (empty when there is nothing to say).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from ivr import phrases
from ivr.phrases import Sequence


@dataclass(frozen=True, slots=True)
class Play:
    """Play this prompt sequence (replacing anything playing); report ``prompt_finished``."""

    sequence: Sequence
    purpose: str  # "menu", "repeat", "invalid", "no_input", "rate", "block_confirm"


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Stop the prompt now (the party pressed a key)."""


@dataclass(frozen=True, slots=True)
class HearRate:
    """Look up the per-minute rate and this call's maximum; answer with ``rate_info``."""


@dataclass(frozen=True, slots=True)
class Accept:
    farewell: Sequence = ()


@dataclass(frozen=True, slots=True)
class AcceptSingleCall:
    """Accepted, the called party paying the one-time Single Call charge."""

    charge: Decimal
    farewell: Sequence = ()


@dataclass(frozen=True, slots=True)
class Decline:
    """Declined with 2, or ``hung_up`` during the prompt (both answer 603)."""

    hung_up: bool = False
    farewell: Sequence = ()


@dataclass(frozen=True, slots=True)
class Block:
    """The party confirmed blocking future calls from this facility (answer 603)."""

    farewell: Sequence = ()


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No valid choice after every repetition (answer 480)."""

    farewell: Sequence = ()


MenuAction = Play | StopPlayback | HearRate | Accept | AcceptSingleCall | Decline | Block | NoAnswer
Outcome = Accept | AcceptSingleCall | Decline | Block | NoAnswer


class MenuState(enum.Enum):
    IDLE = "idle"
    PLAYING_MENU = "playing-menu"
    WAITING_CHOICE = "waiting-choice"
    WAITING_RATE = "waiting-rate"
    PLAYING_RATE = "playing-rate"
    PLAYING_BLOCK_CONFIRM = "playing-block-confirm"
    WAITING_BLOCK_CONFIRM = "waiting-block-confirm"
    DONE = "done"


_PLAYING = {MenuState.PLAYING_MENU, MenuState.PLAYING_RATE, MenuState.PLAYING_BLOCK_CONFIRM}
_IN_MENU = {
    MenuState.PLAYING_MENU,
    MenuState.WAITING_CHOICE,
    MenuState.WAITING_RATE,
    MenuState.PLAYING_RATE,
}


class AcceptanceMenu:
    """One called party's way through the acceptance prompt."""

    def __init__(
        self,
        lang: str = "en",
        *,
        facility_id: str | None = None,
        privileged: bool = False,
        single_call_charge: Decimal | None = None,
        choice_timeout: float = 6.0,
        max_attempts: int = 3,
        rate_timeout: float = 5.0,
        prompt_guard: float = 180.0,
    ) -> None:
        if lang not in phrases.TEXTS:
            raise ValueError(f"no prompts for language {lang!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if single_call_charge is not None:
            phrases.say_money(lang, single_call_charge)  # validates the amount now
        self.lang = lang
        self.facility_id = facility_id
        self.privileged = privileged
        self.single_call_charge = single_call_charge
        self.choice_timeout = choice_timeout
        self.max_attempts = max_attempts
        self.rate_timeout = rate_timeout
        # If the controller never reports the end of a prompt, do not hang forever.
        self.prompt_guard = prompt_guard
        self.state = MenuState.IDLE
        self.attempts = 0
        self.outcome: Outcome | None = None
        self._deadline: float | None = None

    # -- inputs ------------------------------------------------------------

    def start(self, now: float) -> list[MenuAction]:
        if self.state is not MenuState.IDLE:
            return []
        self.attempts = 1
        greeting = phrases.greeting(
            facility_id=self.facility_id,
            privileged=self.privileged,
            single_call_charge=self.single_call_charge,
            lang=self.lang,
        )
        return [self._play(greeting, "menu", MenuState.PLAYING_MENU, now)]

    def digit(self, d: str, now: float) -> list[MenuAction]:
        if self.state in (MenuState.IDLE, MenuState.DONE):
            return []
        out: list[MenuAction] = [StopPlayback()] if self.state in _PLAYING else []
        if self.state in (MenuState.PLAYING_BLOCK_CONFIRM, MenuState.WAITING_BLOCK_CONFIRM):
            if d == "9":
                return [*out, self._finish(Block(farewell=("blocked",)))]
            return [*out, self._play(self._options(), "menu", MenuState.PLAYING_MENU, now)]
        single = self.single_call_charge is not None
        if d == "1" and not single:
            return [*out, self._finish(Accept())]
        if d == "3" and single:
            assert self.single_call_charge is not None
            return [*out, self._finish(AcceptSingleCall(self.single_call_charge))]
        if d == "2":
            return [*out, self._finish(Decline(farewell=("declined",)))]
        if d == "5":
            self.state = MenuState.WAITING_RATE
            self._deadline = now + self.rate_timeout
            return [*out, HearRate()]
        if d == "9":
            confirm = MenuState.PLAYING_BLOCK_CONFIRM
            return [*out, self._play(("block_confirm",), "block_confirm", confirm, now)]
        if d == "*":
            return [*out, self._play(self._options(), "repeat", MenuState.PLAYING_MENU, now)]
        return out + self._retry(("invalid_choice",), "invalid", now)

    def prompt_finished(self, now: float) -> list[MenuAction]:
        if self.state is MenuState.PLAYING_MENU:
            self.state = MenuState.WAITING_CHOICE
            self._deadline = now + self.choice_timeout
        elif self.state is MenuState.PLAYING_BLOCK_CONFIRM:
            self.state = MenuState.WAITING_BLOCK_CONFIRM
            self._deadline = now + self.choice_timeout
        elif self.state is MenuState.PLAYING_RATE:
            return [self._play(self._options(), "menu", MenuState.PLAYING_MENU, now)]
        return []

    def rate_info(
        self, rate_per_minute: Decimal, max_minutes: int, max_cost: Decimal, now: float
    ) -> list[MenuAction]:
        """The controller's answer to ``HearRate``: said, then back to the options."""
        if self.state is not MenuState.WAITING_RATE:
            return []
        seq = phrases.rate_announcement(self.lang, rate_per_minute, max_minutes, max_cost)
        return [self._play(seq, "rate", MenuState.PLAYING_RATE, now)]

    def timer(self, now: float) -> list[MenuAction]:
        if self._deadline is None or now < self._deadline:
            return []
        if self.state is MenuState.WAITING_CHOICE:
            return self._retry(("no_input",), "no_input", now)
        if self.state is MenuState.WAITING_BLOCK_CONFIRM or self.state is MenuState.WAITING_RATE:
            return [self._play(self._options(), "menu", MenuState.PLAYING_MENU, now)]
        if self.state in _PLAYING:
            # The end of the prompt was never reported: carry on as if it had been.
            return self.prompt_finished(now)
        return []

    def hangup(self, now: float) -> list[MenuAction]:
        if self.state is MenuState.DONE:
            return []
        return [self._finish(Decline(hung_up=True))]

    def get_timer(self) -> float | None:
        return None if self.state is MenuState.DONE else self._deadline

    # -- helpers -----------------------------------------------------------

    def _options(self) -> Sequence:
        return phrases.options(single_call_charge=self.single_call_charge, lang=self.lang)

    def _play(self, seq: Sequence, purpose: str, state: MenuState, now: float) -> Play:
        self.state = state
        self._deadline = now + self.prompt_guard
        return Play(seq, purpose)

    def _retry(self, preface: Sequence, purpose: str, now: float) -> list[MenuAction]:
        if self.attempts >= self.max_attempts:
            return [self._finish(NoAnswer(farewell=(*preface, "goodbye")))]
        self.attempts += 1
        return [self._play(preface + self._options(), purpose, MenuState.PLAYING_MENU, now)]

    def _finish(self, outcome: Outcome) -> Outcome:
        self.state = MenuState.DONE
        self._deadline = None
        self.outcome = outcome
        return outcome
