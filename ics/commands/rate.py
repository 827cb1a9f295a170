"""`ics rate`: print what a call would cost, as a table or as the quote JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any


def parse_at(text: str) -> date | datetime:
    """``--at``: an ISO date (2026-11-25) or date and time (2026-11-25T14:00-06:00)."""
    try:
        if "T" in text or " " in text.strip():
            return datetime.fromisoformat(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date (YYYY-MM-DD) or date-time"
        ) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rate",
        help="quote the cost of a call",
        description="Quote a call from a facility to a number for a number of minutes, for "
        "every product the facility's tariff offers, with fees, taxes and the FCC cap in force.",
    )
    parser.add_argument("--facility", required=True, help="facility id, e.g. tx-state-prison")
    parser.add_argument("--number", required=True,
                        help="called number: +E.164, 10 digits, 1+10 digits or 011+digits")
    parser.add_argument("--minutes", required=True, type=int, help="call length in minutes")
    parser.add_argument("--json", action="store_true", help="print the quote JSON document")
    parser.add_argument("--config", type=Path, default=None,
                        help="service config (default configs/demo.toml)")
    parser.add_argument("--at", type=parse_at, default=None,
                        help="date of the call (default: today in the facility's time zone)")
    parser.set_defaults(func=run)


def _table(doc: dict[str, Any]) -> str:
    cap = doc["cap_per_minute"]
    state = f", {doc['destination_state']}" if doc["destination_state"] else ""
    lines = [
        f"{doc['facility_name']} ({doc['facility']}) to {doc['number']}"
        f" ({doc['destination_region']}{state})",
        f"Jurisdiction: {doc['jurisdiction']}    Date: {doc['date']}    "
        f"Minutes: {doc['minutes']}",
        "FCC cap: " + (f"${cap} per minute, {doc['cap_source']}" if cap
                       else "none for this jurisdiction on this date"),
        "",
    ]
    header = ("Product", "Rate/min", "Billed", "Charge", "Fees", "Taxes", "Total")
    rows = [header]
    details: list[str] = []
    for q in doc["quotes"]:
        fees = sum((_dec(f["amount"]) for f in q["fees"]), start=_dec("0.00"))
        taxes = sum((_dec(t["amount"]) for t in q["taxes"]), start=_dec("0.00"))
        rows.append((q["product"], q["rate_per_minute"], f"{q['billed_seconds']} s",
                     q["charge"], str(fees), str(taxes), q["total"]))
        for line in q["fees"] + q["taxes"]:
            details.append(f"  {q['product']}: {line['name']} ({line['category']}) "
                           f"{line['amount']}")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for r in rows:
        cells = [str(r[0]).ljust(widths[0])] + [
            str(c).rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    if details:
        lines += ["", "Fees and taxes:", *details]
    if doc.get("max_call_minutes") and doc["minutes"] > doc["max_call_minutes"]:
        lines += ["", f"Note: calls at this facility end after {doc['max_call_minutes']} minutes."]
    return "\n".join(lines)


def _dec(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)


def load_or_report(path: Path | None, prog: str) -> Any:
    """Load the service config, or print the error and return None."""
    from settings.config import ConfigError, default_config_path, load_config

    try:
        return load_config(path or default_config_path())
    except ConfigError as exc:
        print(f"{prog}: invalid configuration:\n{exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    from rating import RatingError, quote_document

    config = load_or_report(args.config, "ics rate")
    if config is None:
        return 2
    try:
        facility = config.facility(args.facility)
    except KeyError as exc:
        print(f"ics rate: facility: {exc.args[0]}", file=sys.stderr)
        return 2
    at = args.at if args.at is not None else datetime.now(facility.zone).date()
    try:
        doc = quote_document(facility.rated, args.number, args.minutes, at)
    except RatingError as exc:
        print(f"ics rate: {exc.field}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(_table(doc))
    return 0
