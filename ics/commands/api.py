"""`ics api`: run the HTTP service alone (rate calculator, admin API, metrics)."""

from __future__ import annotations

import argparse
from typing import Any

from ics.commands import add_config_option


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "api",
        help="run the HTTP service alone (no SIP)",
        description="Serve the rate calculator, the admin API, /metrics and health checks "
        "with the configured account store, without the call controller.",
    )
    add_config_option(parser)
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="override the config's http.listen address")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api.runner import run_standalone
    from ics.commands.service_runner import run_service

    return run_service("api", args.config, lambda path: run_standalone(path, listen=args.listen))
