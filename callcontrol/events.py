"""Facts the call flow reports about a call, named as things that happened."""

from __future__ import annotations

from dataclasses import dataclass

from accounts import CallOutcome


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The called party's phone answered; the prompt starts."""

    at: float


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """The called party pressed a key at the prompt."""

    digit: str
    source: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAccepted:
    """The called party accepted (1, or 3 for a Single Call): talk time starts now."""

    at: float
    single_call: bool


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; settle it and write its record.

    ``status`` is the final response the facility got (200 once connected);
    ``side`` is who ended it: ``caller``, ``called``, ``controller`` or
    ``""`` when the controller refused it before anyone talked. On a menu
    call ``status`` is 200 (the caller's leg was answered for the menu) and
    the refusal or outcome was spoken instead.
    """

    outcome: CallOutcome
    status: int
    reason: str
    text: str
    side: str
    talked_seconds: int
    setup_at: float
    answer_at: float | None
    accept_at: float | None
    end_at: float
    single_call: bool
    #: Seconds the caller spent in the voice menu (never billed); 0 on a header trunk.
    menu_seconds: int = 0
    #: The signals that made the call look like a three-way call: (signal, seconds
    #: after acceptance); empty if it did not.
    three_way: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ThreeWayDetected:
    """The called leg sounded like a three-way (or forwarded) call; ``action`` is the
    facility's policy: ``flag``, ``warn`` or ``disconnect``."""

    at: float
    signals: tuple[tuple[str, float], ...]
    action: str


Event = CallAnswered | KeyPressed | CallAccepted | CallEnded | ThreeWayDetected
