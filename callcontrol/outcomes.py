"""The facility-side outcome table: how each way a call can end is answered on the wire."""

from __future__ import annotations

import re
from dataclasses import dataclass

from accounts import CallOutcome, Refusal

from .errors import reason_header


@dataclass(frozen=True, slots=True)
class Disposition:
    """How a call ended: the final SIP status (or the BYE cause) and the CDR outcome."""

    status: int
    cause: int
    text: str
    outcome: CallOutcome

    @property
    def reason(self) -> str:
        return reason_header(self.cause, self.text)


# Q.850 causes: 1 unallocated number, 16 normal clearing, 17 user busy, 18 no user
# responding, 19 no answer, 21 call rejected, 28 invalid number format, 31 normal
# unspecified, 41 temporary failure, 102 recovery on timer expiry.
DECLINED = Disposition(603, 21, "called party declined", CallOutcome.DECLINED)
HUNG_UP_AT_PROMPT = Disposition(603, 21, "called party hung up during the prompt",
                                CallOutcome.DECLINED)
BLOCKED = Disposition(603, 21, "called party blocked calls from this facility",
                      CallOutcome.BLOCKED_BY_CALLED_PARTY)
NO_ANSWER = Disposition(480, 19, "no answer", CallOutcome.NO_ANSWER)
PROMPT_TIMEOUT = Disposition(480, 19, "no choice made at the prompt", CallOutcome.NO_ANSWER)
BUSY = Disposition(486, 17, "user busy", CallOutcome.BUSY)
NOT_ROUTABLE = Disposition(404, 1, "number invalid or not routable", CallOutcome.REFUSED)
ADDRESS_INCOMPLETE = Disposition(484, 28, "address incomplete", CallOutcome.REFUSED)
CARRIER_FAILURE = Disposition(503, 41, "carrier failure", CallOutcome.FAILED)
CARRIER_SILENT = Disposition(503, 102, "carrier did not respond", CallOutcome.FAILED)
INTERNAL_FAILURE = Disposition(503, 41, "internal failure", CallOutcome.FAILED)
SHUTTING_DOWN = Disposition(503, 41, "service shutting down", CallOutcome.FAILED)
OPERATOR = Disposition(503, 16, "ended by an operator", CallOutcome.FAILED)
CANCELLED = Disposition(487, 16, "caller hung up", CallOutcome.CANCELLED)
MISSING_PIN = Disposition(403, 21, "no PIN", CallOutcome.REFUSED)
# Q.850 34: no circuit/channel available (the facility's own limit, not the network's).
FACILITY_BUSY = Disposition(503, 34, "facility at its concurrency limit", CallOutcome.REFUSED)
# Every carrier gateway is down or carrying its limit of calls.
GATEWAYS_BUSY = Disposition(503, 34, "no carrier gateway available", CallOutcome.FAILED)

# Ends of a connected call (the status is that of the BYE's answer, always 200).
CALLER_HUNG_UP = Disposition(200, 16, "caller hung up", CallOutcome.COMPLETED)
CALLED_HUNG_UP = Disposition(200, 16, "called party hung up", CallOutcome.COMPLETED)
TIME_LIMIT = Disposition(200, 16, "call time limit reached", CallOutcome.COMPLETED)
MEDIA_LOST = Disposition(200, 102, "no media from a party", CallOutcome.COMPLETED)
SESSION_EXPIRED = Disposition(200, 102, "session timer expired", CallOutcome.COMPLETED)
ACK_LOST = Disposition(200, 102, "caller never confirmed the answer", CallOutcome.COMPLETED)
# The facility's three_way_policy is "disconnect": the call talked, and is billed so.
THREE_WAY = Disposition(200, 16, "three-way calling detected", CallOutcome.COMPLETED)
# Ends of a menu call, whose caller's leg was answered for the menu.
MENU_ABANDONED = Disposition(200, 16, "caller hung up", CallOutcome.CANCELLED)
MENU_ENDED = Disposition(200, 16, "ended in the caller's menu", CallOutcome.REFUSED)
CONNECT_FAILED = Disposition(503, 41, "media could not be connected", CallOutcome.FAILED)
#: The facility never PRACKed our reliable 180 (RFC 3262 3: reject with a 5xx).
PRACK_MISSING = Disposition(500, 111, "reliable provisional response never acknowledged",
                            CallOutcome.FAILED)


def by_operator(reason: str) -> Disposition:
    """An operator's hang-up, naming the operator's ``reason`` (or the standard text)."""
    return Disposition(OPERATOR.status, OPERATOR.cause, reason or OPERATOR.text, OPERATOR.outcome)


def from_refusal(refusal: Refusal) -> Disposition:
    """The answer to a call the accounts layer refused (403, 404, 402 or 503)."""
    outcome = CallOutcome.FAILED if refusal.sip_status >= 500 else CallOutcome.REFUSED
    return Disposition(refusal.sip_status, refusal.q850_cause, refusal.reason.text, outcome)


def from_carrier_status(status: int) -> Disposition:
    """What the facility hears when the carrier ends the call attempt with ``status``."""
    if status in (486, 600):
        return BUSY
    if status in (408, 480, 487):
        return NO_ANSWER
    if status in (404, 410, 484, 485, 604):
        return NOT_ROUTABLE
    return CARRIER_FAILURE


_DIALLABLE = re.compile(r"\+?[0-9]+")


def check_dialled(user: str) -> Disposition | None:
    """Reject what is plainly not a number before anything else is spent on it.

    Anything but digits (with an optional leading ``+``) is 404; a short run of
    digits that could still be completed is 484. What remains is judged by the
    rating engine's number plan.
    """
    if not _DIALLABLE.fullmatch(user):
        return NOT_ROUTABLE
    digits = user.lstrip("+")
    if not user.startswith("+") and not digits.startswith("011") and len(digits) < 10:
        return ADDRESS_INCOMPLETE
    if len(digits) > 15 + (3 if digits.startswith("011") else 0):
        return NOT_ROUTABLE
    return None
