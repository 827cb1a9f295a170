"""The public rate calculator: what a call will cost, before it is made."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import ServiceContext
from api.deps import check_query
from api.errors import InvalidParameter, NotFound, responses
from rating import RatingError
from rating import quote_document as rate

router = APIRouter(tags=["rate calculator"])


class Charge(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    amount: str = Field(description="Decimal string, 2 places.")


class ProductQuote(BaseModel):
    model_config = ConfigDict(extra="allow")
    product: str = Field(description="advance_connect, direct_bill, debit, single_call, ...")
    rate_per_minute: str = Field(description="Decimal string, 4 places: "
                                 "capped_rate_per_minute plus termination_per_minute.")
    capped_rate_per_minute: str | None = Field(
        default=None, description="The part of the rate a regulatory cap limits.")
    termination_per_minute: str | None = Field(
        default=None, description="An international destination's termination cost, "
        "allowed on top of the cap; 0 for domestic calls.")
    billed_minutes: int
    charge: str = Field(description="Rate times billed minutes, rounded once to the cent.")
    fees: list[Charge]
    taxes: list[Charge]
    total: str = Field(description="Charge plus fees plus taxes, decimal string.")


class QuoteDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    facility: str
    number: str = Field(description="The called number in E.164 form.")
    minutes: int
    jurisdiction: str = Field(description="intrastate, interstate or international.")
    cap_per_minute: str | None = Field(
        description="The regulatory per-minute cap in force, for comparison; null if none."
    )
    quotes: list[ProductQuote]


def facility_config(ctx: ServiceContext, facility_id: str) -> Any:
    facility = ctx.config.facilities.get(facility_id)
    if facility is None:
        raise NotFound(f"unknown facility {facility_id!r}", field="facility")
    return facility


def quote_document(
    ctx: ServiceContext, facility_id: str, number: str, minutes: int,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The quote for one call made at ``at`` (now), or an ``ApiError`` naming the bad field."""
    facility = facility_config(ctx, facility_id)
    maximum = int(facility.max_call_minutes)
    if not 1 <= minutes <= maximum:
        raise InvalidParameter(
            f"minutes must be between 1 and {maximum} at this facility", field="minutes"
        )
    try:
        # Rules and fee date ranges are judged on the facility's own calendar day.
        local = (at or ctx.clock()).astimezone(facility.zone)
        doc: dict[str, Any] = rate(facility.rated, number, minutes, local)
    except RatingError as exc:
        raise InvalidParameter(str(exc), field=getattr(exc, "field", None) or "number") from exc
    return doc


class QuoteCache:
    """Serialized quote documents, reused within the minute they were computed for.

    A quote is a pure function of the immutable config, the facility, the number
    as typed, the minutes and the instant; pricing it at the start of the current
    minute makes that instant part of the key, so a cached answer is exactly what
    recomputing would give, and no entry outlives its minute in use. Errors are
    not cached. Bounded: least recently used entries go first.
    """

    def __init__(self, ctx: ServiceContext, size: int = 4096) -> None:
        self._ctx = ctx
        self._render = functools.lru_cache(maxsize=size)(self._render_uncached)

    def document_json(self, facility_id: str, number: str, minutes: int) -> bytes:
        minute = self._ctx.clock().replace(second=0, microsecond=0)
        return self._render(facility_id, number, minutes, minute)

    def _render_uncached(self, facility_id: str, number: str, minutes: int,
                         at: datetime) -> bytes:
        doc = quote_document(self._ctx, facility_id, number, minutes, at)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def info(self) -> Any:
        return self._render.cache_info()


@router.get(
    "/v1/quote",
    summary="Quote a call",
    description="The jurisdiction of a call from a facility to a number and, per product "
    "that could pay, the per-minute rate, charge, fees, taxes and total (decimal strings), "
    "with the regulatory cap in force for comparison.",
    response_model=None,
    responses={200: {"model": QuoteDocument, "description": "The quote"},
               **responses(404, 422)},
)
async def get_quote(
    request: Request,
    facility: Annotated[str, Query(description="Facility id, e.g. tx-state-prison",
                                   min_length=1, max_length=100)],
    number: Annotated[str, Query(description="Called number: 10 digits, 1+10 digits, "
                                 "+E.164 or 011+international", min_length=1, max_length=40)],
    minutes: Annotated[int, Query(description="Call length, 1 to the facility maximum", ge=1)],
) -> Response:
    # The hottest public endpoint: no dependencies to solve, the same checks inline.
    check_query(request)
    cache: QuoteCache = request.app.state.quote_cache
    return Response(cache.document_json(facility, number, minutes),
                    media_type="application/json")
