"""The event loop lag watch: figures of a window, and a stall reported from a running loop."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from ics.service import LoopLagWatch


def test_summary_gives_the_window_figures_and_starts_a_new_window() -> None:
    watch = LoopLagWatch()
    assert watch.summary() is None
    for lag in [0.001] * 98 + [0.030, 0.250]:
        watch.note(lag)
    watch.note(-0.002)  # a timer that fired early counts as on time
    n, p50, p99, worst = watch.summary() or (0, 0.0, 0.0, 0.0)
    assert n == 101
    assert p50 == 0.001
    assert p99 == 0.030
    assert worst == 0.250
    assert watch.summary() is None


def test_a_stalled_loop_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch = LoopLagWatch(interval=0.005, period=0.1, threshold=0.04)
        watch.start(loop)
        await asyncio.sleep(0.03)
        time.sleep(0.06)  # one callback holding the loop
        await asyncio.sleep(0.15)
        watch.stop()

    with caplog.at_level(logging.WARNING, logger="callcontrol"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "event loop lag" in r.getMessage()]
    assert lines, "the stall was not reported"
    worst = max(float(m.group(1)) for line in lines
                if (m := re.search(r"max ([0-9.]+) ms", line)))
    assert worst >= 55.0
