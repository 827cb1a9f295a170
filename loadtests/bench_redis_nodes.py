"""Benchmark: authorize+settle pairs per second on Redis from one or more node processes.

Each node is a separate process with its own connections and account service,
as several ``ics serve`` nodes would be. Two workloads, each bounded by a pair
count and a time limit:

* ``hot``: every pair on the same AdvanceConnect account ($100,000), so every
  hold and settle of every node contends on one key;
* ``spread``: pairs spread at random over ``--accounts`` accounts (10,000).

The script starts its own ``redis-server`` on a free loopback port (AOF,
``appendfsync everysec``) unless ``--url`` names one, and checks the ledger
with the same verification as ``ics accounts verify`` after each run.

    python loadtests/bench_redis_nodes.py                  # 1 and 2 nodes, both workloads
    python loadtests/bench_redis_nodes.py --nodes 2 --workload hot
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_authorize  # noqa: E402  (this folder is on sys.path when run as a script)

from accounts import (  # noqa: E402
    Account,
    AccountService,
    AccountsPolicy,
    Authorization,
    Book,
    CallRequest,
    FacilityPolicy,
    LedgerTransaction,
    Leg,
    Person,
    RedisAccountStore,
)
from accounts.redis.verify import verify_store  # noqa: E402
from rating import Product  # noqa: E402
from settings.config import load_config  # noqa: E402

FACILITY = "tx-state-prison"
PIN = "100001"
# A Tuesday, 14:00 in Huntsville: inside calling hours.
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
HOT_NUMBER = "+15125550100"
HOT_DEPOSIT = 1_000_000_000  # $100,000.00
SPREAD_DEPOSIT = 1_000_000  # $100.00


def numbers(count: int) -> list[str]:
    """Spread numbers, none in the hot number's exchange (555)."""
    return bench_authorize.numbers(count, exchanges=("556", "557", "558", "559"))


def loopback_only(url: str) -> None:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") and not host.startswith("127."):
        raise SystemExit(f"--url must be a loopback Redis, not {host}")


# -- one node ---------------------------------------------------------------------------
async def node_main(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(ROOT / "configs" / "demo.toml")
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    store = RedisAccountStore(args.url, prefix=args.prefix)
    await store.open()
    service = AccountService(store, facilities, AccountsPolicy())
    targets = [HOT_NUMBER] if args.workload == "hot" else numbers(args.accounts)
    pair_ns: list[int] = []
    refused = 0
    counter = iter(range(args.pairs))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + args.seconds

    async def worker(w: int) -> None:
        nonlocal refused
        rng = random.Random(args.node * 1000 + w)
        for n in counter:
            t0 = time.perf_counter_ns()
            result = await service.authorize(
                CallRequest(
                    call_id=f"{args.workload}-{args.nodes_total}n{args.node}-{n}",
                    facility_id=FACILITY,
                    pin=PIN,
                    dialled=rng.choice(targets),
                    at=AT,
                )
            )
            if not isinstance(result, Authorization) or result.payer_account_id is None:
                refused += 1
                if isinstance(result, Authorization):
                    await service.release(result.reservation_id, AT)
                continue
            talked = rng.randint(0, result.max_seconds)
            await service.settle(result.reservation_id, talked, AT + timedelta(seconds=talked))
            pair_ns.append(time.perf_counter_ns() - t0)
            if time.perf_counter() > deadline:
                break

    try:
        await asyncio.gather(*(worker(w) for w in range(args.workers)))
    finally:
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        await store.close()
    return {"pairs": len(pair_ns), "refused": refused, "elapsed": elapsed, "cpu": cpu,
            "pair_ns": pair_ns}  # fmt: skip


# -- the coordinator ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def populate(url: str, prefix: str, count: int) -> None:
    store = RedisAccountStore(url, prefix=prefix)
    await store.open()
    try:
        await store.add_person(Person(facility_id=FACILITY, pin=PIN))

        async def one(account_id: str, number: str, units: int) -> None:
            await store.create_account(
                Account(id=account_id, product=Product.ADVANCE_CONNECT, created_at=AT,
                        numbers=(number,))
            )  # fmt: skip
            await store.post(
                LedgerTransaction(
                    kind="deposit",
                    at=AT,
                    account_id=account_id,
                    idempotency_key=f"{account_id}-deposit",
                    legs=(Leg(Book.ACCOUNT, account_id, units), Leg(Book.FUNDS_IN, "card", -units)),
                    memo="card",
                )
            )

        await one("hot", HOT_NUMBER, HOT_DEPOSIT)
        spread = numbers(count)
        for start in range(0, count, 100):
            await asyncio.gather(
                *(one(f"acct-{n}", spread[n], SPREAD_DEPOSIT)
                  for n in range(start, min(count, start + 100)))
            )  # fmt: skip
    finally:
        await store.close()


async def verify(url: str, prefix: str) -> str:
    store = RedisAccountStore(url, prefix=prefix)
    await store.open()
    try:
        report = await verify_store(store)
    finally:
        await store.close()
    if not report.ok:
        raise SystemExit(f"ledger verification failed: {report.problems[:5]}")
    return f"verified: {report.accounts} accounts, {report.entries} ledger entries, balanced"


def redis_cpu(url: str) -> float:
    """CPU seconds the Redis server has used (user + system)."""

    async def read() -> float:
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            info = await client.info("cpu")
        finally:
            await client.aclose()
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    return asyncio.run(read())


def run_nodes(
    args: argparse.Namespace, url: str, prefix: str, nodes: int, workload: str, tmp: Path
) -> str:
    per_node = args.pairs // nodes
    outputs = [tmp / f"{workload}-{nodes}n{n}.json" for n in range(nodes)]
    server_cpu = redis_cpu(url)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--role", "node", "--url", url, "--prefix", prefix,
             "--node", str(n), "--workload", workload, "--accounts", str(args.accounts),
             "--pairs", str(per_node), "--seconds", str(args.seconds),
             "--workers", str(args.workers), "--nodes-total", str(nodes),
             "--result", str(outputs[n])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for n in range(nodes)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    for proc in procs:
        if proc.wait(timeout=args.seconds + 60) != 0:
            raise SystemExit(f"a node process failed with exit status {proc.returncode}")
    results = [json.loads(path.read_text()) for path in outputs]
    server_cpu = redis_cpu(url) - server_cpu
    latencies = sorted(ns for r in results for ns in r["pair_ns"])
    pairs = len(latencies)
    elapsed = max(r["elapsed"] for r in results)
    cpu = sum(r["cpu"] for r in results)

    def pct(q: float) -> float:
        return latencies[min(pairs - 1, int(q * pairs))] / 1e6 if pairs else float("nan")

    return (
        f"{nodes} node(s) x {args.workers} workers, {workload:6}: {pairs} pairs in {elapsed:.2f} s"
        f" = {pairs / elapsed:,.0f} pairs/s; p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms;"
        f" {cpu / max(pairs, 1) * 1e6:.0f} us node CPU and"
        f" {server_cpu / max(pairs, 1) * 1e6:.0f} us Redis CPU per pair"
        f" ({sum(r['refused'] for r in results)} refused)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("coordinator", "node"), default="coordinator",
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help="a loopback Redis URL (default: start one)")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--node", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", default="", help=argparse.SUPPRESS)
    parser.add_argument("--nodes-total", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, choices=(1, 2, 3, 4), default=None,
                        help="node processes (default: 1, then 2)")
    parser.add_argument("--workload", choices=("hot", "spread", "both"), default="both")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent calls per node")
    parser.add_argument("--pairs", type=int, default=20_000, help="pairs per run (bounded)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per run")
    args = parser.parse_args()
    if args.pairs <= 0 or args.seconds <= 0 or args.workers <= 0 or args.accounts <= 0:
        parser.error("--pairs, --seconds, --workers and --accounts must be positive")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.role == "node":
        # Through a file: a node's latencies outgrow a pipe the coordinator reads in turn.
        Path(args.result).write_text(json.dumps(asyncio.run(node_main(args))))
        return 0

    server: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        url = args.url
        if not url:
            redis_server = shutil.which("redis-server")
            if redis_server is None:
                raise SystemExit("redis-server is not installed; or pass --url")
            port = free_port()
            server = subprocess.Popen(
                [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                 "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            url = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.3)
        loopback_only(url)
        try:
            prefix = f"{args.prefix}-{int(time.time())}"
            t = time.perf_counter()
            asyncio.run(populate(url, prefix, args.accounts))
            print(f"redis {url}: {args.accounts + 1} accounts created in"
                  f" {time.perf_counter() - t:.1f} s")  # fmt: skip
            workloads = ("hot", "spread") if args.workload == "both" else (args.workload,)
            for nodes in (args.nodes,) if args.nodes else (1, 2):
                for workload in workloads:
                    print(run_nodes(args, url, prefix, nodes, workload, Path(tmp)), flush=True)
            print(asyncio.run(verify(url, prefix)))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
