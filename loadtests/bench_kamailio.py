"""Kamailio in front of two `ics serve` nodes on one Redis, beside one node direct: full-flow
calls stepped up to the highest rate with 0 failed calls, and the time from kill -9 of a
node to the first of its calls settled by the survivor.

Every call is the whole product path (screening, a hold in Redis, the carrier leg, the
prompt over RTP, key 1 by SIP INFO, bridge and recording, ``--talk`` seconds of talk,
BYE, settlement, CDR), placed by SIPp from the tx-state-prison trunk to the demo's
load-test AdvanceConnect number. Per step: calls, ok, failed, achieved rate and the CPU
time per call of the nodes (and of Kamailio's processes), from /proc. Then, through
Kamailio, ``--kill-calls`` long calls are connected, one node is killed with SIGKILL,
and the survivor's ``ics_node_calls_adopted_total`` is watched. Loopback only; bounded
in calls and time.

    python loadtests/bench_kamailio.py [--rates 10,20,40] [--step-seconds 8] [--talk 2]
                                       [--kill-calls 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "redis"))

from harness import TRUNKS, Service, Sipp, stat_totals  # noqa: E402
from kamailio_front import KAMAILIO, Kamailio, metric, prepare_front_node  # noqa: E402
from redis_serve import carrier  # noqa: E402
from redis_servers import SERVERS, unique_prefix  # noqa: E402

NUMBER = "+14155550100"  # the demo's load-test account


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def kamailio_pids(proxy: Kamailio) -> list[int]:
    """Kamailio's main process and the children it forked."""
    if proxy.process is None:
        return []
    main = proxy.process.pid
    pids = [main]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == main:
                pids.append(int(entry.name))
    return pids


@dataclass
class Step:
    setup: str
    rate: float
    calls: int
    ok: int
    failed: int
    seconds: float
    node_cpu: float
    proxy_cpu: float

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.ok == self.calls

    def line(self) -> str:
        per_call = 1000 / max(1, self.ok)
        return (f"{self.setup:>9} {self.rate:6g} {self.calls:6d} {self.ok:5d} {self.failed:6d}"
                f" {self.ok / self.seconds:8.1f} {self.node_cpu * per_call:13.1f}"
                f" {self.proxy_cpu * per_call:14.1f}")


def run_step(setup: str, remote: str, scenario: str, nodes: list[Service], proxy: Kamailio | None,
             work: Path, rate: float, seconds: float, talk: float) -> Step:
    calls = max(1, int(rate * seconds))
    node_pids = [svc.process.pid for svc in nodes if svc.process is not None]
    proxy_pids = kamailio_pids(proxy) if proxy is not None else []
    before = cpu_seconds(node_pids), cpu_seconds(proxy_pids)
    started = time.monotonic()
    sipp = Sipp(work, f"{setup}-{rate:g}", scenario, local_ip=TRUNKS["tx-state-prison"],
                remote=remote, calls=calls, timeout_s=seconds + talk + 40,
                keys={"pin": "100001"}, sets={"talk_ms": int(talk * 1000)}, service=NUMBER,
                extra=["-r", f"{rate:g}", "-l", str(calls)], trace_msg=False)
    result = sipp.run()
    elapsed = time.monotonic() - started
    totals = stat_totals(result.stat_csv)
    return Step(setup, rate, calls, totals.get("SuccessfulCall(C)", 0),
                totals.get("FailedCall(C)", 0), elapsed,
                cpu_seconds(node_pids) - before[0], cpu_seconds(proxy_pids) - before[1])


def step_up(setup: str, remote: str, scenario: str, nodes: list[Service],
            proxy: Kamailio | None, work: Path, args: argparse.Namespace) -> list[Step]:
    steps = []
    for rate in args.rates:
        step = run_step(setup, remote, scenario, nodes, proxy, work, rate, args.step_seconds,
                        args.talk)
        print(step.line(), flush=True)
        steps.append(step)
        if not step.passed:
            break
        time.sleep(args.talk + 2)  # the step's calls are settled before the next
    return steps


def kill_to_adoption(nodes: list[Service], proxy: Kamailio, work: Path,
                     calls: int) -> tuple[int, float | None]:
    """Connect ``calls`` long calls, kill -9 the first node: seconds to its first adopted call."""
    sipp = Sipp(work, "kill", "facility_call_routed", local_ip=TRUNKS["tx-state-prison"],
                remote=proxy.address, calls=calls, timeout_s=60, keys={"pin": "100001"},
                sets={"talk_ms": 30_000}, service=NUMBER,
                extra=["-r", "5", "-l", str(calls)], trace_msg=False).start()
    try:
        def up() -> list[float]:
            return [metric(svc, "ics_node_calls_connected", node=f"node{n}")
                    for n, svc in enumerate(nodes, 1)]

        deadline = time.monotonic() + 60
        while (sum(up()) < calls or min(up()) < 1) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # every call has heartbeated some talk
        on_dead = int(up()[0])
        dead, survivor = nodes
        assert dead.process is not None
        dead.process.kill()
        killed = time.monotonic()
        dead.process.wait()
        while time.monotonic() - killed < 30:
            if metric(survivor, "ics_node_calls_adopted_total", node="node2",
                      from_node="node1") >= 1:
                return on_dead, time.monotonic() - killed
            time.sleep(0.05)
        return on_dead, None
    finally:
        sipp.kill()


def front(root: Path, url: str, started: list[Service],
          peers: list[Sipp]) -> tuple[list[Service], Kamailio]:
    """Two nodes on a fresh key prefix, their called parties, and Kamailio before them."""
    prefix = unique_prefix()
    nodes = [prepare_front_node(root / f"node{n}", f"node{n}", url, prefix, {}) for n in (1, 2)]
    for svc in nodes:
        svc.start()
        started.append(svc)
    peers += [carrier(svc, root, f"carrier{n}", 100_000) for n, svc in enumerate(nodes, 1)]
    proxy = Kamailio(root / "kamailio", [svc.ports.sip for svc in nodes]).start()
    time.sleep(1.5)  # the first probes mark both nodes up
    return nodes, proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,20,40",
                        help="call rates to step through, calls/s (default 10,20,40)")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--talk", type=float, default=2.0, help="talk seconds per call")
    parser.add_argument("--kill-calls", type=int, default=6,
                        help="calls connected when a node is killed (default 6)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if any(not 0 < r <= 200 for r in args.rates) or not 0 < args.step_seconds <= 60:
        print("rates must be within (0, 200] calls/s, steps at most 60 s", file=sys.stderr)
        return 2
    if shutil.which("sipp") is None or KAMAILIO is None:
        print("sipp and kamailio are needed (scripts/test.sh installs them)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-kamailio-"))
    url = SERVERS.single().url
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("    setup   rate  calls    ok failed achieved  node cpu ms/call  proxy cpu ms/call")
    summary: dict[str, object] = {}
    started: list[Service] = []
    peers: list[Sipp] = []
    proxy: Kamailio | None = None
    try:
        # One node, the facility straight at it.
        direct = prepare_front_node(work / "direct", "direct", url, unique_prefix(), {})
        direct.start()
        started.append(direct)
        peers.append(carrier(direct, work, "carrier-direct", 100_000))
        steps = step_up("direct", f"127.0.0.1:{direct.ports.sip}", "facility_call", [direct],
                        None, work, args)
        best = max((s.rate for s in steps if s.passed), default=None)
        summary["direct_best_rate_ok"] = best
        direct.stop()
        started.remove(direct)

        # Two nodes on one Redis behind Kamailio.
        nodes, proxy = front(work / "stepped", url, started, peers)
        steps = step_up("kamailio", proxy.address, "facility_call_routed", nodes, proxy, work,
                        args)
        summary["kamailio_best_rate_ok"] = max((s.rate for s in steps if s.passed),
                                               default=None)
        # The kill on a fresh pair: nothing left over from the steps' last calls.
        for svc in nodes:
            svc.stop()
            started.remove(svc)
        proxy.stop()
        nodes, proxy = front(work / "killed", url, started, peers)
        on_dead, seconds = kill_to_adoption(nodes, proxy, work, args.kill_calls)
        summary["calls_on_killed_node"] = on_dead
        summary["kill_to_first_adopted_settlement_s"] = (
            round(seconds, 2) if seconds is not None else None)
        print(f"kill -9 of node1 with {on_dead} of {args.kill_calls} calls connected on it: "
              f"first call settled by node2 after "
              + (f"{seconds:.2f} s" if seconds is not None else "no adoption within 30 s"))
    finally:
        for sipp in peers:
            sipp.kill()
        if proxy is not None:
            proxy.stop()
        for svc in started:
            if svc.process is not None and svc.process.poll() is None:
                svc.stop()
        SERVERS.stop()
    summary["load_average_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary))
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
