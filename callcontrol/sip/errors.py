"""The SIP layer's one error family; each error carries the response it implies."""

from __future__ import annotations

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (a generic one for unknown codes)."""
    phrase = REASONS.get(status)
    if phrase is not None:
        return phrase
    return {1: "Progress", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}.get(
        status // 100, "Global Failure"
    )


class SipError(Exception):
    """Base of every SIP-layer error: ``status``/``reason`` are the answer it implies."""

    default_status = 500

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status: int = status if status is not None else self.default_status
        self.reason: str = reason or reason_phrase(self.status)


class PeerProtocolError(SipError):
    """The peer broke the protocol (answer with a 4xx; do not blame ourselves)."""

    default_status = 400


class ParseError(PeerProtocolError, ValueError):
    """Bytes on the wire are not a valid SIP message (400, or 513 when too large)."""


class SdpError(PeerProtocolError, ValueError):
    """A session description is malformed or cannot be accepted (488)."""

    default_status = 488


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol forbids (a bug on our side)."""

    default_status = 500


class TransactionStateError(LocalProtocolError):
    """A response was sent on a transaction that no longer accepts it (e.g. after CANCEL)."""
