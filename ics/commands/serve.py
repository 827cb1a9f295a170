"""`ics serve`: the call controller, media, the embedded store and the HTTP service together."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the call controller and the HTTP service",
        description="Carry inmate calls from facility INVITE to CDR (SIP over UDP and TCP, "
        "prompt media, bridging, recording, settlement) and serve the HTTP API, all from "
        "one config. SIGINT/SIGTERM stop taking calls, let calls finish for "
        "sip.shutdown_grace_seconds, then end the rest and exit 0.",
    )
    parser.add_argument("--config", default=None,
                        help="service config (default configs/demo.toml)")
    parser.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                        help="override sip.shutdown_grace_seconds")
    parser.add_argument("--no-http", action="store_true",
                        help="do not start the HTTP service")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from callcontrol.service import serve
    from ics.config import ConfigError, default_config_path

    path = args.config or default_config_path()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            return runner.run(serve(path, grace=args.grace, http=not args.no_http))
    except ConfigError as exc:
        print(f"ics serve: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"ics serve: {exc}", file=sys.stderr)
        return 1
