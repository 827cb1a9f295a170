"""Menu-call benchmark: SIPp phones on the voice-menu trunk and a SIPp called party against a
real `ics serve`, beside header calls at the same rate.

A menu call is the whole caller's path: a plain INVITE from tx-state-prison's
menu trunk (127.0.0.21), answered at once; the language key, a PIN and the
number keyed by SIP INFO (or RFC 4733 with ``--dtmf rfc4733``) as the prompts
play; the PIN check with the station's lock; screening, authorization and the
carrier leg while the caller hears the hold message and ringback; the called
party's prompt, key 1, bridge and recording, ``--talk`` seconds of talk, BYE,
settlement and a CDR. The header call is bench_calls.py's (X-Inmate-PIN, key
1 at the prompt, the same talk). The person keying is a benchmark person with
no Debit account, so the load number's AdvanceConnect account pays and no
balance runs out.

Both runs place calls at ``--rate`` for ``--seconds`` (bounded: at most 2,000
calls/s and 120 s), on loopback only. Printed for each: calls, calls SIPp saw
complete, failed calls (either peer), retransmissions, peak calls in progress
and the controller's CPU milliseconds per call; then the menu call's CPU per
call over the header call's.

    python loadtests/bench_menu_calls.py [--rate 100] [--seconds 30] [--talk 2]
                                         [--dtmf info|rfc4733] [--no-header]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "tests" / "e2e"))
sys.path.insert(0, str(HERE))

from bench_calls import (  # noqa: E402
    Step,
    active_calls,
    numbers,
    process_cpu_seconds,
    run_step,
    tally,
    wait_idle,
)
from harness import Service, ServicePorts, Sipp  # noqa: E402
from menu_phone import MenuCall, write  # noqa: E402

MENU_TRUNK = "127.0.0.21"
#: A person of tx-state-prison seeded for the benchmark only: no Debit account of their own.
BENCH_PIN = "100900"
LOAD_NUMBER = "4155550100"  # +1 415 555 0100, the demo's load-test AdvanceConnect account
MAX_RATE = 2000.0
MAX_SECONDS = 120.0


@dataclass
class MenuStep:
    rate: float
    calls: int
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    peak_controller: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000.0 * self.cpu_s / self.calls if self.calls else float("nan")


def prepare(root: Path, header_numbers: int, rtp_ports: int) -> Service:
    ports = ServicePorts.pick(rtp_size=rtp_ports, rtp_within=(21000, 32700), rtp_min_free=0.95)
    svc = Service.prepare(root, ports=ports, service={("sip", "shutdown_grace_seconds"): "5"})
    seed = (f'\n[[people]]\nfacility = "tx-state-prison"\npin = "{BENCH_PIN}"\n'
            'name = "Benchmark Caller"\nlanguage = "en"\n')
    seed += "".join(
        f'\n[[accounts]]\nid = "ac-bench-{n[1:]}"\nproduct = "advance_connect"\n'
        f'numbers = ["{n}"]\nholder = "Benchmark"\ndeposit = "300.00"\n'
        f'deposit_method = "card"\n'
        for n in numbers(header_numbers)
    )
    svc.edit("seed/demo.toml", lambda text: text + seed)
    # The benchmark's calls come at any hour.
    svc.edit("facilities/tx-state-prison.toml", _all_day)
    return svc


def _all_day(text: str) -> str:
    from harness import replace_array_tables

    every_day = 'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
    return replace_array_tables(text, "calling_hours",
                                [f'{every_day}\nstart = "00:00"\nend = "23:59:59"'])


def run_menu_step(svc: Service, workdir: Path, rate: float, seconds: float, talk: float,
                  dtmf: str) -> MenuStep:
    calls = max(1, int(rate * seconds))
    step = MenuStep(rate=rate, calls=calls)
    # After the number's #: authorization and the dial (ms), the called party's prompt
    # until its key 1 (1 s), then the talk.
    call = MenuCall(keys=("1", f"{BENCH_PIN}#", f"{LOAD_NUMBER}#"), dtmf=dtmf, wait_ms=1000,
                    gap_ms=100, talk_ms=int((1.5 + talk) * 1000))
    bound = seconds + 60 + talk
    carrier = Sipp(workdir, "menu-carrier", "carrier_info", local_ip="127.0.0.1", calls=calls,
                   timeout_s=bound, keys={"digit": "1"}, sets={"ring_ms": 0, "dtmf_ms": 1000},
                   extra=["-rtp_echo", "-max_socket", "50000"], trace_msg=False)
    i = carrier.cmd.index("-p")
    carrier.cmd[i + 1] = str(svc.ports.carrier)
    carrier.sip_port = svc.ports.carrier
    phones = Sipp(workdir, "menu-phones", "facility_call", local_ip=MENU_TRUNK,
                  remote=f"127.0.0.1:{svc.ports.sip}", calls=calls, timeout_s=bound,
                  keys={"station": "bench-phone"}, service="menu",
                  extra=["-r", f"{rate:g}", "-l", "20000", "-max_socket", "50000"],
                  trace_msg=False)
    scenario = write(call, phones.dir / "phone.xml")
    phones.cmd[phones.cmd.index("-sf") + 1] = str(scenario)
    peaks = {"controller": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peaks["controller"] = max(peaks["controller"], active_calls(svc))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    left = wait_idle(svc)
    if left > 0:
        print(f"warning: {left} calls still in progress before the menu run", flush=True)
    started = time.monotonic()
    cpu_before = process_cpu_seconds(svc)
    carrier.start().wait_listening()
    try:
        sampler.start()
        fac = phones.run()
        car = carrier.wait(extra=10)
    finally:
        stop.set()
        sampler.join(2)
        phones.kill()
        carrier.kill()
    tally(step, svc, started, cpu_before, fac, car, calls)
    step.peak_controller = peaks["controller"]
    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="calls/s (default 100)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="seconds of new calls per run (default 30)")
    parser.add_argument("--talk", type=float, default=2.0, help="talk seconds per call")
    parser.add_argument("--dtmf", choices=("info", "rfc4733"), default="info",
                        help="how the phones send their keys (default SIP INFO)")
    parser.add_argument("--no-header", action="store_true",
                        help="skip the header-call run (no CPU comparison)")
    parser.add_argument("--numbers", type=int, default=300,
                        help="distinct called numbers for the header run")
    parser.add_argument("--rtp-ports", type=int, default=8000,
                        help="size of the controller's RTP port range (4 ports per call)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    if not 0 < args.rate <= MAX_RATE or not 0 < args.seconds <= MAX_SECONDS:
        print(f"--rate must be within (0, {MAX_RATE:g}] and --seconds within "
              f"(0, {MAX_SECONDS:g}]", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-menu-"))
    numbers_csv = work / "numbers.csv"
    numbers_csv.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers(args.numbers)))
    svc = prepare(work / "service", args.numbers, rtp_ports=args.rtp_ports)
    t0 = time.monotonic()
    svc.start(timeout=120)
    print(f"ics serve ready in {time.monotonic() - t0:.1f} s; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    header: Step | None = None
    status = 0
    try:
        menu = run_menu_step(svc, work, args.rate, args.seconds, args.talk, args.dtmf)
        if not args.no_header:
            header = run_step(svc, work, numbers_csv, args.rate, args.seconds, args.talk,
                              "header")
    finally:
        exit_status = svc.stop(timeout=60)
        print(f"ics serve exited with {exit_status}")
        if exit_status != 0:
            status = 1
    print("  kind     rate  calls     ok failed  retrans  peak calls  cpu ms/call  seconds")
    print(f"  menu  {menu.rate:7.0f} {menu.calls:6d} {menu.ok:6d} {menu.failed:6d} "
          f"{menu.retrans:8d} {menu.peak_controller:11d} {menu.cpu_ms_per_call:12.2f} "
          f"{menu.seconds:8.1f}")
    if header is not None:
        print(f"header  {header.rate:7.0f} {header.calls:6d} {header.ok:6d} {header.failed:6d} "
              f"{header.retrans:8d} {header.peak_controller:11d} "
              f"{header.cpu_ms_per_call:12.2f} {header.seconds:8.1f}")
    ratio = (menu.cpu_ms_per_call / header.cpu_ms_per_call
             if header is not None and header.cpu_ms_per_call > 0 else None)
    summary = {
        "rate": args.rate, "seconds": args.seconds, "talk": args.talk, "dtmf": args.dtmf,
        "menu_calls": menu.calls, "menu_failed": menu.failed,
        "menu_cpu_ms_per_call": round(menu.cpu_ms_per_call, 2),
        "header_failed": header.failed if header is not None else None,
        "header_cpu_ms_per_call": (round(header.cpu_ms_per_call, 2)
                                   if header is not None else None),
        "menu_over_header_cpu": round(ratio, 2) if ratio is not None else None,
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))
    if menu.failed or (header is not None and header.failed):
        status = 1
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
