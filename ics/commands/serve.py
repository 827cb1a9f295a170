"""`ics serve`: the call controller, media, the embedded store and the HTTP service together."""

from __future__ import annotations

import argparse
from typing import Any

from ics.commands import add_config_option


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the call controller and the HTTP service",
        description="Carry inmate calls from facility INVITE to CDR (SIP over UDP and TCP, "
        "prompt media, bridging, recording, settlement) and serve the HTTP API, all from "
        "one config. SIGINT/SIGTERM stop taking calls, let calls finish for "
        "sip.shutdown_grace_seconds, then end the rest and exit 0.",
    )
    add_config_option(parser)
    parser.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                        help="override sip.shutdown_grace_seconds")
    parser.add_argument("--no-http", action="store_true",
                        help="do not start the HTTP service")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ics.commands.service_runner import run_service
    from ics.service import serve

    return run_service(
        "serve", args.config, lambda path: serve(path, grace=args.grace, http=not args.no_http)
    )
