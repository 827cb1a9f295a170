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
    from api.runner import run_standalone
    from ics.commands.service_runner import run_service
    from settings.config import default_config_path

    path = args.config or default_config_path()
    return run_service("api", lambda: run_standalone(path, listen=args.listen))
