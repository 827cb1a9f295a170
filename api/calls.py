"""Admin view of calls in progress on this node, and an operator's hang-up."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import Caller, Context, StrictQuery
from api.errors import NotFound, responses
from api.live_calls import LiveCallView

router = APIRouter(prefix="/v1/calls", tags=["live calls"], dependencies=[StrictQuery])

_ERRORS = responses(401, 403, 503)


class LiveCallOut(BaseModel):
    call_id: str
    facility: str
    pin: str
    number: str
    state: str
    started_at: datetime
    product: str | None = None
    answered_at: datetime | None = None
    recorded: bool
    max_seconds: int | None = None

    @classmethod
    def of(cls, call: LiveCallView) -> LiveCallOut:
        return cls(
            call_id=call.call_id, facility=call.facility, pin=call.pin, number=call.number,
            state=call.state, started_at=call.started_at, product=call.product,
            answered_at=call.answered_at, recorded=call.recorded, max_seconds=call.max_seconds,
        )


class HangUpRequest(BaseModel):
    reason: str = Field(default="operator", max_length=200,
                        description="Why the call is ended; written to the CDR.")


class HangUpResult(BaseModel):
    call_id: str
    hung_up: bool


@router.get("", response_model=list[LiveCallOut], summary="List calls in progress",
            responses=_ERRORS)
async def list_calls(caller: Caller, ctx: Context) -> list[LiveCallOut]:
    caller.require("admin", "facility")
    calls = ctx.require_live_calls().list_calls()
    return [LiveCallOut.of(c) for c in calls if caller.may_see_facility(c.facility)]


@router.post("/{call_id}/hang-up", response_model=HangUpResult, summary="End a call now",
             responses={**_ERRORS, **responses(404, 422)})
async def hang_up(
    caller: Caller, ctx: Context,
    call_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: HangUpRequest | None = None,
) -> HangUpResult:
    caller.require("admin")
    reason = body.reason if body is not None else "operator"
    if not await ctx.require_live_calls().hang_up(call_id, reason):
        raise NotFound(f"no call {call_id!r} in progress on this node", field="call_id")
    return HangUpResult(call_id=call_id, hung_up=True)
