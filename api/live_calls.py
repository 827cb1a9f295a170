"""What the HTTP service needs from the call controller to show and end live calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class LiveCall:
    """A call in progress, as an operator sees it."""

    call_id: str
    facility: str
    pin: str
    number: str
    state: str  # e.g. "screening", "ringing", "prompting", "connected"
    started_at: datetime
    product: str | None = None
    answered_at: datetime | None = None
    recorded: bool = True
    max_seconds: int | None = None


@runtime_checkable
class LiveCalls(Protocol):
    """Implemented by the call controller; the admin API lists and hangs up calls."""

    def list_calls(self) -> Sequence[LiveCall]:
        """Every call in progress on this node, oldest first."""
        ...

    async def hang_up(self, call_id: str, reason: str) -> bool:
        """End a call (both legs, settling it as usual); False if no such call."""
        ...
