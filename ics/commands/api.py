"""`ics api`: run the HTTP service alone (rate calculator, admin API, metrics)."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_CONFIG = "configs/demo.toml"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "api",
        help="run the HTTP service alone (no SIP)",
        description="Serve the rate calculator, the admin API, /metrics and health checks "
        "with the configured account store, without the call controller.",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"service config (default {DEFAULT_CONFIG})")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="override the config's http.listen address")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from api.runner import run_standalone

    try:
        return asyncio.run(run_standalone(args.config, listen=args.listen))
    except (OSError, ValueError) as exc:
        print(f"ics api: {exc}", file=sys.stderr)
        return 2
