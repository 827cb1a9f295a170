"""Errors of the call controller, each carrying the SIP answer and Q.850 cause it implies."""

from __future__ import annotations


class CallError(Exception):
    """Base of every call-controller error: ``status``/``cause``/``text`` are the wire answer."""

    status = 503
    cause = 41
    text = "temporary failure"

    def __init__(self, message: str, *, status: int | None = None, cause: int | None = None,
                 text: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if cause is not None:
            self.cause = cause
        if text is not None:
            self.text = text

    def reason_header(self) -> str:
        return reason_header(self.cause, self.text)


class PeerError(CallError):
    """A peer (facility trunk or carrier) sent something we cannot work with."""

    status = 488
    cause = 79
    text = "service or option not implemented"


class LocalError(CallError):
    """Our own code asked for something impossible; a bug, answered 500 if it escapes."""

    status = 500
    cause = 41
    text = "temporary failure"


class IllegalTransition(LocalError):
    """An input arrived that the call's current state does not accept."""


def reason_header(cause: int, text: str) -> str:
    """The value of a ``Reason: Q.850;cause=N;text="..."`` header (RFC 3326)."""
    clean = text.replace("\\", "").replace('"', "'")
    return f'Q.850;cause={cause};text="{clean}"'
