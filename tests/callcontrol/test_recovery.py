"""Start-up recovery over a real SQLite store: a call a crash left connected is settled."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accounts import Authorization, CallOutcome, CallRequest, NotFound
from api.runner import open_account_service
from callcontrol.app import CallController, ControllerSettings, trunks_from_config
from settings.config import load_config

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


def test_on_a_shared_store_only_silent_reservations_are_recovered(demo_config: Path) -> None:
    """Nodes sharing a store must not settle each other's live calls."""

    async def main() -> None:
        config = load_config(demo_config)
        service = await open_account_service(config)
        try:
            settings = dataclasses.replace(ControllerSettings.from_config(config),
                                           shared_store=True, recovery_stale_after=300.0)
            # Another node's call, prompting right now (no heartbeat yet).
            other = await service.authorize(CallRequest(
                call_id="other-node-call@127.0.0.11", facility_id="tx-state-prison",
                pin="100001", dialled="5125550100", at=NOON_CHICAGO))
            assert isinstance(other, Authorization)
            # A call of a node that died ten minutes ago, heartbeat at 30 s talked.
            ten_ago = NOON_CHICAGO - timedelta(minutes=10)
            dead = await service.authorize(CallRequest(
                call_id="dead-node-call@127.0.0.11", facility_id="tx-state-prison",
                pin="100001", dialled="3105550100", at=ten_ago))
            assert isinstance(dead, Authorization)
            await service.heartbeat(dead.reservation_id, 30, ten_ago)

            controller = CallController(settings, service, trunks_from_config(config))
            controller.wall_now = lambda: NOON_CHICAGO + timedelta(minutes=1)  # type: ignore[method-assign]
            assert await controller.recover() == 1
            assert (await service.store.get_cdr("dead-node-call@127.0.0.11")).recovered
            still_open = await service.store.get_reservation(other.reservation_id)
            assert still_open.talked_seconds is None
            try:
                await service.store.get_cdr("other-node-call@127.0.0.11")
                raise AssertionError("another node's live call was recovered")
            except NotFound:
                pass
        finally:
            await service.store.close()

    asyncio.run(main())
