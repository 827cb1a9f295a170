"""Admin API for a person's calling restrictions: list, impose and lift them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from accounts import NotFound as PersonNotFound
from accounts import Person, Restriction
from api.context import ServiceContext
from api.deps import Caller, Context, StrictQuery
from api.errors import InvalidParameter, NotFound, responses
from api.schemas import IsoDateTime, RestrictionOut
from api.screening import FacilityId, Pin, _facility

router = APIRouter(prefix="/v1", tags=["screening"], dependencies=[StrictQuery])

_ERRORS = responses(401, 403, 404, 422, 503)
_PATH = "/facilities/{facility_id}/people/{pin}/restrictions"

RestrictionId = Annotated[str, Path(min_length=1, max_length=40,
                                    pattern=r"^[0-9A-Za-z-]+$")]


class NewRestriction(BaseModel):
    # A field the store cannot keep (say a start date) must not be silently dropped.
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$",
                      description="What is restricted, e.g. 'suspension'; it is the reason "
                      "given when a call is refused.")
    until: IsoDateTime | None = Field(
        default=None, description="When the restriction ends (it applies until then, from "
        "now); null restricts until lifted. Must be in the future.")
    note: str = Field(default="", max_length=200, description="Why, for staff.")


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        # e.g. 9999-12-31T23:00:00-05:00 has no UTC form.
        raise InvalidParameter(f"until: {value.isoformat()} is out of range",
                               field="until") from None


async def _person(ctx: ServiceContext, facility_id: str, pin: str) -> Person:
    try:
        return await ctx.require_accounts().store.get_person(facility_id, pin)
    except PersonNotFound:
        raise NotFound(f"no person with PIN {pin} at {facility_id}", field="pin") from None


@router.get(_PATH, response_model=list[RestrictionOut],
            summary="A person's calling restrictions (ended ones included)", responses=_ERRORS)
async def list_restrictions(facility_id: FacilityId, pin: Pin, caller: Caller,
                            ctx: Context) -> list[RestrictionOut]:
    _facility(ctx, caller, facility_id)
    person = await _person(ctx, facility_id, pin)
    return [RestrictionOut.of(r) for r in person.restrictions]


@router.post(_PATH, status_code=201, response_model=RestrictionOut,
             summary="Restrict a person's calling (the same restriction twice is one)",
             responses={**_ERRORS, 200: {"model": RestrictionOut,
                                         "description": "The same restriction already existed"}})
async def add_restriction(facility_id: FacilityId, pin: Pin, body: NewRestriction,
                          caller: Caller, ctx: Context, response: Response) -> RestrictionOut:
    _facility(ctx, caller, facility_id)
    until = None if body.until is None else _utc(body.until)
    now = ctx.clock()
    if until is not None and until <= now:
        raise InvalidParameter(f"until: {until.isoformat()} is not after now "
                               f"({now.isoformat()}); a restriction must end in the future",
                               field="until")
    new = Restriction(kind=body.kind, until=until, note=body.note)
    # One atomic store step, so changes from several nodes at once are all kept.
    try:
        added = await ctx.require_accounts().store.add_restriction(facility_id, pin, new)
    except PersonNotFound:
        raise NotFound(f"no person with PIN {pin} at {facility_id}", field="pin") from None
    if not added:
        response.status_code = 200
    return RestrictionOut.of(new)


@router.delete(_PATH + "/{restriction_id}", status_code=204,
               summary="Lift a restriction", responses=_ERRORS)
async def lift_restriction(facility_id: FacilityId, pin: Pin, restriction_id: RestrictionId,
                           caller: Caller, ctx: Context) -> Response:
    _facility(ctx, caller, facility_id)
    try:
        removed = await ctx.require_accounts().store.remove_restriction(
            facility_id, pin, restriction_id)
    except PersonNotFound:
        raise NotFound(f"no person with PIN {pin} at {facility_id}", field="pin") from None
    if not removed:
        raise NotFound(f"person {pin} has no restriction {restriction_id}",
                       field="restriction_id")
    return Response(status_code=204)
