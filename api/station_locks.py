"""Admin API for PIN-guessing locks: the stations of a facility whose PIN entry is locked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import Caller, Context, StrictQuery
from api.errors import NotFound, responses
from api.schemas import StationLockOut
from api.screening import FacilityId, _facility

router = APIRouter(prefix="/v1", tags=["screening"], dependencies=[StrictQuery])

_ERRORS = responses(401, 403, 404, 422, 503)
_PATH = "/facilities/{facility_id}/station-locks"

#: A station is the From URI's user part: the characters a SIP user part may hold.
Station = Annotated[str, Path(min_length=1, max_length=64,
                              pattern=r"^[0-9A-Za-z+*#._~!$&'()=,;:@-]+$",
                              description="The station (the From URI's user part).")]


@router.get(_PATH, response_model=list[StationLockOut],
            summary="Stations whose PIN entry is locked after repeated wrong PINs",
            responses=_ERRORS)
async def list_station_locks(facility_id: FacilityId, caller: Caller,
                             ctx: Context) -> list[StationLockOut]:
    _facility(ctx, caller, facility_id)
    locks = await ctx.require_accounts().list_station_locks(facility_id, ctx.clock())
    return [StationLockOut.of(lock) for lock in locks]


@router.delete(_PATH + "/{station}", status_code=204,
               summary="Lift a station's PIN-entry lock", responses=_ERRORS)
async def clear_station_lock(facility_id: FacilityId, station: Station, caller: Caller,
                             ctx: Context) -> Response:
    _facility(ctx, caller, facility_id)
    if not await ctx.require_accounts().clear_station_lock(facility_id, station):
        raise NotFound(f"station {station} at {facility_id} is not locked", field="station")
    return Response(status_code=204)
