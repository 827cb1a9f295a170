"""Whether a facility's INVITE becomes a call: the answers given before any call exists.

`Admission` holds what the controller knows that an INVITE is judged against
(draining, the facilities it serves, the calls in progress) and, given the
parsed request, the trunk it came from and ``now``, returns either the facts
of an admitted call or the exact answer to send. It does no I/O and keeps no
clock. An INVITE turned away here leaves no call record; what is refused once
the call exists (no PIN, a number that cannot be dialled, screening) is the
flow's to answer (`callcontrol.flow.CallFlow.call_requested`).

What the caller asks for (PIN, dialled number, payer) is not part of the
admission: a header trunk's INVITE carries it (`header_details`), and a trunk
whose callers give it later, by keypad, is admitted by the same step.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from .errors import reason_header
from .flow import CallDetails
from .outcomes import SHUTTING_DOWN
from .sip import Request, SdpError, SessionDescription, SipError, SipUri, answer_offer


@dataclass(frozen=True, slots=True)
class Turnaway:
    """The final answer to an INVITE that does not become a call.

    ``phrase`` is the status line's reason phrase (None: the standard one);
    ``headers`` are added to the response in order.
    """

    status: int
    phrase: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Admitted:
    """An INVITE that becomes a call: its facility, its offer and Request-URI, when it came."""

    facility_id: str
    offer: SessionDescription
    uri: SipUri
    at: float


DRAINING = Turnaway(503, None, (("Retry-After", "30"), ("Reason", SHUTTING_DOWN.reason)))
NOT_A_FACILITY = Turnaway(403, None, (("Reason", reason_header(21, "facility not allowed")),))
#: The Call-ID is a call in progress: the INVITE came back to us (RFC 3261 8.2.2.2).
LOOP = Turnaway(482)
NO_CONTACT = Turnaway(400, "Bad Request (no Contact)")
_NO_USABLE_AUDIO = (("Reason", reason_header(65, "no usable audio offer")),)


def header_details(request: Request, uri: SipUri) -> CallDetails:
    """What a header trunk's INVITE asks for: ``X-Inmate-PIN``, the Request-URI's user
    part, and ``X-Payer: debit`` for the caller's own debit account."""
    return CallDetails(
        pin=request.headers.get("x-inmate-pin") or "",
        dialled=uri.user or "",
        use_debit=(request.headers.get("x-payer") or "").strip().lower() == "debit",
    )


class Admission:
    """Judges new INVITEs against the controller's standing state.

    ``facilities`` and ``calls`` are read live (the controller's own
    containers); ``draining`` is set when the node stops taking calls.
    """

    def __init__(self, facilities: Container[str], calls: Container[str],
                 media_host: str) -> None:
        self.facilities = facilities
        self.calls = calls
        self.media_host = media_host
        self.draining = False

    def judge(self, request: Request, trunk_id: str | None, now: float) -> Admitted | Turnaway:
        """The call an out-of-dialog INVITE from ``trunk_id`` becomes, or the answer to it."""
        if self.draining:
            return DRAINING
        if trunk_id is None or trunk_id not in self.facilities:
            return NOT_A_FACILITY
        if request.call_id in self.calls:
            return LOOP
        if not request.headers.get_list("contact"):
            return NO_CONTACT
        try:
            uri = SipUri.parse(request.uri)
            offer = SessionDescription.parse(request.body)
            answer_offer(offer, self.media_host, 9)  # refuse what we could not answer
        except SdpError as exc:
            return Turnaway(488, f"Not Acceptable Here ({exc})", _NO_USABLE_AUDIO)
        except (SipError, ValueError) as exc:
            return Turnaway(400, f"Bad Request ({exc})")
        return Admitted(trunk_id, offer, uri, now)
