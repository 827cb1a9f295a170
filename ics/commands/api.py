"""`ics api`: run the HTTP service alone (rate calculator, admin API, metrics)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "api",
        help="run the HTTP service alone (no SIP)",
        description="Serve the rate calculator, the admin API, /metrics and health checks "
        "with the configured account store, without the call controller.",
    )
    parser.add_argument("--config", default=None,
                        help="service config (default configs/demo.toml)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="override the config's http.listen address")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from api.runner import run_standalone
    from ics.config import ConfigError, default_config_path

    path = args.config or default_config_path()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            return runner.run(run_standalone(path, listen=args.listen))
    except ConfigError as exc:
        print(f"ics api: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"ics api: {exc}", file=sys.stderr)
        return 1
