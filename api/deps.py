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


def _query_names(dependant: Any) -> frozenset[str]:
    names: set[str] = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


_DECLARED: dict[int, frozenset[str]] = {}


def check_query(request: Request) -> None:
    """Refuse unknown or repeated query parameters on the JSON API.

    A misspelt filter (``facilty=``) would otherwise be ignored and, say, export
    every facility's calls; a repeated one would silently keep only the last.
    """
    from api.errors import InvalidParameter

    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared = _DECLARED.get(id(dependant))
    if declared is None:
        declared = _DECLARED[id(dependant)] = _query_names(dependant)
    for name in set(request.query_params.keys()):
        if name not in declared:
            raise InvalidParameter(f"unknown query parameter {name!r}", field=name or "query")
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidParameter(f"query parameter {name!r} given more than once", field=name)


async def strict_query(request: Request) -> None:
    check_query(request)


StrictQuery = Depends(strict_query)
