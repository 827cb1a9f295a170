"""Admin API for call detail records: filtered listing and CSV export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from accounts import CallDetailRecord, CdrFilter, export_csv
from api.auth import Principal
from api.context import ServiceContext
from api.deps import Caller, Context, StrictQuery, e164
from api.errors import NotFound, responses
from api.schemas import CdrOut, IsoDateTime

router = APIRouter(prefix="/v1", tags=["call detail records"], dependencies=[StrictQuery])

CDR_ROLES = ("admin", "finance", "facility")
_ERRORS = responses(401, 403, 404, 422, 503)
MAX_LIMIT = 10_000


async def _records(
    ctx: ServiceContext, caller: Principal, facility: str | None, pin: str | None,
    number: str | None, account_id: str | None, since: IsoDateTime | None,
    until: IsoDateTime | None, limit: int,
) -> list[CallDetailRecord]:
    caller.require(*CDR_ROLES)
    if facility is not None:
        caller.require_facility(facility)
    elif caller.role == "facility" and len(caller.facilities) == 1:
        facility = next(iter(caller.facilities))
    filters = CdrFilter(
        facility_id=facility, pin=pin, number_e164=e164(number) if number else None,
        payer_account_id=account_id, since=since, until=until,
        # A facility token spanning several facilities filters after the read.
        limit=None if caller.role == "facility" and facility is None else limit,
    )
    found = await ctx.require_accounts().store.list_cdrs(filters)
    visible = [c for c in found if caller.may_see_facility(c.facility_id)]
    return visible[:limit]


Facility = Annotated[str | None, Query(min_length=1, max_length=100)]
PinQ = Annotated[str | None, Query(min_length=1, max_length=40)]
NumberQ = Annotated[str | None, Query(min_length=1, max_length=40)]
AccountQ = Annotated[str | None, Query(min_length=1, max_length=100)]
Since = Annotated[IsoDateTime | None, Query(description="Calls set up at or after")]
Until = Annotated[IsoDateTime | None, Query(description="Calls set up before")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.get("/cdrs", response_model=list[CdrOut], summary="Call detail records",
            responses=_ERRORS)
async def list_cdrs(
    caller: Caller, ctx: Context, facility: Facility = None, pin: PinQ = None,
    number: NumberQ = None, account_id: AccountQ = None, since: Since = None,
    until: Until = None, limit: Limit = 1000,
) -> list[CdrOut]:
    records = await _records(ctx, caller, facility, pin, number, account_id, since, until, limit)
    return [CdrOut.of(c) for c in records]


@router.get(
    "/cdrs.csv", summary="Call detail records as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "CSV with a header row"}, **_ERRORS},
)
async def export_cdrs(
    caller: Caller, ctx: Context, facility: Facility = None, pin: PinQ = None,
    number: NumberQ = None, account_id: AccountQ = None, since: Since = None,
    until: Until = None, limit: Limit = MAX_LIMIT,
) -> Response:
    records = await _records(ctx, caller, facility, pin, number, account_id, since, until, limit)
    return Response(export_csv(records), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'})


@router.get("/cdrs/{call_id}", response_model=CdrOut, summary="One call's record",
            responses=_ERRORS)
async def get_cdr(call_id: Annotated[str, Path(min_length=1, max_length=200)], caller: Caller,
                  ctx: Context) -> CdrOut:
    caller.require(*CDR_ROLES)
    record = await ctx.require_accounts().store.get_cdr(call_id)
    if not caller.may_see_facility(record.facility_id):
        # Do not reveal that another facility's call exists.
        raise NotFound(f"no call {call_id!r}", field="call_id")
    return CdrOut.of(record)
