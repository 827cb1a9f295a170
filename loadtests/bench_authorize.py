"""Benchmark: authorize + settle pairs per second and latency on an account store.

Two runs, both bounded by a pair count and a time limit:

* ``single``: one coroutine, pairs spread over ``--accounts`` AdvanceConnect
  accounts (10,000 by default), one pair after another;
* ``hot``: ``--workers`` concurrent asyncio workers (8) hitting the same
  ``--hot-accounts`` accounts (10), so every hold and settle contends;
* ``concurrent``: ``--concurrency`` calls in progress at once (32) in the one
  process, spread over all the accounts, as in a busy controller: on SQLite
  the writes queued meanwhile share one commit (the writes-per-commit figure).

Each pair is the controller's real path: screening, funding order, pricing
with the demo tariff of tx-state-prison, an atomic hold, then settlement of a
random talk time. After each run the ledger is checked: every account's
deposits equal its balance plus its charges.

    python loadtests/bench_authorize.py --store sqlite
    python loadtests/bench_authorize.py --store sqlite --synchronous FULL
    python loadtests/bench_authorize.py --rounds 5   # medians, for a busy machine
    python loadtests/bench_authorize.py --against a5e6e53 --rounds 3   # before/after

``--against REV`` measures the accounts code of git revision ``REV`` (checked
out in a temporary worktree) and of this tree with this same script, one
subprocess per round, alternating old and new so that both see the same load
on the machine, and prints both sets of medians side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
#: Whose accounts code is measured: this tree, or (``--against``) an older checkout.
ROOT = Path(os.environ.get("ICS_BENCH_CODE", HERE)).resolve()
sys.path.insert(0, str(ROOT))

from accounts import (  # noqa: E402
    Account,
    AccountService,
    AccountsPolicy,
    AccountStore,
    Authorization,
    Book,
    FacilityPolicy,
    LedgerTransaction,
    Leg,
    Person,
    SqliteAccountStore,
)
from rating import InvalidNumber, Product, classify_number  # noqa: E402

try:
    from settings.config import load_config
except ImportError:  # a checkout from before the settings package (``--against``)
    from ics.config import load_config  # type: ignore[no-redef]

FACILITY = "tx-state-prison"
PIN = "100001"
DEPOSIT_UNITS = 100_000_000  # $10,000.00 per account: no run drains one
# A Tuesday, 14:00 in Huntsville: inside calling hours.
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


def numbers(count: int, exchanges: tuple[str, ...] = ("555", "556", "557", "558")) -> list[str]:
    """``count`` distinct valid Texas numbers (+1 512 555 xxxx, then other exchanges)."""
    found: list[str] = []
    for exchange in exchanges:
        for line in range(10_000):
            candidate = f"+1512{exchange}{line:04d}"
            try:
                classify_number(candidate, "TX")
            except InvalidNumber:
                continue
            found.append(candidate)
            if len(found) == count:
                return found
    raise SystemExit(f"could not find {count} valid numbers")


async def open_store(args: argparse.Namespace, directory: Path) -> AccountStore:
    if args.store == "sqlite":
        store: AccountStore = SqliteAccountStore(
            directory / "bench.sqlite3", synchronous=args.synchronous
        )
    else:
        import accounts

        redis_store = getattr(accounts, "RedisAccountStore", None)
        if redis_store is None:
            raise SystemExit("--store redis: this build has no Redis account store")
        store = redis_store(args.url)
    await store.open()
    return store


async def redis_usage(store: AccountStore) -> tuple[float, int] | None:
    """The Redis server's CPU seconds and this node's requests to it so far (Redis only)."""
    client = getattr(store, "client", None)
    if client is None or not hasattr(store, "_lane"):
        return None
    info = await client.info("cpu")
    lane = store._lane
    return (
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        lane.requests if lane is not None else 0,
    )


def commit_usage(store: AccountStore) -> tuple[int, int] | None:
    """The SQLite store's commits and writes so far (how many writes share a commit)."""
    if not isinstance(store, SqliteAccountStore):
        return None
    return store.writer.commits, store.writer.writes


def commit_line(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    if before is None or after is None or after[0] == before[0]:
        return ""
    per = (after[1] - before[1]) / (after[0] - before[0])
    return f"  sqlite    {per:.1f} writes per commit\n"


def redis_line(before: tuple[float, int] | None, after: tuple[float, int] | None, run: Run) -> str:
    if before is None or after is None or not run.pair_ns:
        return ""
    pairs = len(run.pair_ns) + run.refused
    return (
        f"  redis     {(after[0] - before[0]) / pairs * 1e6:.0f} us Redis CPU per pair,"
        f" {(after[1] - before[1]) / pairs:.2f} requests per pair\n"
    )


async def populate(store: AccountStore, accounts: list[str]) -> None:
    await store.add_person(Person(facility_id=FACILITY, pin=PIN))
    for n, number in enumerate(accounts):
        account_id = f"bench-{n}"
        await store.create_account(
            Account(
                id=account_id,
                product=Product.ADVANCE_CONNECT,
                created_at=AT,
                numbers=(number,),
            )
        )
        await store.post(
            LedgerTransaction(
                kind="deposit",
                at=AT,
                account_id=account_id,
                idempotency_key=f"bench-dep-{n}",
                legs=(
                    Leg(Book.ACCOUNT, account_id, DEPOSIT_UNITS),
                    Leg(Book.FUNDS_IN, "card", -DEPOSIT_UNITS),
                ),
            )
        )


@dataclass
class Run:
    name: str
    pair_ns: list[int] = field(default_factory=list)
    authorize_ns: list[int] = field(default_factory=list)
    settle_ns: list[int] = field(default_factory=list)
    refused: int = 0
    elapsed: float = 0.0
    #: CPU seconds this process used (less sensitive than wall time to other load).
    cpu: float = 0.0
    #: Of which the event loop's thread (the rest: the store's checkpoint thread).
    loop_cpu: float = 0.0

    def percentile(self, q: float, values: list[int] | None = None) -> float:
        """The ``q`` quantile of pair (or given) latencies, in milliseconds."""
        chosen = self.pair_ns if values is None else values
        if not chosen:
            return float("nan")
        ordered = sorted(chosen)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    def report(self) -> str:
        def pct(values: list[int], q: float) -> float:
            return self.percentile(q, values)

        pairs = len(self.pair_ns)
        rate = pairs / self.elapsed if self.elapsed else 0.0
        lines = [
            f"{self.name}: {pairs} authorize+settle pairs in {self.elapsed:.2f} s"
            f" = {rate:,.0f} pairs/s ({self.refused} refused);"
            f" {self.cpu / max(pairs, 1) * 1e6:.0f} us CPU per pair"
            f" ({self.loop_cpu / max(pairs, 1) * 1e6:.0f} on the event loop's thread)"
            f" = {pairs / self.cpu if self.cpu else 0:,.0f} pairs per CPU-second",
            f"  pair      p50 {pct(self.pair_ns, 0.50):.3f} ms"
            f"  p99 {pct(self.pair_ns, 0.99):.3f} ms"
            f"  mean {statistics.fmean(self.pair_ns) / 1e6 if pairs else float('nan'):.3f} ms",
            f"  authorize p50 {pct(self.authorize_ns, 0.50):.3f} ms"
            f"  p99 {pct(self.authorize_ns, 0.99):.3f} ms",
            f"  settle    p50 {pct(self.settle_ns, 0.50):.3f} ms"
            f"  p99 {pct(self.settle_ns, 0.99):.3f} ms",
        ]
        return "\n".join(lines)


async def one_pair(
    service: AccountService, run: Run, call_id: str, number: str, rng: random.Random
) -> None:
    t0 = time.perf_counter_ns()
    result = await service.authorize(
        _request(call_id, number),
    )
    t1 = time.perf_counter_ns()
    if not isinstance(result, Authorization):
        run.refused += 1
        return
    talked = rng.randint(0, result.max_seconds)
    await service.settle(result.reservation_id, talked, AT + timedelta(seconds=talked))
    t2 = time.perf_counter_ns()
    run.authorize_ns.append(t1 - t0)
    run.settle_ns.append(t2 - t1)
    run.pair_ns.append(t2 - t0)


def _request(call_id: str, number: str) -> Any:
    from accounts import CallRequest

    return CallRequest(call_id=call_id, facility_id=FACILITY, pin=PIN, dialled=number, at=AT)


async def single(
    service: AccountService,
    accounts: list[str],
    pairs: int,
    limit: float,
    seed: int,
    prefix: str = "s",
) -> Run:
    rng = random.Random(seed)
    run = Run(f"single process, {len(accounts)} accounts")
    cpu, loop_cpu = time.process_time(), time.thread_time()
    start = time.perf_counter()
    deadline = start + limit
    for n in range(pairs):
        await one_pair(service, run, f"{prefix}{n}", rng.choice(accounts), rng)
        if time.perf_counter() > deadline:
            break
    run.elapsed = time.perf_counter() - start
    run.cpu = time.process_time() - cpu
    run.loop_cpu = time.thread_time() - loop_cpu
    return run


async def hot(
    service: AccountService,
    accounts: list[str],
    workers: int,
    pairs: int,
    limit: float,
    seed: int,
    prefix: str = "h",
    name: str | None = None,
) -> Run:
    run = Run(name or f"{workers} concurrent workers, {len(accounts)} shared accounts")
    cpu, loop_cpu = time.process_time(), time.thread_time()
    start = time.perf_counter()
    deadline = start + limit
    per_worker = pairs // workers

    async def worker(w: int) -> None:
        rng = random.Random(seed * 100 + w)
        for n in range(per_worker):
            await one_pair(service, run, f"{prefix}{w}-{n}", rng.choice(accounts), rng)
            # Let the other workers in between pairs as well as at the store.
            await asyncio.sleep(0)
            if time.perf_counter() > deadline:
                break

    await asyncio.gather(*(worker(w) for w in range(workers)))
    run.elapsed = time.perf_counter() - start
    run.cpu = time.process_time() - cpu
    run.loop_cpu = time.thread_time() - loop_cpu
    return run


def median_line(name: str, runs: list[Run]) -> str:
    """Medians over rounds: other load on the machine moves single rounds a lot."""
    if not runs:
        return f"no {name} rounds"
    rates = [len(r.pair_ns) / r.elapsed for r in runs if r.elapsed]
    p50 = [r.percentile(0.50) for r in runs]
    p99 = [r.percentile(0.99) for r in runs]
    cpu = [r.cpu / max(len(r.pair_ns), 1) * 1e6 for r in runs]
    return (
        f"median of {len(runs)} {name} rounds: {statistics.median(rates):,.0f} pairs/s,"
        f" pair p50 {statistics.median(p50):.3f} ms, p99 {statistics.median(p99):.3f} ms,"
        f" {statistics.median(cpu):.0f} us CPU per pair"
    )


def machine_line(kind: str, run: Run) -> str:
    """One line that ``--against`` reads back: kind, pairs/s, p99 ms, CPU us per pair."""
    pairs = len(run.pair_ns)
    rate = pairs / run.elapsed if run.elapsed else 0.0
    return (f"RESULT {kind} {rate:.1f} {run.percentile(0.99):.4f} "
            f"{run.cpu / max(pairs, 1) * 1e6:.1f}")


def against(args: argparse.Namespace, argv: list[str]) -> int:
    """Old code (``args.against``) and this tree's, alternating, one round per process."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="bench-against-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "-q", str(tree),
                    args.against], check=True)
    passed: list[str] = []
    skip = False
    for arg in argv:  # everything but --against, --rounds and --seed goes to each round
        if skip:
            skip = False
        elif arg in ("--against", "--rounds", "--seed"):
            skip = True
        elif not arg.startswith(("--against=", "--rounds=", "--seed=")):
            passed.append(arg)
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {"old": {}, "new": {}}
    try:
        for r in range(args.rounds):
            for label, code in (("old", tree), ("new", HERE)):
                env = {**os.environ, "ICS_BENCH_CODE": str(code)}
                out = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), *passed,
                     "--seed", str(args.seed + r)],
                    env=env, capture_output=True, text=True, check=True).stdout
                for line in out.splitlines():
                    if line.startswith("RESULT "):
                        _, kind, rate, p99, cpu = line.split()
                        results[label].setdefault(kind, []).append(
                            (float(rate), float(p99), float(cpu)))
                print(f"round {r + 1} {label} ({args.against if label == 'old' else 'this tree'})"
                      f": {out.splitlines()[-1] if out else ''}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(tree)],
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedians of {args.rounds} round(s) each, old = {args.against}, new = this tree,"
          f" store {args.store}, run alternately")
    print(f"{'run':<10} {'old pairs/s':>12} {'new pairs/s':>12} {'old p99 ms':>11}"
          f" {'new p99 ms':>11} {'old us CPU':>11} {'new us CPU':>11}")
    for kind in results["new"]:
        old, new = results["old"].get(kind, []), results["new"][kind]
        if not old:
            continue
        med = [statistics.median(x) for x in zip(*old, strict=True)]
        nmed = [statistics.median(x) for x in zip(*new, strict=True)]
        print(f"{kind:<10} {med[0]:>12,.0f} {nmed[0]:>12,.0f} {med[1]:>11.3f} {nmed[1]:>11.3f}"
              f" {med[2]:>11.0f} {nmed[2]:>11.0f}")
    return 0


async def check_ledger(store: AccountStore, count: int) -> None:
    for n in range(count):
        account = await store.get_account(f"bench-{n}")
        charged = await store.book_balance(Book.HOLD, account.id)
        assert charged == account.held_units == 0, account
        assert account.balance_units == await store.book_balance(Book.ACCOUNT, account.id)
        assert 0 <= account.balance_units <= DEPOSIT_UNITS, account
    totals = await store.book_totals()
    assert sum(totals.values()) == 0, "ledger does not balance"


async def main_async(args: argparse.Namespace) -> int:
    config = load_config(ROOT / "configs" / "demo.toml")
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    with tempfile.TemporaryDirectory(prefix="bench-authorize-") as tmp:
        store = await open_store(args, Path(tmp))
        try:
            service = AccountService(store, facilities, AccountsPolicy())
            t = time.perf_counter()
            all_numbers = numbers(args.accounts)
            await populate(store, all_numbers)
            print(
                f"store {args.store}"
                + (f" (synchronous={args.synchronous})" if args.store == "sqlite" else "")
                + f": {args.accounts} accounts created in {time.perf_counter() - t:.1f} s"
            )
            # Warm the number classification cache and the code paths.
            await single(service, all_numbers[:50], 50, args.seconds, args.seed, "warm")
            singles: list[Run] = []
            hots: list[Run] = []
            spread: list[Run] = []
            for r in range(args.rounds):
                usage = await redis_usage(store)
                first = await single(
                    service, all_numbers, args.pairs, args.seconds, args.seed + r, f"s{r}-"
                )
                print(first.report())
                print(redis_line(usage, await redis_usage(store), first), end="")
                singles.append(first)
                if args.concurrency:
                    usage = await redis_usage(store)
                    commits = commit_usage(store)
                    third = await hot(
                        service,
                        all_numbers,
                        args.concurrency,
                        args.pairs,
                        args.seconds,
                        args.seed + r,
                        f"c{r}-",
                        f"single process, {args.concurrency} calls at once,"
                        f" {len(all_numbers)} accounts",
                    )
                    print(third.report())
                    print(commit_line(commits, commit_usage(store)), end="")
                    print(redis_line(usage, await redis_usage(store), third), end="")
                    spread.append(third)
                usage = await redis_usage(store)
                commits = commit_usage(store)
                second = await hot(
                    service,
                    all_numbers[: args.hot_accounts],
                    args.workers,
                    args.pairs,
                    args.seconds,
                    args.seed + r,
                    f"h{r}-",
                )
                print(second.report())
                print(commit_line(commits, commit_usage(store)), end="")
                print(redis_line(usage, await redis_usage(store), second), end="")
                hots.append(second)
            for kind, runs in (("single", singles), ("concurrent", spread), ("hot", hots)):
                for run in runs:
                    print(machine_line(kind, run))
            if args.rounds > 1:
                print(median_line("single", singles))
                if spread:
                    print(median_line("concurrent", spread))
                print(median_line("hot", hots))
            await check_ledger(store, args.accounts)
            print("ledger check: balanced, no holds left, no account below zero")
        finally:
            await store.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15",
                        help="Redis URL for --store redis (loopback only)")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="NORMAL")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--hot-accounts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="calls at once in the concurrent run over all accounts (0: skip it)")
    parser.add_argument("--pairs", type=int, default=20_000, help="pairs per run (bounded)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat both runs and print their medians (bounded)")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="also measure git revision REV's accounts code, alternately")
    args = parser.parse_args()
    if args.accounts < args.hot_accounts or args.accounts <= 0:
        parser.error("--accounts must be positive and at least --hot-accounts")
    if args.pairs <= 0 or args.seconds <= 0 or args.workers <= 0 or args.concurrency < 0:
        parser.error("--pairs, --seconds and --workers must be positive")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    if args.against:
        return against(args, sys.argv[1:])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
