"""Admin API for family sign-in: a one-time set-up code for an account's holder."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.accounts import MONEY_ROLES, Id
from api.deps import Caller, StrictQuery
from api.errors import Unavailable, responses

router = APIRouter(prefix="/v1", tags=["accounts"], dependencies=[StrictQuery])


class SetupCode(BaseModel):
    account_id: str
    code: str = Field(description="Give it to the account holder (by phone or post); it is "
                      "shown only once and sets a passcode once.")
    expires_at: datetime


@router.post("/accounts/{account_id}/family-setup-code", status_code=201,
             response_model=SetupCode, summary="Issue a one-time set-up code for the "
             "account holder's own pages (any earlier code stops working)",
             responses=responses(401, 403, 404, 422, 503))
async def issue_setup_code(account_id: Id, caller: Caller, request: Request) -> SetupCode:
    caller.require(*MONEY_ROLES)
    family = getattr(request.app.state, "family", None)
    if family is None:
        raise Unavailable("the account store is not configured on this node")
    code, expires = await family.issue_setup_code(account_id, request.app.state.context.clock())
    return SetupCode(account_id=account_id, code=code, expires_at=expires)
