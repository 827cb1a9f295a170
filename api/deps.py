"""Request dependencies shared by the admin routers: the caller and the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal
from api.context import ServiceContext, get_context

# auto_error=False: we answer a missing token with our own 401 body; the scheme
# is still declared so that /openapi.json documents it.
_bearer = HTTPBearer(auto_error=False, description="Admin API token from the service config")


async def current_principal(
    request: Request,
    ctx: Annotated[ServiceContext, Depends(get_context)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return ctx.tokens.authenticate(request.headers.get("authorization"))


Caller = Annotated[Principal, Depends(current_principal)]
Context = Annotated[ServiceContext, Depends(get_context)]


def accounts_of(ctx: ServiceContext) -> Any:
    return ctx.require_accounts()


def e164(number: str, field: str = "number") -> str:
    """A written number in E.164, or a 422 naming ``field``."""
    from accounts import InvalidRequest, normalize_number
    from api.errors import InvalidParameter

    try:
        return normalize_number(number, field)
    except InvalidRequest as exc:
        raise InvalidParameter(str(exc), field=field) from None
