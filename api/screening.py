"""Admin API for screening data: incarcerated people, blocked, allowed and privileged numbers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from accounts import DuplicateRequest, Person
from api.auth import Principal
from api.context import ServiceContext
from api.deps import Caller, Context, StrictQuery, e164
from api.errors import Conflict, InvalidParameter, NotFound, responses
from api.schemas import PersonOut, RefundOut

router = APIRouter(prefix="/v1", tags=["screening"], dependencies=[StrictQuery])

SCREENING_ROLES = ("admin", "facility")
_ERRORS = responses(401, 403, 404, 409, 422, 503)

FacilityId = Annotated[str, Path(min_length=1, max_length=100)]
Pin = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z]+$")]
Number = Annotated[str, Path(min_length=1, max_length=40)]


class NewPerson(BaseModel):
    pin: str = Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z]+$")
    name: str = Field(default="", max_length=200)
    language: Literal["en", "es"] = "en"
    allowed_numbers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=100)


class LanguageChange(BaseModel):
    language: Literal["en", "es"]


class ReleaseResult(BaseModel):
    person: PersonOut
    refund: RefundOut | None = Field(description="Refund of the Debit balance, if any.")


class Block(BaseModel):
    pattern: str = Field(description="An E.164 number, or a digit prefix when prefix is true.")
    prefix: bool


class NewBlock(BaseModel):
    number: str | None = Field(default=None, min_length=1, max_length=40,
                               description="Block one number (any written form).")
    prefix: str | None = Field(default=None, pattern=r"^\+?[0-9]{1,15}$",
                               description="Block every number starting with these digits, "
                               "e.g. '+1900'.")


class PrivilegedNumber(BaseModel):
    number: str


class PrivilegedNote(BaseModel):
    note: str = Field(default="", max_length=200, description="e.g. the attorney's name")


def _facility(ctx: ServiceContext, caller: Principal, facility_id: str) -> str:
    caller.require(*SCREENING_ROLES)
    caller.require_facility(facility_id)
    if facility_id not in ctx.config.facilities:
        raise NotFound(f"unknown facility {facility_id!r}", field="facility")
    return facility_id


# -- people -------------------------------------------------------------------


@router.get("/facilities/{facility_id}/people", response_model=list[PersonOut],
            summary="Incarcerated people at a facility", responses=_ERRORS)
async def list_people(facility_id: FacilityId, caller: Caller, ctx: Context) -> list[PersonOut]:
    _facility(ctx, caller, facility_id)
    people = await ctx.require_accounts().store.list_people(facility_id)
    return [PersonOut.of(p) for p in people]


@router.post("/facilities/{facility_id}/people", status_code=201, response_model=PersonOut,
             summary="Add a person (PIN unique within the facility)", responses=_ERRORS)
async def add_person(facility_id: FacilityId, body: NewPerson, caller: Caller,
                     ctx: Context) -> PersonOut:
    _facility(ctx, caller, facility_id)
    allowed = frozenset(e164(n, "allowed_numbers") for n in body.allowed_numbers)
    person = Person(facility_id=facility_id, pin=body.pin, name=body.name,
                    language=body.language, allowed_numbers=allowed)
    try:
        added = await ctx.require_accounts().store.add_person(person)
    except DuplicateRequest:
        raise Conflict(f"PIN {body.pin} already exists at {facility_id}", field="pin") from None
    return PersonOut.of(added)


@router.get("/facilities/{facility_id}/people/{pin}", response_model=PersonOut,
            summary="A person", responses=_ERRORS)
async def get_person(facility_id: FacilityId, pin: Pin, caller: Caller,
                     ctx: Context) -> PersonOut:
    _facility(ctx, caller, facility_id)
    return PersonOut.of(await ctx.require_accounts().store.get_person(facility_id, pin))


@router.put("/facilities/{facility_id}/people/{pin}/language", response_model=PersonOut,
            summary="Set the language of the person's prompts", responses=_ERRORS)
async def set_language(facility_id: FacilityId, pin: Pin, body: LanguageChange, caller: Caller,
                       ctx: Context) -> PersonOut:
    _facility(ctx, caller, facility_id)
    store = ctx.require_accounts().store
    return PersonOut.of(await store.set_person_language(facility_id, pin, body.language))


@router.put("/facilities/{facility_id}/people/{pin}/allowed-numbers/{number}",
            response_model=PersonOut, summary="Add a number to the person's allowed list",
            responses=_ERRORS)
async def allow_number(facility_id: FacilityId, pin: Pin, number: Number, caller: Caller,
                       ctx: Context) -> PersonOut:
    _facility(ctx, caller, facility_id)
    store = ctx.require_accounts().store
    return PersonOut.of(await store.set_allowed_number(facility_id, pin, e164(number), True))


@router.delete("/facilities/{facility_id}/people/{pin}/allowed-numbers/{number}",
               response_model=PersonOut, summary="Remove a number from the allowed list",
               responses=_ERRORS)
async def disallow_number(facility_id: FacilityId, pin: Pin, number: Number, caller: Caller,
                          ctx: Context) -> PersonOut:
    _facility(ctx, caller, facility_id)
    store = ctx.require_accounts().store
    return PersonOut.of(await store.set_allowed_number(facility_id, pin, e164(number), False))


@router.post("/facilities/{facility_id}/people/{pin}/release", response_model=ReleaseResult,
             summary="Mark a person released (their Debit balance is refunded)",
             responses=_ERRORS)
async def release_person(facility_id: FacilityId, pin: Pin, caller: Caller,
                         ctx: Context) -> ReleaseResult:
    _facility(ctx, caller, facility_id)
    service = ctx.require_accounts()
    refund = await service.release_person(facility_id, pin, ctx.clock())
    person = await service.store.get_person(facility_id, pin)
    return ReleaseResult(person=PersonOut.of(person),
                         refund=RefundOut.of(refund) if refund is not None else None)


# -- facility blocks ----------------------------------------------------------------


@router.get("/facilities/{facility_id}/blocks", response_model=list[Block],
            summary="Numbers and prefixes blocked at a facility", responses=_ERRORS)
async def list_blocks(facility_id: FacilityId, caller: Caller, ctx: Context) -> list[Block]:
    _facility(ctx, caller, facility_id)
    blocks = await ctx.require_accounts().store.list_facility_blocks(facility_id)
    return [Block(pattern=p, prefix=is_prefix) for p, is_prefix in blocks]


def _block_target(body: NewBlock | None, number: str | None, prefix: str | None) -> Block:
    if body is not None:
        number, prefix = body.number, body.prefix
    if (number is None) == (prefix is None):
        raise InvalidParameter("give exactly one of number and prefix", field="number")
    if prefix is not None:
        return Block(pattern=prefix, prefix=True)
    assert number is not None
    return Block(pattern=e164(number), prefix=False)


@router.post("/facilities/{facility_id}/blocks", status_code=201, response_model=Block,
             summary="Block a number or a prefix at a facility", responses=_ERRORS)
async def add_block(facility_id: FacilityId, body: NewBlock, caller: Caller,
                    ctx: Context) -> Block:
    _facility(ctx, caller, facility_id)
    block = _block_target(body, None, None)
    await ctx.require_accounts().store.set_facility_block(
        facility_id, block.pattern, prefix=block.prefix, blocked=True)
    return block


@router.delete("/facilities/{facility_id}/blocks", status_code=204,
               summary="Unblock a number or a prefix", responses=_ERRORS)
async def remove_block(
    facility_id: FacilityId, caller: Caller, ctx: Context,
    number: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    prefix: Annotated[str | None, Query(pattern=r"^\+?[0-9]{1,15}$")] = None,
) -> Response:
    _facility(ctx, caller, facility_id)
    block = _block_target(None, number, prefix)
    await ctx.require_accounts().store.set_facility_block(
        facility_id, block.pattern, prefix=block.prefix, blocked=False)
    return Response(status_code=204)


# -- privileged numbers ---------------------------------------------------------------


@router.get("/privileged-numbers", response_model=list[PrivilegedNumber],
            summary="Privileged (attorney) numbers, never recorded", responses=_ERRORS)
async def list_privileged(caller: Caller, ctx: Context) -> list[PrivilegedNumber]:
    caller.require(*SCREENING_ROLES)
    numbers = await ctx.require_accounts().store.list_privileged()
    return [PrivilegedNumber(number=n) for n in numbers]


@router.put("/privileged-numbers/{number}", response_model=PrivilegedNumber,
            summary="Mark a number privileged (every facility)", responses=_ERRORS)
async def add_privileged(number: Number, caller: Caller, ctx: Context,
                         body: PrivilegedNote | None = None) -> PrivilegedNumber:
    # Privileged numbers apply to every facility, so a facility token may not set them.
    caller.require("admin")
    n = e164(number)
    await ctx.require_accounts().store.set_privileged(n, True, body.note if body else "")
    return PrivilegedNumber(number=n)


@router.delete("/privileged-numbers/{number}", status_code=204,
               summary="Remove a privileged number", responses=_ERRORS)
async def remove_privileged(number: Number, caller: Caller, ctx: Context) -> Response:
    caller.require("admin")
    await ctx.require_accounts().store.set_privileged(e164(number), False)
    return Response(status_code=204)


# -- called-party blocks ---------------------------------------------------------------


class SelfBlock(BaseModel):
    facility: str | None = Field(
        default=None, max_length=100,
        description="The facility the called party blocked; null blocks every facility.")


@router.get("/numbers/{number}/self-blocks", response_model=list[SelfBlock],
            summary="Facilities a called party asked not to be called from", responses=_ERRORS)
async def list_self_blocks(number: Number, caller: Caller, ctx: Context) -> list[SelfBlock]:
    caller.require("admin")
    blocks = await ctx.require_accounts().store.list_self_blocks(e164(number))
    return [SelfBlock(facility=f) for f in blocks]


@router.put("/numbers/{number}/self-blocks", response_model=SelfBlock,
            summary="Record a called party's block of a facility (or of all)",
            responses=_ERRORS)
async def add_self_block(number: Number, body: SelfBlock, caller: Caller,
                         ctx: Context) -> SelfBlock:
    caller.require("admin")
    if body.facility is not None and body.facility not in ctx.config.facilities:
        raise InvalidParameter(f"unknown facility {body.facility!r}", field="facility")
    await ctx.require_accounts().block_facility_for_number(e164(number), body.facility)
    return body


@router.delete("/numbers/{number}/self-blocks", status_code=204,
               summary="Lift a called party's block (of one facility, or the block of all)",
               responses=_ERRORS)
async def remove_self_block(
    number: Number, caller: Caller, ctx: Context,
    facility: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> Response:
    caller.require("admin")
    await ctx.require_accounts().unblock_facility_for_number(e164(number), facility)
    return Response(status_code=204)
