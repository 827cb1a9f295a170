"""Media benchmark: bridged calls one process relays, and in-band DTMF detector throughput.

Relay: a child process opens 2 ``RtpEndpoint``s per call and bridges them with
``ivr.Bridge`` (recording on or off, same codec or PCMU<->PCMA transcoding).
A separate generator process plays both parties of every call on loopback: 50
packets/s each way per call, and measures, per packet, the time from sending
to receiving the relayed copy. Printed per run: packets sent and lost, loss
%, p50 latency and p99 *added* jitter (latency minus the stream's smallest
latency, so the generator's fixed costs cancel), and the relay process's CPU
use (user+system seconds per wall second; 1.0 is one core) and how late a 5 ms
timer fired in it (p99 and max loop lag, ms). ``--three-way on`` runs the
three-way call detector on every called leg as the controller does
(``ivr.threeway_watch``); ``both`` prints the runs without and with it side by
side, with the relay's CPU per connected call (ms of CPU per call-second).

DTMF: seconds of 8 kHz audio (speech prompts and key presses) the in-band
detector analyses per CPU second, fed in 20 ms packets, in 160 ms batches (as
``MediaSession`` gathers it during a call), 160 ms batches of 50 streams analysed
together (``feed_many``: the legs that heard audio in one turn of the event loop)
and in 10 s blocks (offline analysis).

Everything goes to 127.0.0.1 and every loop is bounded in time.

    python loadtests/bench_media.py                      # 500 calls, uvloop, recording off/on
    python loadtests/bench_media.py --calls 300 --loop asyncio --record on --transcode
    python loadtests/bench_media.py --record on --three-way both --dtmf-seconds 0
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import select
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PTIME = 0.02
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
#: Generator sockets per side: spreads its receive load over a few buffers.
GEN_SOCKETS = 8
#: Where recordings go (default: the system temp dir).
REC_PARENT: str | None = None


@dataclass
class RunResult:
    calls: int
    loop: str
    record: bool
    transcode: bool
    sent: int
    received: int
    p50_latency_ms: float
    p99_added_jitter_ms: float
    relay_cpu: float
    generator_cpu: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    three_way: bool = False


# -- relay process -----------------------------------------------------------------


def relay_main(
    calls: int, port_base: int, loop_kind: str, record: bool, transcode: bool,
    rec_dir: str, conn: mp.connection.Connection, three_way: bool = False,
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if loop_kind == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        runner.run(_relay(calls, port_base, record, transcode, rec_dir, conn, three_way))


async def _relay(
    calls: int, port_base: int, record: bool, transcode: bool, rec_dir: str,
    conn: mp.connection.Connection, three_way: bool = False,
) -> None:
    from ivr import PCMA, PCMU, Bridge, PortAllocator, Recorder, RtpEndpoint

    loop = asyncio.get_running_loop()
    ports = PortAllocator(port_base, port_base + 4 * calls + 3)
    bridges = []
    a_ports, b_ports = [], []
    for i in range(calls):
        a = await RtpEndpoint.open(PCMU, allocator=ports, inband=False)
        b = await RtpEndpoint.open(PCMA if transcode else PCMU, allocator=ports, inband=False)
        rec = None
        if record:
            rec = Recorder(Path(rec_dir) / f"call-{i}.wav", (PCMU, b.session.codec), loop.time())
        bridge = Bridge(a, b, recorder=rec, inactivity_timeout=120)
        bridge.start()
        bridges.append((bridge, a, b))
        a_ports.append(a.port)
        b_ports.append(b.port)
    if three_way:
        watch_called_legs([bridge for bridge, _, _ in bridges])
    conn.send((a_ports, b_ports))
    # Measure CPU between the generator's "start" and "stop" marks, and how late a
    # 5 ms timer fires meanwhile (the loop's own stalls, plus the OS's).
    await loop.run_in_executor(None, conn.recv)
    t0, c0 = time.monotonic(), _cpu()
    lags: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lags.append(loop.time() - due)

    watcher = asyncio.ensure_future(watch())
    await loop.run_in_executor(None, conn.recv)
    t1, c1 = time.monotonic(), _cpu()
    stop.set()
    await watcher
    for bridge, a, b in bridges:
        bridge.stop()
        a.close()
        b.close()
    lag = np.array(lags) * 1000
    conn.send(((c1 - c0) / (t1 - t0), float(np.percentile(lag, 99)), float(lag.max())))


def watch_called_legs(bridges: list[object]) -> None:
    """The three-way detector on every bridge's called leg, as the controller runs it."""
    from ivr.threeway_watch import called_leg_watch

    watch = called_leg_watch(asyncio.get_running_loop())
    for bridge in bridges:
        watch.watch(bridge, lambda suspected: None)  # type: ignore[arg-type]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- generator ---------------------------------------------------------------------


def generate(
    calls: int, a_ports: list[int], b_ports: list[int], seconds: float, warmup: float,
    conn: mp.connection.Connection, b_pt: int = 0,
) -> tuple[int, int, float, float, float]:
    """Send both parties' audio (the called party in payload type ``b_pt``), collect
    relayed packets; returns loss and timing figures."""
    socks = []
    for _ in range(2 * GEN_SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    side_a, side_b = socks[:GEN_SOCKETS], socks[GEN_SOCKETS:]
    # A packet relayed A->B leaves the relay from the B endpoint's port, and vice versa.
    stream_of_port = {}
    for i in range(calls):
        stream_of_port[b_ports[i]] = (0, i)
        stream_of_port[a_ports[i]] = (1, i)
    ticks_total = int((warmup + seconds) / PTIME)
    warm_ticks = int(warmup / PTIME)
    send_time = np.full((2, calls, ticks_total), np.nan)
    recv_time = np.full((2, calls, ticks_total), np.nan)
    payload = b"\x55" * 160
    called = called_party_frames(b_pt)
    header = struct.Struct("!BBHII")
    pkt = bytearray(12 + 160)
    pkt[12:] = payload
    fds = {s.fileno(): s for s in socks}
    poller = select.epoll()
    for fd in fds:
        poller.register(fd, select.EPOLLIN)
    # Calls are not in step: call i sends at offset i/calls of each 20 ms period.
    # Times are wall-clock so that received packets can be stamped by the kernel
    # (SO_TIMESTAMPNS): the generator's own receive delays then do not count.
    t_start = time.time() + 0.05
    offsets = [i * PTIME / calls for i in range(calls)]
    tick, i_next = 0, 0
    c0 = time.process_time()
    marked = False
    cmsg_space = socket.CMSG_SPACE(16)
    while True:
        now = time.time()
        while tick < ticks_total and now >= t_start + tick * PTIME + offsets[i_next]:
            if tick == warm_ticks and i_next == 0 and not marked:
                conn.send("start")
                marked = True
                c0 = time.process_time()
            i = i_next
            ts = tick * 160
            header.pack_into(pkt, 0, 0x80, 0, tick & 0xFFFF, ts, 0x1000 + i)
            side_a[i % GEN_SOCKETS].sendto(pkt, ("127.0.0.1", a_ports[i]))
            send_time[0, i, tick] = time.time()
            header.pack_into(pkt, 0, 0x80, b_pt, tick & 0xFFFF, ts, 0x8000 + i)
            pkt[12:] = called[(tick + 37 * i) % len(called)]
            side_b[i % GEN_SOCKETS].sendto(pkt, ("127.0.0.1", b_ports[i]))
            pkt[12:] = payload
            send_time[1, i, tick] = time.time()
            i_next += 1
            if i_next == calls:
                i_next = 0
                tick += 1
            now = time.time()
        if tick >= ticks_total and now > t_start + ticks_total * PTIME + 0.5:
            break
        if tick < ticks_total:
            wait = max(0.0, min(0.002, t_start + tick * PTIME + offsets[i_next] - now))
        else:
            wait = 0.05
        for fd, _ in poller.poll(wait):
            s = fds[fd]
            while True:
                try:
                    data, anc, _flags, addr = s.recvmsg(2048, cmsg_space)
                except BlockingIOError:
                    break
                stream = stream_of_port.get(addr[1])
                if stream is None or len(data) < 12:
                    continue
                t = time.time()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        t = sec + nsec * 1e-9
                seq = int.from_bytes(data[2:4], "big")
                if seq < ticks_total:
                    recv_time[stream[0], stream[1], seq] = t
    conn.send("stop")
    gen_cpu = (time.process_time() - c0) / seconds
    for s in socks:
        s.close()
    sent = send_time[:, :, warm_ticks:]
    got = recv_time[:, :, warm_ticks:]
    n_sent = int(np.isfinite(sent).sum())
    n_recv = int(np.isfinite(got).sum())
    if os.environ.get("BENCH_DEBUG"):
        per_call = np.isfinite(got).sum(axis=2)
        print("received per direction:", per_call.sum(axis=1), "calls with nothing:",
              [(d, int(np.sum(per_call[d] == 0))) for d in (0, 1)], file=sys.stderr)
    latency = got - sent
    # Added jitter: each packet's latency above its own stream's best.
    best = np.nanmin(latency, axis=2, keepdims=True)
    added = (latency - best)[np.isfinite(latency)]
    lat = latency[np.isfinite(latency)]
    p50 = float(np.percentile(lat, 50)) * 1000 if len(lat) else float("nan")
    p99 = float(np.percentile(added, 99)) * 1000 if len(added) else float("nan")
    return n_sent, n_recv, p50, p99, gen_cpu


def called_party_frames(payload_type: int) -> list[bytes]:
    """What the called parties say: the shipped prompts over faint line noise, as 20 ms
    G.711 frames (the relay forwards any bytes alike; the three-way detector analyses
    them, and speech is what it mostly hears)."""
    from ivr import PCMA, PCMU
    from ivr.catalogue import PromptCatalogue

    cat = PromptCatalogue("en")
    speech = cat.render(tuple(cat.names())).astype(np.float64)
    speech += np.random.default_rng(0).normal(0, 60, len(speech))
    codec = PCMA if payload_type == 8 else PCMU
    data = codec.encode(np.clip(np.round(speech), -32768, 32767).astype(np.int16))
    return [data[i: i + 160] for i in range(0, len(data) - 159, 160)]


def run_relay(
    calls: int, seconds: float, loop_kind: str, record: bool, transcode: bool, port_base: int,
    three_way: bool = False,
) -> RunResult:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    with tempfile.TemporaryDirectory(prefix="bench-rec-", dir=REC_PARENT) as rec_dir:
        proc = ctx.Process(
            target=relay_main,
            args=(calls, port_base, loop_kind, record, transcode, rec_dir, child, three_way),
        )
        proc.start()
        try:
            if not parent.poll(120):
                raise RuntimeError("relay did not start in time")
            a_ports, b_ports = parent.recv()
            sent, received, p50, p99, gen_cpu = generate(
                calls, a_ports, b_ports, seconds, warmup=2.0, conn=parent,
                b_pt=8 if transcode else 0,
            )
            if not parent.poll(60):
                raise RuntimeError("relay did not report")
            relay_cpu, lag_p99, lag_max = parent.recv()
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return RunResult(calls, loop_kind, record, transcode, sent, received, p50, p99,
                     relay_cpu, gen_cpu, lag_p99, lag_max, three_way)


# -- DTMF throughput ---------------------------------------------------------------


def dtmf_throughput(seconds_of_audio: int) -> tuple[float, float, float, float, int]:
    from ivr.catalogue import PromptCatalogue
    from ivr.inband import InbandDetector, dtmf_tone, feed_many
    from ivr.session import INBAND_BATCH

    cat = PromptCatalogue("en")
    speech = cat.render(tuple(cat.names()))
    keys = np.concatenate([np.concatenate([dtmf_tone(d, 80), np.zeros(640, np.int16)])
                           for d in "0123456789*#"])
    block = np.concatenate([speech, keys])
    reps = max(1, seconds_of_audio * 8000 // len(block))
    audio = np.tile(block, reps)
    seconds = len(audio) / 8000

    rates = []
    for chunk in (160, INBAND_BATCH, 80_000):
        det = InbandDetector()
        c0 = time.process_time()
        found = 0
        for i in range(0, len(audio), chunk):
            found += len(det.feed(audio[i : i + chunk]))
        rates.append(seconds / (time.process_time() - c0))
        assert found == 12 * reps, (chunk, found, reps)
    # Many streams a batch at a time, analysed together (as the legs that heard audio
    # during one turn of the event loop are).
    streams = 50
    stream = np.tile(block, max(1, reps // streams))
    detectors = [InbandDetector() for _ in range(streams)]
    c0 = time.process_time()
    many = 0
    for i in range(0, len(stream), INBAND_BATCH):
        chunk_audio = stream[i : i + INBAND_BATCH]
        many += sum(len(d) for d in feed_many(detectors, [chunk_audio] * streams))
    rates.append(streams * len(stream) / 8000 / (time.process_time() - c0))
    assert many == 12 * streams * max(1, reps // streams), many
    return rates[0], rates[1], rates[2], rates[3], found


# -- main --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="uvloop")
    parser.add_argument("--record", choices=["on", "off", "both"], default="both")
    parser.add_argument("--transcode", action="store_true", help="called leg uses PCMA")
    parser.add_argument("--port-base", type=int, default=40000)
    parser.add_argument("--dtmf-seconds", type=int, default=600,
                        help="audio for the DTMF throughput test (0 to skip)")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument("--three-way", choices=["on", "off", "both"], default="off",
                        help="the three-way detector on every called leg (both: off, then on)")
    parser.add_argument("--rec-dir", default=None,
                        help="directory for the recordings (default: system temp dir)")
    args = parser.parse_args()
    global REC_PARENT
    REC_PARENT = args.rec_dir
    if not 1 <= args.calls <= 2000 or not 1 <= args.seconds <= 120:
        parser.error("calls must be 1..2000 and seconds 1..120")

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if not args.skip_relay:
        loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]
        records = [False, True] if args.record == "both" else [args.record == "on"]
        three_ways = [False, True] if args.three_way == "both" else [args.three_way == "on"]
        print(f"{'calls':>5} {'loop':>7} {'rec':>3} {'codec':>9} {'3way':>4} {'sent':>8} "
              f"{'lost':>6} {'loss%':>6} {'p50 ms':>7} {'p99 jit':>7} {'relay cpu':>9} "
              f"{'ms/call-s':>9} {'gen cpu':>7} {'lag p99':>7} {'lag max':>7}")
        for loop_kind in loops:
            for record in records:
                for three_way in three_ways:
                    r = run_relay(args.calls, args.seconds, loop_kind, record, args.transcode,
                                  args.port_base, three_way)
                    lost = r.sent - r.received
                    codec = "PCMU>PCMA" if r.transcode else "PCMU"
                    # CPU per connected call: core-seconds per wall second, per call.
                    per_call_ms = 1000 * r.relay_cpu / r.calls
                    print(f"{r.calls:>5} {r.loop:>7} {'on' if r.record else 'off':>3} "
                          f"{codec:>9} {'on' if r.three_way else 'off':>4} "
                          f"{r.sent:>8} {lost:>6} {100 * lost / max(r.sent, 1):>6.3f} "
                          f"{r.p50_latency_ms:>7.2f} {r.p99_added_jitter_ms:>7.2f} "
                          f"{r.relay_cpu:>9.2f} {per_call_ms:>9.3f} {r.generator_cpu:>7.2f} "
                          f"{r.loop_lag_p99_ms:>7.2f} {r.loop_lag_max_ms:>7.1f}", flush=True)
    if args.dtmf_seconds:
        from ivr.session import INBAND_BATCH

        per_packet, per_batch, per_block, per_many, found = dtmf_throughput(args.dtmf_seconds)
        print(f"in-band DTMF detector, seconds of audio analysed per CPU second: "
              f"{per_packet:,.0f} fed per 20 ms packet, {per_batch:,.0f} per "
              f"{INBAND_BATCH // 8} ms (as MediaSession feeds it), "
              f"{per_block:,.0f} per 10 s block, {per_many:,.0f} per {INBAND_BATCH // 8} ms "
              f"batch of 50 streams together (feed_many, as legs in one turn of the loop are) "
              f"({found} digits found, none missed)")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
