"""Start-up recovery over a real SQLite store: a call a crash left connected is settled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from accounts import Authorization, CallOutcome, CallRequest, NotFound
from api.runner import open_account_service
from callcontrol.app import CallController, ControllerSettings, trunks_from_config
from ics.config import load_config

# Noon in Texas: inside the demo facility's calling hours.
NOON_CHICAGO = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def test_connected_call_left_by_a_crash_is_settled_from_its_last_heartbeat(
    demo_config: Path,
) -> None:
    async def main() -> None:
        config = load_config(demo_config)
        service = await open_account_service(config)
        try:
            before = (await service.store.get_account("ac-15125550100")).balance_units
            auth = await service.authorize(CallRequest(
                call_id="crashed-call@127.0.0.11", facility_id="tx-state-prison",
                pin="100001", dialled="5125550100", at=NOON_CHICAGO))
            assert isinstance(auth, Authorization)
            # Two heartbeats made it to the store, then the process was killed.
            await service.heartbeat(auth.reservation_id, 15, NOON_CHICAGO)
            await service.heartbeat(auth.reservation_id, 75, NOON_CHICAGO)
            # A second call, still live on this node, must not be touched.
            live = await service.authorize(CallRequest(
                call_id="live-call@127.0.0.11", facility_id="tx-state-prison",
                pin="100001", dialled="3105550100", at=NOON_CHICAGO))
            assert isinstance(live, Authorization)

            controller = CallController(ControllerSettings.from_config(config), service,
                                        trunks_from_config(config))
            controller.calls["live-call@127.0.0.11"] = object()  # type: ignore[assignment]
            assert await controller.recover() == 1

            cdr = await service.store.get_cdr("crashed-call@127.0.0.11")
            assert cdr.recovered
            assert cdr.talked_seconds == 75
            assert cdr.billed_seconds == 120  # whole minutes at tx-state-prison
            assert cdr.outcome is CallOutcome.COMPLETED
            assert cdr.total_units == 1200  # 2 minutes at $0.06
            after = (await service.store.get_account("ac-15125550100")).balance_units
            assert before - after == 1200
            settled = await service.store.get_reservation(auth.reservation_id)
            assert settled.talked_seconds == 75
            try:
                await service.store.get_cdr("live-call@127.0.0.11")
                raise AssertionError("the live call got a CDR")
            except NotFound:
                pass
            # Recovery runs again at the next start: nothing more to do, no money moves.
            assert await controller.recover() == 0
            again = (await service.store.get_account("ac-15125550100")).balance_units
            assert again == after
        finally:
            await service.store.close()

    asyncio.run(main())
