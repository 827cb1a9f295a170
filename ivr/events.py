"""Events the media layer reports, named as facts that happened."""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The far end pressed a key.

    ``source`` is ``"rfc4733"``, ``"sip-info"`` or ``"inband"``; ``duration_ms``
    is what the source reported (0 when it does not say).
    """

    digit: str
    source: str
    duration_ms: int
    at: float


@dataclass(frozen=True, slots=True)
class PeerAddressLearned:
    """Symmetric RTP: the peer's real source address (it may differ from SDP)."""

    address: Address
    at: float


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """The last packet of a prompt sequence was sent."""

    at: float


@dataclass(frozen=True, slots=True)
class MediaTimedOut:
    """Nothing arrived from the peer for the inactivity timeout."""

    last_received: float | None
    at: float


@dataclass(frozen=True, slots=True)
class RtcpReportReceived:
    """The peer's RTCP told us how our stream reaches it."""

    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    jitter_ms: float
    at: float


MediaEvent = (
    DtmfReceived | PeerAddressLearned | PlaybackFinished | MediaTimedOut | RtcpReportReceived
)
