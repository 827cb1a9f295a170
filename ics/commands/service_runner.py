"""Run a long-lived service coroutine on uvloop (the stdlib loop where uvloop is absent).

``ics serve`` and ``ics api`` share this: one event-loop set-up and one mapping of
start-up failures to exit statuses (2 for a bad config, 1 for an address in use or
another OS error), each printed as ``ics <command>: <reason>``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


def new_runner() -> asyncio.Runner:
    """An ``asyncio.Runner`` on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_service(
    command: str, config: str | None, main: Callable[[str | Path], Coroutine[Any, Any, int]]
) -> int:
    """Run ``main`` on the config at ``config`` (by default ``configs/demo.toml``) to
    completion; report a failure to start as ``ics <command>: ...``."""
    from settings.config import ConfigError, default_config_path

    path = config or default_config_path()
    try:
        with new_runner() as runner:
            return runner.run(main(path))
    except ConfigError as exc:
        print(f"ics {command}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"ics {command}: {exc}", file=sys.stderr)
        return 1
