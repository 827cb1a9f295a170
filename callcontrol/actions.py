"""What the call flow asks its asyncio adapter to do, one frozen dataclass per command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .flow import CallDetails


@dataclass(frozen=True, slots=True)
class AuthorizeCall:
    """Screen the call and hold the payer's funds (answer with ``authorized``/``refused``)."""

    details: CallDetails


@dataclass(frozen=True, slots=True)
class RingCaller:
    """Send 180 Ringing on the facility INVITE (once)."""


@dataclass(frozen=True, slots=True)
class RejectCaller:
    """Send the final non-2xx response on the facility INVITE, with its Reason header."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class DialCarrier:
    """Send the INVITE to the carrier gateway."""


@dataclass(frozen=True, slots=True)
class CancelCarrier:
    """CANCEL the carrier INVITE (sent as soon as a provisional response allows)."""


@dataclass(frozen=True, slots=True)
class PlayToCalled:
    """Play a prompt sequence to the called party; report ``prompt_finished`` at its end."""

    sequence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StopCalledPlayback:
    """Stop the prompt playing to the called party (a key was pressed)."""


@dataclass(frozen=True, slots=True)
class ConnectCaller:
    """Answer the facility 200 OK and bridge the two legs; record unless ``record`` is False.

    ``answered``: the facility leg was answered already (a menu call): bridge only.
    """

    record: bool
    answered: bool = False


@dataclass(frozen=True, slots=True)
class AnswerCaller:
    """Answer the facility INVITE at once (200 OK with SDP) for the caller's menu."""


@dataclass(frozen=True, slots=True)
class PlayToCaller:
    """Play a prompt sequence in ``lang`` to the caller; report ``caller_prompt_finished``."""

    sequence: tuple[str, ...]
    lang: str


@dataclass(frozen=True, slots=True)
class PlayRingbackToCaller:
    """Loop the ringback tone to the caller until stopped."""


@dataclass(frozen=True, slots=True)
class StopCallerPlayback:
    """Stop what plays to the caller (a key barged in, or the called party answered)."""


@dataclass(frozen=True, slots=True)
class CheckCallerPin:
    """Is this station locked, and whose PIN is this? Answer with ``pin_checked``."""

    pin: str


@dataclass(frozen=True, slots=True)
class HangUpCarrier:
    """BYE the carrier leg."""

    reason: str


@dataclass(frozen=True, slots=True)
class HangUpCaller:
    """BYE the facility leg."""

    reason: str


@dataclass(frozen=True, slots=True)
class PlayLimitWarning:
    """Play the one-minute warning to both parties."""


@dataclass(frozen=True, slots=True)
class PlayThreeWayWarning:
    """Tell both parties that three-way calling is not allowed; report
    ``three_way_warning_played`` at its end."""


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Tell the store how long the call has talked, so a crash settles from here."""

    talked_seconds: int


@dataclass(frozen=True, slots=True)
class BlockFacility:
    """Record that the called number wants no more calls from this facility."""


Action = (
    AuthorizeCall | RingCaller | RejectCaller | DialCarrier | CancelCarrier | PlayToCalled
    | StopCalledPlayback | ConnectCaller | HangUpCarrier | HangUpCaller | PlayLimitWarning
    | SendHeartbeat | BlockFacility | AnswerCaller | PlayToCaller | PlayRingbackToCaller
    | StopCallerPlayback | CheckCallerPin | PlayThreeWayWarning
)
