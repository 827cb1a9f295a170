"""Two controller nodes (separate processes and connections) sharing one Redis never overspend."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis_servers import SERVERS, unique_prefix

from accounts import (
    Account,
    AccountStore,
    Book,
    LedgerTransaction,
    Leg,
    Person,
    RedisAccountStore,
)
from rating import Product

pytestmark = pytest.mark.e2e

WORKER = Path(__file__).with_name("node_worker.py")
NUMBER = "+15125550100"
#: About a hundred calls' worth: the nodes run the account dry and compete for the rest.
DEPOSIT = 600_000
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


async def seed(store: AccountStore) -> None:
    await store.add_person(Person(facility_id="tx-state-prison", pin="100001"))
    await store.create_account(
        Account(id="hot", product=Product.ADVANCE_CONNECT, created_at=AT, numbers=(NUMBER,))
    )
    await store.post(
        LedgerTransaction(
            kind="deposit",
            at=AT,
            account_id="hot",
            idempotency_key="hot-deposit",
            legs=(Leg(Book.ACCOUNT, "hot", DEPOSIT), Leg(Book.FUNDS_IN, "card", -DEPOSIT)),
            memo="card",
        )
    )


def run_nodes(prefix: str, target: list[str], calls: int) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *target, "--prefix", prefix, "--node", str(node),
             "--number", NUMBER, "--calls", str(calls), "--workers", "4"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (1, 2)
    ]  # fmt: skip
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.close()
        results = []
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            out, err = proc.stdout.read(), proc.stderr.read()
            proc.wait(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


async def check_never_overspent(store: RedisAccountStore, results: list[dict[str, object]]) -> None:
    account = await store.get_account("hot")
    assert account.held_units == 0
    assert await store.open_reservations() == []
    # Replay the account's stream in the order Redis applied it: the spendable
    # balance never went below zero at any point, not just at the end.
    running = 0
    lowest = 0
    for tx in await store.ledger_of_account("hot"):
        running += sum(leg.amount_units for leg in tx.legs if leg.book is Book.ACCOUNT)
        lowest = min(lowest, running)
    assert lowest >= 0
    assert running == account.balance_units >= 0
    # Money is conserved: deposit = balance + everything earned from the calls.
    charged = sum(int(r["charged_units"]) for r in results)  # type: ignore[call-overload]
    totals = await store.book_totals()
    earned = sum(v for (book, _), v in totals.items() if book in ("revenue", "fees", "tax"))
    assert earned == charged
    assert account.balance_units + charged == DEPOSIT
    assert sum(totals.values()) == 0
    # Both nodes got calls through, and both were turned away once funds ran short.
    assert all(int(r["authorized"]) > 0 for r in results), results  # type: ignore[call-overload]
    turned_away = sum(
        int(r["refused"]) + int(r["not_from_account"])  # type: ignore[call-overload]
        for r in results
    )
    assert turned_away > 0


async def test_two_nodes_share_one_advance_connect_account() -> None:
    prefix = unique_prefix()
    server = SERVERS.single()
    store = RedisAccountStore(server.url, prefix=prefix)
    await store.open()
    try:
        await seed(store)
        results = run_nodes(prefix, ["--url", server.url], calls=150)
        await check_never_overspent(store, results)
    finally:
        await store.close()


async def test_two_nodes_on_a_redis_cluster() -> None:
    prefix = unique_prefix()
    cluster = SERVERS.cluster()
    store = RedisAccountStore(None, cluster_nodes=cluster.nodes, prefix=prefix)
    await store.open()
    try:
        await seed(store)
        results = run_nodes(prefix, ["--cluster", *cluster.nodes], calls=100)
        await check_never_overspent(store, results)
    finally:
        await store.close()
