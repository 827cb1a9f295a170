"""Benchmark of the SIP core: codec speed, in-memory call throughput, and SIPp calls/s.

    python loadtests/bench_sip.py                      # everything, default rates
    python loadtests/bench_sip.py --rates 1000 1400 --seconds 10 --loop uvloop
    python loadtests/bench_sip.py --skip-sipp          # codec and in-memory figures only

The SIPp part starts an answering UAS built on the core in its own process
(``serve`` sub-command) on a free loopback port and drives it with
``loadtests/sipp/core_uac_basic.xml`` (INVITE/100/200/ACK/BYE/200, with an SDP
offer and answer) at each rate; every run is bounded by ``-m`` and ``-timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcontrol.sip import (  # noqa: E402
    Dialog,
    Endpoint,
    RequestReceived,
    create_offer,
    make_response,
    new_tag,
    parse_message,
)

INVITE = (
    "INVITE sip:+15125550100@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.11:5070;branch=z9hG4bK-{n};rport\r\n"
    "From: \"Facility\" <sip:100001@127.0.0.11:5070>;tag=ft{n}\r\n"
    "To: <sip:+15125550100@127.0.0.1:5060>\r\n"
    "Call-ID: bench-{n}@127.0.0.11\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:100001@127.0.0.11:5070>\r\n"
    "Max-Forwards: 70\r\n"
    "X-Inmate-PIN: 100001\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n"
)
SDP = create_offer("127.0.0.11", 6000, session_id=1).serialize()


def invite(n: int) -> bytes:
    return INVITE.format(n=n, length=len(SDP)).encode() + SDP


def bench_codec(count: int) -> None:
    data = invite(1)
    start = time.process_time()
    for _ in range(count):
        parse_message(data).serialize()
    ours = count / (time.process_time() - start)
    print(f"parse+serialize (callcontrol.sip): {ours:,.0f} INVITEs per CPU-second "
          f"({len(data)} bytes each)")
    try:
        import sipmessage  # type: ignore[import-untyped]
    except ImportError:
        return
    start = time.process_time()
    for _ in range(count):
        str(sipmessage.Message.parse(data))
    theirs = count / (time.process_time() - start)
    print(f"parse+str      (sipmessage):       {theirs:,.0f} INVITEs per CPU-second "
          "(for comparison)")


def bench_in_memory(calls: int) -> None:
    """Whole UAS calls through the endpoint, bytes in and out, no sockets."""
    uas = Endpoint()
    uas.set_local_address("udp", "127.0.0.1", 5060)
    peer = ("127.0.0.11", 5070)
    now = 0.0
    start = time.process_time()
    for n in range(calls):
        now += 0.001
        uas.receive_datagram(invite(n), peer, now)
        event = uas.next_event()
        assert isinstance(event, RequestReceived)
        ok = make_response(event.request, 200, to_tag=new_tag(),
                           headers=[("Contact", "<sip:uas@127.0.0.1>")])
        uas.add_dialog(Dialog.from_uas(event.request, ok))
        uas.send_response(ok, now)
        tag = parse_message(uas.datagrams_to_send()[-1].data).to_tag
        ack = invite(n).replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
        ack = ack.replace(b"branch=z9hG4bK-", b"branch=z9hG4bKack-").replace(
            b"<sip:+15125550100@127.0.0.1:5060>\r\nCall", f"<sip:+15125550100@127.0.0.1:5060>"
            f";tag={tag}\r\nCall".encode())
        uas.receive_datagram(ack, peer, now)
        uas.next_event()
        bye = ack.replace(b"ACK sip", b"BYE sip").replace(b"1 ACK", b"2 BYE").replace(
            b"z9hG4bKack-", b"z9hG4bKbye-")
        uas.receive_datagram(bye, peer, now)
        event = uas.next_event()
        assert isinstance(event, RequestReceived) and event.dialog is not None
        uas.respond(event.request, 200, now)
        uas.remove_dialog(event.dialog)
        uas.datagrams_to_send()
        uas.handle_timer(now)
    elapsed = time.process_time() - start
    print(f"in-memory UAS calls (INVITE/200/ACK/BYE/200): {calls / elapsed:,.0f} calls per "
          "CPU-second")


def free_port() -> int:
    """A loopback port free for both UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def serve(port: int, loop_name: str, seconds: float) -> None:
    """Run the answering UAS for ``seconds`` (bounded), then print its counters."""
    from callcontrol.sip import start_agent

    async def main() -> None:
        agent, transport = await start_agent("127.0.0.1", udp_port=port, tcp_port=port)
        print("ready", flush=True)
        cpu_start = time.process_time()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        cpu = time.process_time() - cpu_start
        print(f"cpu={cpu:.3f} answered={agent.counters.answered} byes={agent.counters.byes}",
              flush=True)
        await transport.close()

    if loop_name == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def bench_sipp(rates: list[int], seconds: float, loop_name: str, transport: str) -> None:
    scenario = ROOT / "loadtests" / "sipp" / "core_uac_basic.xml"
    for rate in rates:
        port = free_port()
        calls = int(rate * seconds)
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", "--port", str(port), "--loop", loop_name,
             "--seconds", str(seconds + 30)],
            stdout=subprocess.PIPE, text=True,
        )
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        load = os.getloadavg()[0]
        started = time.perf_counter()
        try:
            result = subprocess.run(
                ["sipp", "-sf", str(scenario), "-s", "15125550100", f"127.0.0.1:{port}",
                 "-t", "u1" if transport == "udp" else "t1",
                 "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(calls), "-r", str(rate),
                 "-timeout", f"{int(seconds) + 25}s", "-timeout_error", "-nostdin",
                 "-buff_size", "4194304", "-max_recv_loops", "10000"],
                capture_output=True, text=True, timeout=seconds + 40,
            )
        finally:
            wall = time.perf_counter() - started
            server.terminate()
            tail, _ = server.communicate(timeout=10)
        match = re.search(r"cpu=([0-9.]+)", tail or "")
        cpu = float(match.group(1)) if match else float("nan")
        out = result.stdout
        if result.returncode not in (0, 1):
            print("SIPp failed:", (out + result.stderr).strip()[:600])
        ok = _cumulative(out, "Successful call")
        failed = _cumulative(out, "Failed call")
        retrans = _retransmissions(out)
        print(f"SIPp {rate:>5} calls/s target, {calls} calls, {transport}, loop={loop_name}: "
              f"{ok} ok, {failed} failed, {retrans} retransmissions, "
              f"{ok / wall:,.0f} calls/s achieved over {wall:.1f} s "
              f"(sipp rc={result.returncode}, load average before {load:.2f}); "
              f"UAS used {cpu:.1f} CPU-s = {1000 * cpu / max(ok, 1):.2f} ms per call")


def _cumulative(text: str, label: str) -> int:
    values = [line.split("|")[2] for line in text.splitlines() if label in line]
    return int(values[-1]) if values else -1


def _retransmissions(text: str) -> int:
    table = text.rpartition("Messages  Retrans")[2].split("\n\n")[0]
    total = 0
    for line in table.splitlines()[1:]:
        match = re.match(r"^\s+\S+\s+(?:<-+|-+>)\s+(?:E-RTD1\s+)?\d+\s+(\d+)", line)
        if match:
            total += int(match.group(1))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="run the answering UAS (used by the benchmark)")
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    serve_parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 1200])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each SIPp run")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--codec-count", type=int, default=20_000)
    parser.add_argument("--memory-calls", type=int, default=10_000)
    parser.add_argument("--skip-sipp", action="store_true")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.loop, args.seconds)
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    bench_codec(args.codec_count)
    bench_in_memory(args.memory_calls)
    if not args.skip_sipp:
        bench_sipp(args.rates, args.seconds, args.loop, args.transport)


if __name__ == "__main__":
    main()
