"""Errors of the media layer, each carrying the SIP answer it implies."""

from __future__ import annotations


class MediaError(Exception):
    """Base of every media-layer error.

    ``sip_status`` and ``q850_cause`` say how the call controller should answer
    the call this error breaks, so the boundary turns it into a response
    instead of a crash.
    """

    sip_status: int = 503
    q850_cause: int = 41  # temporary failure

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PortsExhausted(MediaError):
    """No RTP port is free in the configured range (we cannot take the call)."""

    sip_status = 503
    q850_cause = 47  # resource unavailable, unspecified


class PromptMissing(MediaError):
    """A prompt the call flow needs has no audio file (the installation is broken)."""

    sip_status = 503
    q850_cause = 41


class CodecMismatch(MediaError):
    """The peer offered no codec we can speak (PCMU or PCMA)."""

    sip_status = 488
    q850_cause = 65  # bearer capability not implemented
