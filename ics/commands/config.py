"""`ics config check`: validate the configuration and every tariff against the caps."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ics.commands.rate import load_or_report, parse_at


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config", help="check the configuration",
        description="Configuration tools.",
    )
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="validate configs; tariffs against the FCC caps in force",
        description="Load and validate the service config, its facilities, tariffs and "
        "regulation tables, then check every tariff against the cap table in force on the "
        "given date: rates per product and jurisdiction against the facility's tier, facility "
        "add-ons, and ancillary fees the rules ban or limit. Exit status 1 on any problem.",
    )
    check.add_argument("path", nargs="?", type=Path, default=None,
                       help="service config (default configs/demo.toml)")
    check.add_argument("--at", type=parse_at, default=None,
                       help="date to check the caps on (default: today, UTC)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from rating import check_facility

    config = load_or_report(args.path, "ics config check")
    if config is None:
        return 1
    at = args.at if args.at is not None else datetime.now().astimezone().date()
    day = at.date() if isinstance(at, datetime) else at
    assert isinstance(day, date)
    table = config.regulation.in_force(day)
    problems = 0
    for _fid, facility in sorted(config.facilities.items()):
        violations = check_facility(facility.rated, day)
        for violation in violations:
            print(f"{facility.tariff}: {violation.message}", file=sys.stderr)
        problems += len(violations)
    if problems:
        print(f"ics config check: {problems} violation(s) of the rules in force on {day}",
              file=sys.stderr)
        return 1
    rules = table.name if table else "no cap table"
    print(f"{config.path}: OK: {len(config.facilities)} facilities; every tariff within "
          f"{rules} in force on {day.isoformat()}")
    return 0
