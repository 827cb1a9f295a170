"""`ics accounts`: scheduled account jobs (daily housekeeping, monthly invoices) and lookups."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "accounts",
        help="account jobs: housekeeping, invoices, balances",
        description="Run scheduled account jobs against the configured store "
        "(safe while `ics serve` runs on the same store).",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="service config (default configs/demo.toml)")
    jobs = parser.add_subparsers(dest="job", metavar="JOB")
    jobs.required = True
    jobs.add_parser(
        "housekeeping",
        help="daily: close accounts whose closure hold ended, flag inactive balances, "
        "raise Direct Bill limits earned by paying on time",
    )
    invoice = jobs.add_parser("invoice", help="monthly: invoice every Direct Bill account")
    invoice.add_argument("--month", required=True, help="the month to invoice, YYYY-MM")
    jobs.add_parser(
        "verify",
        help="check every cached balance against the ledger entries (exit 1 on a mismatch)",
    )
    show = jobs.add_parser("show", help="print one account with its balance")
    show.add_argument("account_id")
    parser.set_defaults(func=run)


def _month(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"--month: {text!r} is not YYYY-MM")
    return int(match.group(1)), int(match.group(2))


async def _run(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    from api.runner import open_account_service
    from rating import cents_str

    service = await open_account_service(config, seed=False)
    now = datetime.now(UTC)
    try:
        if args.job == "housekeeping":
            report: dict[str, Any] = await service.housekeeping(now)
            return report
        if args.job == "invoice":
            year, month = _month(args.month)
            issued = await service.issue_monthly_invoices(year, month, now)
            return {
                "invoices": [
                    {"id": i.id, "account": i.account_id, "amount": cents_str(i.amount_units),
                     "due_at": i.due_at.isoformat()}
                    for i in issued
                ]
            }
        if args.job == "verify":
            from accounts.redis.verify import verify_store

            return (await verify_store(service.store)).as_dict()
        account = await service.store.get_account(args.account_id)
        return {
            "id": account.id,
            "product": str(account.product),
            "status": str(account.status),
            "numbers": list(account.numbers),
            "balance": cents_str(account.balance_units),
            "held": cents_str(account.held_units),
            "credit_limit": cents_str(account.credit_limit_units),
        }
    finally:
        await service.store.close()


def run(args: argparse.Namespace) -> int:
    from accounts import AccountsError
    from ics.commands.rate import load_or_report

    config = load_or_report(args.config, "ics accounts")
    if config is None:
        return 2
    try:
        result = asyncio.run(_run(args, config))
    except (AccountsError, ValueError) as exc:
        print(f"ics accounts {args.job}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 1 if result.get("ok") is False else 0
