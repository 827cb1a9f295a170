"""Three-way detection figures over the seeded corpus (``threeway_corpus.py``).

Prints: the share of inserted attempts flagged, each within 3 s of its flash
(or of the forwarding click), by kind; false flags per 20 hours of clean and
decoy audio, by kind; and the detector's CPU time per call-minute, fed as the
controller feeds it (every leg's audio of the last 0.5 s, all legs of a batch of
calls together through ``feed_many``). Speech is synthesized once and cached
(``$ICS_THREEWAY_CACHE`` or the temp dir); cases are assembled from seeds.

    python loadtests/bench_threeway.py                       # 20 h clean+decoy, 240 attempts
    python loadtests/bench_threeway.py --hours 2 --attempts 40 --case-minutes 2
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import threeway_corpus as tc

from ivr.threeway import LegWatch, ThreeWaySuspected, feed_many

TICK = 4000  # samples: the controller hands each leg's audio over every 0.5 s


def run_batch(audios: list[tc.CaseAudio]) -> tuple[list[ThreeWaySuspected | None], float]:
    """Feed the cases together, tick by tick; their decisions and the CPU seconds spent."""
    legs = [a.samples() for a in audios]
    watches = [LegWatch() for _ in legs]
    decided: list[ThreeWaySuspected | None] = [None] * len(legs)
    cpu = 0.0
    longest = max(len(x) for x in legs)
    for i in range(0, longest, TICK):
        live = [j for j, x in enumerate(legs) if i < len(x)]
        chunks = [legs[j][i: i + TICK] for j in live]
        t0 = time.process_time()
        heard = feed_many([watches[j].detector for j in live], chunks)
        for j, signals in zip(live, heard, strict=True):
            now = watches[j].detector.now
            for s in signals:
                d = watches[j].policy.heard(s, now)
                if d is not None and decided[j] is None:
                    decided[j] = d
        cpu += time.process_time() - t0
    return decided, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=20.0, help="clean and decoy audio, hours")
    ap.add_argument("--attempts", type=int, default=240, help="attempt cases (all kinds)")
    ap.add_argument("--case-minutes", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=24, help="calls fed together")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    phrases = tc.phrases()
    seconds = args.case_minutes * 60
    quiet_kinds = ("clean", *tc.DECOYS)
    per_quiet = max(1, round(args.hours * 3600 / seconds / len(quiet_kinds)))
    per_attempt = max(1, args.attempts // len(tc.ATTEMPTS))
    cases = tc.corpus(quiet_kinds, per_quiet, seconds, args.seed)
    # Attempt cases are shorter: the attempt, and talk either side of it.
    cases += tc.corpus(tc.ATTEMPTS, per_attempt, min(seconds, 120.0), args.seed)
    print(f"corpus: {len(cases)} cases, phrases ready in {time.perf_counter() - t0:.1f} s")

    flagged: Counter[str] = Counter()
    on_time: Counter[str] = Counter()
    count: Counter[str] = Counter()
    audio_s: Counter[str] = Counter()
    latencies: list[float] = []
    cpu = 0.0
    build_s = 0.0
    loss: list[float] = []
    laws: Counter[str] = Counter()
    for start in range(0, len(cases), args.batch):
        b0 = time.perf_counter()
        audios = [tc.build(c, phrases) for c in cases[start: start + args.batch]]
        build_s += time.perf_counter() - b0
        decided, spent = run_batch(audios)
        cpu += spent
        for a, d in zip(audios, decided, strict=True):
            kind = a.case.kind
            count[kind] += 1
            audio_s[kind] += len(a.payload) / tc.RATE
            loss.append(a.loss)
            laws[a.law] += 1
            if d is not None:
                flagged[kind] += 1
                if a.attempt_at is not None:
                    late = d.at - a.attempt_at
                    latencies.append(late)
                    if 0 <= late <= 3.0:
                        on_time[kind] += 1

    total_audio = sum(audio_s.values())
    print(f"audio: {total_audio / 3600:.2f} h in all ({laws['PCMU']} PCMU, {laws['PCMA']} PCMA"
          f" cases), packet loss {min(loss):.1%}-{max(loss):.1%} (mean {np.mean(loss):.2%});"
          f" built in {build_s:.0f} s")
    print("\nattempts (flagged within 3 s of the flash / flagged at all / cases):")
    att = [k for k in tc.ATTEMPTS if count[k]]
    for k in att:
        print(f"  {k:<11} {on_time[k]:>4} / {flagged[k]:>4} / {count[k]:>4}")
    n_att = sum(count[k] for k in att)
    n_on = sum(on_time[k] for k in att)
    print(f"  detected within 3 s: {n_on}/{n_att} = {n_on / max(1, n_att):.1%}"
          f"  (latency p50 {np.percentile(latencies, 50):.2f} s,"
          f" p95 {np.percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s)")
    print("\nclean and decoy audio (false flags / cases / hours):")
    quiet_h = 0.0
    false = 0
    for k in quiet_kinds:
        print(f"  {k:<11} {flagged[k]:>4} / {count[k]:>4} / {audio_s[k] / 3600:6.2f} h")
        quiet_h += audio_s[k] / 3600
        false += flagged[k]
    print(f"  false flags: {false} in {quiet_h:.2f} h = {false / quiet_h * 20:.2f} per 20 hours")
    minutes = total_audio / 60
    print(f"\ndetector CPU: {cpu:.1f} s for {minutes:.0f} call-minutes ="
          f" {cpu / minutes * 1000:.2f} ms per call-minute"
          f" ({cpu / total_audio * 1e6:.0f} us per call-second; batches of {args.batch} calls,"
          f" fed every 0.5 s)")


if __name__ == "__main__":
    main()
