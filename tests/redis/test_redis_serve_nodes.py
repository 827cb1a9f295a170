"""Two `ics serve` nodes on one Redis: concurrent SIPp calls to one AdvanceConnect account."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis_serve import (
    SIPP,
    TRUNKS,
    Service,
    Sipp,
    carrier,
    facility,
    prepare_node,
    shared_store,
)
from redis_servers import unique_prefix

from accounts import AccountStore, CallDetailRecord, CdrFilter, RedisAccountStore
from accounts.redis.verify import verify_store
from rating import Product, from_units, quote
from settings.config import load_config

pytestmark = pytest.mark.e2e
# SIPp is part of the test set-up (scripts/test.sh installs sip-tester): missing, it fails.
assert SIPP is not None, "sipp is missing: install sip-tester (scripts/test.sh does)"

NUMBER = "+15125550160"
ACCOUNT = "ac-two-nodes"
CALLS_PER_NODE = 3


def longest_hold_units() -> int:
    """What the longest tx-state-prison call to NUMBER holds (20 minutes)."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml")
    rated = config.facilities["tx-state-prison"].rated
    return quote(rated, NUMBER, Product.ADVANCE_CONNECT, 1200, datetime.now(UTC)).total_units


async def settled_state(
    store: AccountStore, timeout: float = 20.0
) -> tuple[int, int, list[CallDetailRecord]]:
    """Balance, held and records once every call has settled."""
    deadline = time.monotonic() + timeout
    while True:
        account = await store.get_account(ACCOUNT)
        records = await store.list_cdrs(CdrFilter(number_e164=NUMBER))
        done = account.held_units == 0 and len(records) == 2 * CALLS_PER_NODE
        if done or time.monotonic() > deadline:
            return account.balance_units, account.held_units, records
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("redis", ["standalone", "cluster"])
def test_two_serve_nodes_never_overspend_one_account(tmp_path: Path, redis: str) -> None:
    hold = longest_hold_units()
    # Three longest calls and half of a fourth: the six calls placed at once (three
    # on each node) cannot all be held, and neither node can take every hold.
    deposit_units = 3 * hold + hold // 2
    deposit = from_units(deposit_units)
    prefix = unique_prefix()
    url, cluster, where = shared_store(redis)

    def open_store() -> RedisAccountStore:
        return RedisAccountStore(url or None, cluster_nodes=cluster, prefix=prefix)

    nodes = [
        prepare_node(tmp_path / f"node{n}", url, prefix, {NUMBER: (ACCOUNT, deposit)}, **where)
        for n in (1, 2)
    ]
    started: list[Service] = []
    carriers: list[Sipp] = []
    try:
        for svc in nodes:  # the first one seeds the shared store, the second finds it seeded
            svc.start()
            started.append(svc)
        carriers = [
            carrier(svc, tmp_path, f"carrier{n}", CALLS_PER_NODE) for n, svc in enumerate(nodes, 1)
        ]
        facilities = [
            facility(svc, tmp_path, f"facility{n}", NUMBER, CALLS_PER_NODE)
            for n, svc in enumerate(nodes, 1)
        ]
        for sipp in facilities:
            sipp.start()
        results = [sipp.wait() for sipp in facilities]
        pids = [sipp.process.pid for sipp in facilities if sipp.process is not None]

        async def check() -> tuple[int, int, list[CallDetailRecord], object]:
            store = open_store()
            await store.open()
            try:
                balance, held, records = await settled_state(store)
                report = await verify_store(store)
                return balance, held, records, report
            finally:
                await store.close()

        balance, held, records, report = asyncio.run(check())
    finally:
        for sipp in carriers:
            sipp.kill()
        for svc in started:
            svc.stop()

    assert held == 0
    assert report.ok, report.problems  # type: ignore[attr-defined]
    assert len(records) == 2 * CALLS_PER_NODE, [r.call_id for r in records]
    paid = [r for r in records if r.payer_account_id == ACCOUNT and r.outcome == "completed"]
    refused = [r for r in records if r.outcome == "refused"]
    # Never overspent, and every unit is accounted for.
    assert balance >= 0
    assert balance + sum(r.total_units for r in paid) == deposit_units
    # At most four calls could be held at once; the rest were refused, on either node.
    assert 1 <= len(paid) <= 4, records
    assert len(refused) >= 2, records
    # Each node connected at least one call to the shared account.
    for pid, result in zip(pids, results, strict=True):
        mine = [r for r in paid if r.call_id.endswith(f"-{pid}@{TRUNKS['tx-state-prison']}")]
        assert mine, (pid, [r.call_id for r in records], result.describe())
