"""Called-party blocks: a number asks not to be called from one facility or from any."""

from __future__ import annotations

from accounts.service_core import ServiceCore, normalize_number


class CalledPartyBlocks(ServiceCore):
    """The screening data a called party controls."""

    async def block_facility_for_number(self, number: str, facility_id: str | None) -> None:
        """The called party asks not to receive calls from a facility (or any facility)."""
        if facility_id is not None:
            self._facility(facility_id)
        await self.store.set_self_block(normalize_number(number), facility_id, True)

    async def unblock_facility_for_number(self, number: str, facility_id: str | None) -> None:
        await self.store.set_self_block(normalize_number(number), facility_id, False)

