"""What the HTTP service needs from the call controller to show and end live calls.

The controller (``callcontrol``) implements ``LiveCalls`` and returns its own
snapshots; they satisfy ``LiveCallView`` by their attributes, so neither
package imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable


class LiveCallView(Protocol):
    """A call in progress, as an operator sees it (read-only)."""

    @property
    def call_id(self) -> str: ...
    @property
    def facility(self) -> str: ...
    @property
    def pin(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def state(self) -> str:
        """"screening", "ringing", "prompting" or "connected"."""
        ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def product(self) -> str | None: ...
    @property
    def answered_at(self) -> datetime | None: ...
    @property
    def recorded(self) -> bool: ...
    @property
    def max_seconds(self) -> int | None: ...


@runtime_checkable
class LiveCalls(Protocol):
    """Implemented by the call controller; the admin API lists and hangs up calls."""

    def list_calls(self) -> Sequence[LiveCallView]:
        """Every call in progress on this node, oldest first."""
        ...

    async def hang_up(self, call_id: str, reason: str) -> bool:
        """End a call (both legs, settling it as usual); False if no such call."""
        ...
