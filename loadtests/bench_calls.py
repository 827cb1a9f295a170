"""Full-flow call benchmark: SIPp facility trunk and SIPp called party against a real `ics serve`.

Every call is the whole product path: INVITE from the tx-state-prison trunk
(127.0.0.11), screening, authorization with a reservation, the carrier leg,
the acceptance prompt played over RTP (the called party echoes it back), key 1
by SIP INFO about 1 s after answering, bridge and recording, 5 s of talk, BYE,
settlement and a CDR. The called numbers are AdvanceConnect accounts seeded
into a private copy of the demo configs (one per number, so every carrier-leg
INVITE is matched exactly to the facility INVITE that caused it).

The call rate is stepped up; each step runs ``--step-seconds`` of calls and is
judged by what both SIPp peers saw. Printed per step: calls, failed calls,
retransmissions (% of SIP messages SIPp sent), post-dial delay p50/p99 twice
(facility INVITE sent -> carrier INVITE received on the wall clock of both SIPp
processes, and INVITE in -> INVITE out as the controller logs it per call),
peak calls in progress. Then the highest step with 0 failed calls
and < 1 % retransmissions, and a hold phase (longer talk) for the most
concurrent connected calls. Everything runs on loopback and is bounded in
calls and time.

    python loadtests/bench_calls.py [--rates 20,50,100,150,200] [--step-seconds 10]
                                    [--talk 5] [--hold-rate 100] [--hold-talk 15]
                                    [--session-timer SECONDS]

``--session-timer`` runs every call with RFC 4028 session timers of that many
seconds on both legs (the controller refreshes each leg once, by re-INVITE, at
half the interval; the SIPp peers answer it): keep the talk under the interval.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness import (
    TRUNKS,
    Service,
    ServicePorts,
    Sipp,
    SippResult,
    stat_totals,
)

FIRST_NUMBER = 4155550200  # +1 415 555 0200 onwards (California: interstate from Texas)
#: SIP messages each side sends per completed call (facility: INVITE, ACK, BYE;
#: carrier: 100, 180, 200, INFO, 200 to BYE).
SENT_PER_CALL = {"facility": 3, "carrier": 5}
_TS = re.compile(r"t=\S+\s+\S+\s+(\d+\.\d+)")


def numbers(count: int) -> list[str]:
    return [f"+1{FIRST_NUMBER + i}" for i in range(count)]


def prepare(root: Path, count: int, rtp_ports: int, session_timer: int = 0,
            media_timeout: float = 0.0) -> Service:
    # Other processes on a shared machine hold a few ports here and there: the
    # controller skips a pair it cannot bind, so a range that is 95 % free will do.
    ports = ServicePorts.pick(rtp_size=rtp_ports, rtp_within=(21000, 32700), rtp_min_free=0.95)
    overrides = {("sip", "shutdown_grace_seconds"): "5"}
    if media_timeout:
        # The benchmark's facility sends no RTP: calls longer than the inactivity
        # timeout would be ended as "no media from a party".
        overrides[("media", "inactivity_timeout_seconds")] = str(media_timeout)
    if session_timer:
        overrides[("sip", "session_expires_seconds")] = str(session_timer)
        overrides[("sip", "min_se_seconds")] = str(min(session_timer, 90))
    svc = Service.prepare(root, ports=ports, service=overrides)
    accounts = "".join(
        f'\n[[accounts]]\nid = "ac-bench-{n[1:]}"\nproduct = "advance_connect"\n'
        f'numbers = ["{n}"]\nholder = "Benchmark"\ndeposit = "300.00"\n'
        f'deposit_method = "card"\n'
        for n in numbers(count)
    )
    svc.edit("seed/demo.toml", lambda text: text + accounts)
    return svc


@dataclass
class Step:
    rate: float
    calls: int
    talk: float
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    sent: int = 0
    achieved_rate: float = 0.0
    pdd_ms: list[float] | None = None
    #: The controller's own post-dial delay per call (its call outcome log lines).
    pdd_ctl_ms: list[float] | None = None
    unmatched: int = 0
    peak_sipp: int = 0
    peak_controller: int = 0
    seconds: float = 0.0
    #: CPU seconds (user + system) the controller process spent during the step.
    cpu_s: float = 0.0
    #: The controller's event loop lag summaries logged during the step (windows with a stall).
    loop_lag: list[str] | None = None

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000.0 * self.cpu_s / self.calls if self.calls else float("nan")

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retrans / self.sent if self.sent else 0.0

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and self.retrans_pct < 1.0

    def pdd(self, q: float, *, controller: bool = False) -> float:
        data = sorted((self.pdd_ctl_ms if controller else self.pdd_ms) or [])
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))]


def active_calls(svc: Service) -> int:
    """Calls in progress, from the controller's Prometheus gauge."""
    try:
        with urllib.request.urlopen(svc.http_base + "/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return -1
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ics_active_calls"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def process_cpu_seconds(svc: Service) -> float:
    """User + system CPU seconds of the controller process so far (Linux /proc)."""
    if svc.process is None:
        return 0.0
    try:
        fields = Path(f"/proc/{svc.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_dial_delays(facility_log: str, carrier_log: str) -> tuple[list[float], int]:
    """Match each carrier INVITE to its facility INVITE by number and order; delays in ms."""
    sent: dict[str, list[float]] = defaultdict(list)
    for line in facility_log.splitlines():
        if line.startswith("sent "):
            m = _TS.search(line)
            number = line.rsplit("number=", 1)[-1].strip()
            if m:
                sent[number].append(float(m.group(1)))
    received: dict[str, list[float]] = defaultdict(list)
    for line in carrier_log.splitlines():
        if line.startswith("invite "):
            m = _TS.search(line)
            ruri = re.search(r"ruri=sip:([^@]+)@", line)
            if m and ruri:
                received[ruri.group(1)].append(float(m.group(1)))
    delays: list[float] = []
    unmatched = 0
    for number, times in received.items():
        out = sorted(sent.get(number, []))
        for t in sorted(times):
            # The latest facility INVITE for this number sent before the carrier saw one.
            i = bisect.bisect_right(out, t) - 1
            if i < 0:
                unmatched += 1
                continue
            delays.append((t - out[i]) * 1000.0)
            out.pop(i)
    return delays, unmatched


def wait_idle(svc: Service, timeout: float = 120.0) -> int:
    """Until the controller has no call in progress (the last step drained); calls left."""
    deadline = time.monotonic() + timeout
    while (left := active_calls(svc)) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def controller_delays(svc: Service, sipp_pid: int) -> list[float]:
    """``post_dial_delay_ms`` of this SIPp run's calls, from the controller's outcome lines."""
    suffix = f"-{sipp_pid}@{TRUNKS['tx-state-prison']}"
    out = []
    for line in svc.outcome_lines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        delay = doc.get("post_dial_delay_ms")
        if str(doc.get("call_id", "")).endswith(suffix) and delay is not None:
            out.append(float(delay))
    return out


def tally(step: Step, svc: Service, started: float, cpu_before: float, fac: SippResult,
          car: SippResult, calls: int) -> None:
    """A finished step's time, controller CPU, and what the two SIPp processes counted."""
    step.seconds = time.monotonic() - started
    step.cpu_s = process_cpu_seconds(svc) - cpu_before
    ft, ct = stat_totals(fac.stat_csv), stat_totals(car.stat_csv)
    step.ok = ft.get("SuccessfulCall(C)", 0)
    step.failed = ft.get("FailedCall(C)", 0) + ct.get("FailedCall(C)", 0)
    if fac.returncode not in (0, 1) and step.failed == 0:
        step.failed = calls - step.ok  # SIPp itself gave up (timeout, fatal error)
    step.retrans = ft.get("Retransmissions(C)", 0) + ct.get("Retransmissions(C)", 0)


def run_step(svc: Service, workdir: Path, numbers_csv: Path, rate: float, seconds: float,
             talk: float, name: str, echo: bool = True, session_timer: int = 0) -> Step:
    calls = max(1, int(rate * seconds))
    step = Step(rate=rate, calls=calls, talk=talk)
    bound = seconds + talk + 45
    # With session timers the facility talks on after the refresh at half the interval.
    talk_ms = int((talk - session_timer / 2) * 1000) if session_timer else int(talk * 1000)
    carrier = Sipp(workdir, f"{name}-carrier",
                   "carrier_session" if session_timer else "carrier_info", local_ip="127.0.0.1",
                   calls=calls, timeout_s=bound,
                   keys={"digit": "1", "interval": str(session_timer)},
                   sets={"ring_ms": 0, "dtmf_ms": 1000},
                   extra=(["-rtp_echo"] if echo else []) + ["-max_socket", "50000"],
                   trace_msg=False)
    i = carrier.cmd.index("-p")
    carrier.cmd[i + 1] = str(svc.ports.carrier)
    carrier.sip_port = svc.ports.carrier
    facility = Sipp(workdir, f"{name}-facility",
                    "facility_bench_session" if session_timer else "facility_bench",
                    local_ip=TRUNKS["tx-state-prison"], remote=f"127.0.0.1:{svc.ports.sip}",
                    calls=calls, timeout_s=bound, keys={"pin": "100001"},
                    sets={"talk_ms": talk_ms},
                    extra=["-inf", str(numbers_csv), "-r", f"{rate:g}", "-l", "20000",
                           "-max_socket", "50000"],
                    trace_msg=False)
    peaks = {"controller": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peaks["controller"] = max(peaks["controller"], active_calls(svc))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    left = wait_idle(svc)
    if left > 0:
        print(f"warning: {left} calls still in progress before step {name}", flush=True)
    started = time.monotonic()
    cpu_before = process_cpu_seconds(svc)
    log_before = len(svc.log())
    carrier.start().wait_listening()
    try:
        sampler.start()
        facility.start()
        assert facility.process is not None
        facility_pid = facility.process.pid
        fac = facility.wait()
        car = carrier.wait(extra=10)
    finally:
        stop.set()
        sampler.join(2)
        facility.kill()
        carrier.kill()
    tally(step, svc, started, cpu_before, fac, car, calls)
    # A refreshed call: each side also answers the refresh (200).
    step.sent = calls * (SENT_PER_CALL["facility"] + SENT_PER_CALL["carrier"]
                         + (2 if session_timer else 0))
    rows = [r.split(";") for r in fac.stat_csv.splitlines()[1:] if r.strip()]
    header = fac.stat_csv.splitlines()[0].split(";") if fac.stat_csv else []
    if "CurrentCall" in header:
        col = header.index("CurrentCall")
        step.peak_sipp = max((int(r[col]) for r in rows if len(r) > col and r[col].isdigit()),
                             default=0)
    step.peak_controller = peaks["controller"]
    step.pdd_ms, step.unmatched = post_dial_delays(fac.logs, car.logs)
    step.pdd_ctl_ms = controller_delays(svc, facility_pid)
    step.loop_lag = [line.split("event loop lag ", 1)[1]
                     for line in svc.log()[log_before:].splitlines() if "event loop lag " in line]
    send_times = [float(m.group(1)) for m in _TS.finditer(fac.logs)]
    if len(send_times) > 1:
        step.achieved_rate = (len(send_times) - 1) / (max(send_times) - min(send_times))
    return step


def report(step: Step) -> None:
    verdict = "ok" if step.passed else "FAIL"
    print(f"{step.rate:7.0f} {step.achieved_rate:8.1f} {step.calls:6d} {step.ok:6d} "
          f"{step.failed:6d} {step.retrans_pct:7.2f}% {step.pdd(0.5):8.2f} {step.pdd(0.99):8.2f} "
          f"{step.pdd(0.5, controller=True):8.2f} {step.pdd(0.99, controller=True):8.2f} "
          f"{step.peak_sipp:6d} {step.peak_controller:6d} {step.cpu_ms_per_call:7.2f}  {verdict}",
          flush=True)
    # The controller logs a 10 s window's loop lag only when a callback held it >= 20 ms.
    for line in step.loop_lag or ["none >= 20 ms"]:
        print(f"        controller event loop lag {line}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,50,100,150,200",
                        help="call rates to step through, calls/s (default 20,50,100,150,200)")
    parser.add_argument("--step-seconds", type=float, default=10.0,
                        help="seconds of new calls per step (default 10)")
    parser.add_argument("--talk", type=float, default=5.0, help="talk seconds per call")
    parser.add_argument("--hold-rate", type=float, default=100.0,
                        help="call rate of the hold phase, 0 to skip (default 100)")
    parser.add_argument("--hold-talk", type=float, default=15.0,
                        help="talk seconds per call in the hold phase (default 15)")
    parser.add_argument("--numbers", type=int, default=300,
                        help="distinct called numbers (AdvanceConnect accounts) to seed")
    parser.add_argument("--no-echo", action="store_true",
                        help="the called party sends no audio back (by default it echoes the "
                        "prompt, so the controller also receives and scans a media stream)")
    parser.add_argument("--rtp-ports", type=int, default=8000,
                        help="size of the controller's RTP port range (4 ports per call)")
    parser.add_argument("--session-timer", type=int, default=0,
                        help="RFC 4028 session interval on both legs, seconds (0: none); "
                        "each call is refreshed once, so keep --talk below it")
    parser.add_argument("--media-timeout", type=float, default=0.0,
                        help="the controller's media inactivity timeout, seconds (0: the "
                        "config's 60 s); the facility sends no RTP, so raise it above --talk")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if any(r <= 0 or r > 2000 for r in rates):
        print("rates must be within (0, 2000] calls/s", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    numbers_csv = work / "numbers.csv"
    numbers_csv.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers(args.numbers)))
    # Two RTP+RTCP pairs per call: 8,000 ports leave room for 2,000 calls at once.
    if args.session_timer and not args.session_timer / 2 < args.talk < args.session_timer:
        print("with --session-timer, --talk must be between half the interval and it",
              file=sys.stderr)
        return 2
    svc = prepare(work / "service", args.numbers, rtp_ports=args.rtp_ports,
                  session_timer=args.session_timer, media_timeout=args.media_timeout)
    t0 = time.monotonic()
    svc.start(timeout=120)
    print(f"ics serve ready in {time.monotonic() - t0:.1f} s (seeded {args.numbers} accounts); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    print("                                              post-dial delay (ms)")
    print("   rate  achieved  calls     ok failed  retrans  sipp p50 sipp p99  ctl p50  ctl p99"
          "   peak calls (sipp/ctl)  cpu ms/call")
    steps: list[Step] = []
    status = 0
    try:
        for rate in rates:
            step = run_step(svc, work, numbers_csv, rate, args.step_seconds, args.talk,
                            f"step-{rate:g}", echo=not args.no_echo,
                            session_timer=args.session_timer)
            steps.append(step)
            report(step)
            if not step.passed:
                break
        best = max((s for s in steps if s.passed), key=lambda s: s.rate, default=None)
        hold = None
        if args.hold_rate > 0 and (best is None or best.rate >= args.hold_rate):
            hold = run_step(svc, work, numbers_csv, args.hold_rate, args.step_seconds,
                            args.hold_talk, "hold", echo=not args.no_echo,
                            session_timer=args.session_timer)
            print(f"hold phase ({args.hold_talk:g} s talk):")
            report(hold)
    finally:
        exit_status = svc.stop(timeout=60)
        print(f"ics serve exited with {exit_status}")
        if exit_status != 0:
            status = 1
    summary = {
        "best_rate_ok": best.rate if best else None,
        "best_achieved_rate": round(best.achieved_rate, 1) if best else None,
        "pdd_p50_ms": round(best.pdd(0.5), 2) if best else None,
        "pdd_p99_ms": round(best.pdd(0.99), 2) if best else None,
        "controller_pdd_p50_ms": round(best.pdd(0.5, controller=True), 2) if best else None,
        "controller_pdd_p99_ms": round(best.pdd(0.99, controller=True), 2) if best else None,
        "peak_concurrent_controller": max([s.peak_controller for s in steps]
                                          + ([hold.peak_controller] if hold else [])),
        "cpu_ms_per_call": round(best.cpu_ms_per_call, 2) if best else None,
        "hold_failed_calls": hold.failed if hold else None,
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
