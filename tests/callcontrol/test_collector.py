"""`ics serve` freezes long-lived objects out of the cycle collector and thaws them now and then."""

from __future__ import annotations

import asyncio
import gc

from ics.service import _keep_long_lived_frozen


def test_survivors_are_frozen_each_period_and_thawed_after_the_thaw_period() -> None:
    async def main() -> tuple[int, int]:
        gc.unfreeze()
        kept = [[i] for i in range(1000)]  # tracked containers that live on
        task = asyncio.get_running_loop().create_task(_keep_long_lived_frozen(0.01, 0.2))
        await asyncio.sleep(0.05)
        frozen = gc.get_freeze_count()
        # Past the thaw period the frozen objects go back to the collector once.
        await asyncio.sleep(0.2)
        for _ in range(2000):  # bounded: a thaw that never comes fails below
            if gc.get_freeze_count() == 0:
                break
            await asyncio.sleep(0.001)
        thawed = gc.get_freeze_count()
        task.cancel()
        assert len(kept) == 1000
        return frozen, thawed

    try:
        frozen, thawed = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert frozen >= 1000
    assert thawed == 0
