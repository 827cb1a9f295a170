"""The FastAPI application factory: one app per node, wired to its stores and controller."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts import AccountsError
from api.auth import TokenRegistry
from api.context import ReadinessCheck, ServiceContext, utc_now
from api.errors import ApiError, ErrorBody
from api.live_calls import LiveCalls
from api.metrics import Metrics
from rating import RatingError

log = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"


def create_app(
    config: Any,
    accounts_service: Any | None = None,
    live_calls: LiveCalls | None = None,
    metrics: Metrics | None = None,
    *,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Build the HTTP service.

    ``config`` is the loaded ``ServiceConfig``; ``accounts_service`` the account
    service (admin endpoints answer 503 without one); ``live_calls`` the call
    controller's view of calls in progress; ``metrics`` the process's metrics
    (a fresh registry if omitted); ``readiness`` named checks for ``/readyz``.
    """
    from api import accounts as accounts_routes
    from api import calls as calls_routes
    from api import cdrs as cdrs_routes
    from api import (
        family_admin,
        family_pages,
        ops,
        page,
        quote,
        restrictions,
        screening,
        station_locks,
    )

    app = FastAPI(
        title="Inmate calling services",
        version="1.0",
        description="Rate calculator for families, account administration for facilities "
        "and finance staff, and operations endpoints. Admin endpoints under `/v1` need "
        "`Authorization: Bearer <token>`; money is always a decimal string.",
        docs_url="/docs",
        redoc_url=None,
    )
    metrics = metrics if metrics is not None else Metrics()
    app.state.context = ServiceContext(
        config=config,
        metrics=metrics,
        tokens=TokenRegistry(getattr(config, "admin_tokens", ()) or ()),
        accounts=accounts_service,
        live_calls=live_calls,
        readiness=dict(readiness or {}),
        clock=clock,
    )
    app.state.quote_cache = quote.QuoteCache(app.state.context)
    _install_family(app, config, accounts_service, clock)
    _install_error_handlers(app)
    for module in (ops, quote, page, accounts_routes, screening, restrictions, station_locks,
                   cdrs_routes, calls_routes, family_admin, family_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    app.add_middleware(RequestCounter, metrics=metrics)
    return app


def _install_family(app: FastAPI, config: Any, service: Any,
                    clock: Callable[[], datetime]) -> None:
    """The family pages' sign-in records and, with an ``[smtp]`` section, their alerts."""
    app.state.family = None
    app.state.family_alerts = None
    if service is None:
        return
    from accounts.family import FamilyAccess, family_store_for
    from api.family_alerts import FamilyAlerts

    app.state.family = FamilyAccess(service, family_store_for(service.store))
    smtp = getattr(config, "smtp", None)
    if smtp is not None:
        app.state.family_alerts = FamilyAlerts(app.state.family, smtp, clock=clock)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(AccountsError)
    async def accounts_error(request: Request, exc: AccountsError) -> JSONResponse:
        return _accounts_answer(request, exc)

    @app.exception_handler(RatingError)
    async def rating_error(request: Request, exc: RatingError) -> JSONResponse:
        body = ErrorBody(error="invalid_parameter", message=str(exc), field=exc.field)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path",
                                                                   "header")]
        status = 400 if first.get("type") == "json_invalid" else 422
        field = "body" if status == 400 else (".".join(loc) or None)
        message = str(first.get("msg", "invalid request"))
        if field:
            message = f"{field}: {message}"
        body = ErrorBody(error="invalid_parameter" if status == 422 else "malformed_body",
                         message=message, field=field)
        return JSONResponse(body.model_dump(), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = ErrorBody(error=code, message=str(exc.detail))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; a path
            # served by several routes (GET and POST) allows all of their methods.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(body.model_dump(), status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = ErrorBody(error="internal_error", message="internal error; it has been logged")
        return JSONResponse(body.model_dump(), status_code=500)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


_ACCOUNTS_CODES = {
    "InvalidRequest": "invalid_parameter",
    "UnknownAccount": "not_found",
    "NotFound": "not_found",
    "DuplicateRequest": "duplicate",
    "InsufficientFunds": "insufficient_funds",
    "InvalidState": "invalid_state",
    "StoreUnavailable": "store_unavailable",
}
#: Accounts errors name the field they blame as a "field: reason" prefix.
_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)*): ")


def _accounts_answer(request: Request, exc: AccountsError) -> JSONResponse:
    status = int(getattr(exc, "http_status", 400))
    # A 400 from the accounts layer is a field that failed a business rule.
    status = 422 if status == 400 else status
    message = str(exc) or type(exc).__name__
    match = _FIELD_PREFIX.match(message)
    field = match.group(1) if match else None
    if status == 503:
        ctx: ServiceContext = request.app.state.context
        store = type(getattr(ctx.accounts, "store", None)).__name__
        ctx.metrics.store_error(store, request.scope.get("route").path  # type: ignore[union-attr]
                                if request.scope.get("route") else request.url.path)
    code = _ACCOUNTS_CODES.get(type(exc).__name__, "conflict" if status == 409 else "error")
    return JSONResponse(ErrorBody(error=code, message=message, field=field).model_dump(),
                        status_code=status)


class RequestCounter:
    """Counts answered requests by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = "/static" if scope["path"].startswith("/static/") else "(unmatched)"
            self.metrics.http_request(scope["method"], template, status)
