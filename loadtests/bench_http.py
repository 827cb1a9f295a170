"""HTTP throughput of the rate calculator: `wrk` against `ics api` on loopback.

Starts `ics api` on a free 127.0.0.1 port with a copy of the demo config, warms
it up, then runs `wrk` for a fixed time against ``GET /v1/quote`` for one
call repeated (answered from the per-minute quote cache), for a distinct
random call per request (``quote_distinct.lua``: priced every time), and
``GET /healthz`` (the server's floor), and prints requests/s and latency
percentiles, and the server's own CPU time, from which requests per
CPU-second: a figure that other load on the machine disturbs far less than
requests per wall-clock second. Bounded: each run lasts ``--duration`` seconds; traffic stays on
loopback. Needs Debian's ``wrk``.

    python loadtests/bench_http.py [--duration 20] [--connections 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUOTE = "/v1/quote?facility=tx-state-prison&number=%2B15125550100&minutes=15"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, duration: int, connections: int, threads: int,
            script: Path | None = None) -> dict[str, float]:
    extra = ["-s", str(script)] if script else []
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "--timeout", "5s", *extra, url],
        capture_output=True, text=True, check=True, timeout=duration + 30,
    ).stdout
    result: dict[str, float] = {}
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            result[f"p{pct}"] = to_ms(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = float(sum(int(n) for n in re.findall(r"\d+", m.group(1)))) if m \
        else 0.0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 300:
        parser.error("--duration must be 1..300 seconds")

    with tempfile.TemporaryDirectory() as tmp:
        configs = Path(tmp) / "configs"
        shutil.copytree(REPO / "configs", configs, ignore=shutil.ignore_patterns("var"))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "ics.cli", "api", "--config", str(configs / "demo.toml"),
             "--listen", f"127.0.0.1:{port}"],
            cwd=tmp, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        print("ics api did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            print(f"ics api pid {server.pid} on {base}; wrk -t{args.threads} "
                  f"-c{args.connections} -d{args.duration}s; cores {os.cpu_count()}, "
                  f"load average before {os.getloadavg()[0]:.2f}")
            run_wrk(base + QUOTE, 3, args.connections, args.threads)  # warm-up
            runs = (("quote, same call", QUOTE, None),
                    ("quote, distinct", "/", REPO / "loadtests" / "quote_distinct.lua"),
                    ("healthz", "/healthz", None))
            for name, path, script in runs:
                cpu_before = cpu_seconds(server.pid)
                r = run_wrk(base + path, args.duration, args.connections, args.threads, script)
                cpu = cpu_seconds(server.pid) - cpu_before
                per_cpu_second = r["requests"] / cpu if cpu else 0.0
                print(f"{name:17} {r['rps']:7.0f} req/s   p50 {r.get('p50', 0):6.2f} ms   "
                      f"p90 {r.get('p90', 0):6.2f} ms   p99 {r.get('p99', 0):6.2f} ms   "
                      f"requests {r['requests']:.0f}   non-2xx {r['non_2xx']:.0f}   "
                      f"socket errors {r['socket_errors']:.0f}   "
                      f"server CPU {cpu:.1f} s = {per_cpu_second:.0f} req per CPU-second")
            print(f"load average after {os.getloadavg()[0]:.2f}")
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
