"""One controller "node" for multi-node tests: its own process, connection and service.

Runs ``--calls`` authorize+settle pairs (``--workers`` at a time) to one
called number against a shared Redis, and prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from accounts import (  # noqa: E402
    AccountService,
    AccountsPolicy,
    Authorization,
    CallRequest,
    FacilityPolicy,
    RedisAccountStore,
    Refusal,
)
from settings.config import load_config  # noqa: E402

FACILITY = "tx-state-prison"
PIN = "100001"
# A Tuesday, 14:00 in Huntsville: inside calling hours.
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    config = load_config(ROOT / "configs" / "demo.toml")
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    store = RedisAccountStore(
        args.url or None, cluster_nodes=args.cluster or (), prefix=args.prefix
    )
    await store.open()
    service = AccountService(store, facilities, AccountsPolicy())
    rng = random.Random(args.node)
    summary: dict[str, int] = {
        "authorized": 0, "refused": 0, "not_from_account": 0, "charged_units": 0
    }
    refusals: dict[str, int] = {}
    queue = iter(range(args.calls))

    async def worker() -> None:
        for n in queue:
            call_id = f"node{args.node}-{n}"
            result = await service.authorize(
                CallRequest(
                    call_id=call_id, facility_id=FACILITY, pin=PIN, dialled=args.number, at=AT
                )
            )
            if isinstance(result, Refusal):
                summary["refused"] += 1
                refusals[result.reason.code] = refusals.get(result.reason.code, 0) + 1
                continue
            assert isinstance(result, Authorization)
            if result.payer_account_id is None:
                # Not the account: a one-time charge offer, which this "caller" declines.
                summary["not_from_account"] += 1
                await service.release(result.reservation_id, AT)
                continue
            summary["authorized"] += 1
            # The call is "connected" for a moment: the other node takes holds meanwhile,
            # and a fast node cannot drain the account before the other one starts.
            await asyncio.sleep(0.01)
            talked = rng.randint(0, result.max_seconds)
            settlement = await service.settle(
                result.reservation_id, talked, AT + timedelta(seconds=talked)
            )
            summary["charged_units"] += settlement.reservation.charged_units or 0

    # Both nodes start together, so that they really compete for the same funds:
    # say "ready", then wait for the go line.
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    try:
        await asyncio.gather(*(worker() for _ in range(args.workers)))
    finally:
        await store.close()
    return {"node": args.node, **summary, "refusals": refusals}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="")
    parser.add_argument("--cluster", nargs="*", default=[])
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--number", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
