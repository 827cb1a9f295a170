"""The three-way watch over a real bridge on loopback: the called leg's packets reach the
detector, a decision comes once, and a released leg is left alone."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest
from ivr_loops import LOOPS, run
from test_ivr_bridge import two_phones_and_legs

from ivr import PCMA, Bridge
from ivr.rtp import build_packet
from ivr.threeway import Signal, ThreeWaySuspected
from ivr.threeway_watch import CalledLegWatch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
import threeway_corpus as tc

RATE = 8000


def attempt() -> np.ndarray:
    """Talk over line noise, a hook flash (the line open), dial tone, as the called leg."""
    rng = np.random.default_rng(3)
    talk = rng.normal(0, tc.db(-25), 2 * RATE) * np.abs(np.sin(np.arange(2 * RATE) / 600))
    noise = rng.normal(0, tc.db(-50), 2 * RATE)
    f, _ = tc.flash(rng, 0.5)
    tone = tc.dial_tone(2.0) + rng.normal(0, tc.db(-50), 2 * RATE)
    x = np.concatenate([talk + noise, f, tone])
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_flash_and_dial_tone_on_the_called_leg_is_suspected_once(loop_kind: str) -> None:
    async def main() -> None:
        alice, bob, a, b = await two_phones_and_legs(PCMA)
        bridge = Bridge(a, b)
        bridge.start()
        watch = CalledLegWatch(asyncio.get_running_loop(), interval=0.1)
        decisions: list[ThreeWaySuspected] = []
        leg = watch.watch(bridge, decisions.append, start=30.0)
        payload = PCMA.encode(attempt())
        frames = [payload[i: i + 160] for i in range(0, len(payload) - 159, 160)]
        for i, frame in enumerate(frames):
            bob.send(build_packet(8, i, i * 160, 2, frame), ("127.0.0.1", b.port))
            if i % 20 == 19:
                await asyncio.sleep(0.01)
        for _ in range(100):
            if decisions:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert len(decisions) == 1
        assert [s.signal for s in decisions[0].signals] == [Signal.FLASH, Signal.DIAL_TONE]
        assert decisions[0].signals[0].at == pytest.approx(32.0, abs=0.1)  # in the call
        assert len(alice.received) > 200  # relayed as before
        watch.release(leg)
        assert bridge.called_audio is None and len(watch) == 0
        bob.send(build_packet(8, 999, 999 * 160, 2, frames[0]), ("127.0.0.1", b.port))
        await asyncio.sleep(0.05)
        assert leg.audio == []
        bridge.stop()
        a.close()
        b.close()

    run(loop_kind, main)
