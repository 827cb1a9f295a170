"""PIN guessing: wrong PINs counted per station, and the locks they set, per facility policy."""

from __future__ import annotations

import logging
from datetime import datetime

from accounts.service_core import ServiceCore
from accounts.station_locks import StationLock

log = logging.getLogger("ics.accounts.station_guard")


class StationGuard(ServiceCore):
    """The caller's menu reports each wrong PIN here and asks before taking a PIN.

    The counts and locks are in the store, so one node's lock holds on every node.
    """

    async def pin_failed(
        self, facility_id: str, station: str, at: datetime
    ) -> StationLock | None:
        """One wrong PIN from ``station``; the lock it set under the facility's policy, if any."""
        policy = self._facility(facility_id).pin_guard
        lock = await self.store.record_pin_failure(facility_id, station, at, policy)
        if lock is not None:
            log.warning(
                "PIN entry locked: facility %s, station %r, %d failures, until %s",
                lock.facility_id, lock.station, lock.failures, lock.until.isoformat(),
            )
        return lock

    async def station_lock(
        self, facility_id: str, station: str, at: datetime
    ) -> StationLock | None:
        """The station's lock in force at ``at``, if any (its PIN entry is then refused)."""
        self._facility(facility_id)
        return await self.store.station_lock(facility_id, station, at)

    async def clear_station_lock(self, facility_id: str, station: str) -> bool:
        """Lift a station's lock; False if it had none."""
        self._facility(facility_id)
        cleared = await self.store.clear_station_lock(facility_id, station)
        if cleared:
            log.info("PIN entry lock cleared: facility %s, station %r", facility_id, station)
        return cleared

    async def list_station_locks(self, facility_id: str, at: datetime) -> list[StationLock]:
        """The facility's locks in force at ``at``, by station."""
        self._facility(facility_id)
        return await self.store.list_station_locks(facility_id, at)
