"""A snapshot of one call in progress, as an operator sees it (the admin API's live-calls view).

The controller builds these; the HTTP service reads them through its own
``api.live_calls.LiveCalls`` protocol, so that call control never imports the
HTTP layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LiveCall:
    """A call in progress, as an operator sees it."""

    call_id: str
    facility: str
    pin: str
    number: str
    state: str  # "screening", "ringing", "prompting" or "connected"
    started_at: datetime
    product: str | None = None
    answered_at: datetime | None = None
    recorded: bool = True
    max_seconds: int | None = None
