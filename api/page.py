"""The rate calculator page for families: a form that works with or without JavaScript."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import HTMLResponse

from api.context import ServiceContext, get_context
from api.errors import ApiError
from api.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, pick_language
from api.quote import quote_document

router = APIRouter(tags=["rate calculator"])

_HERE: Final = Path(__file__).parent
_ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

#: Nothing on the page comes from another origin; the browser enforces it.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def dollars(amount: str | None) -> str:
    if amount is None:
        return ""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return amount
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value)}"


_ENV.filters["dollars"] = dollars


def _facilities(ctx: ServiceContext) -> list[dict[str, Any]]:
    return [
        {"id": fid, "name": getattr(f, "name", fid), "max_minutes": int(f.max_call_minutes)}
        for fid, f in sorted(ctx.config.facilities.items(),
                             key=lambda item: str(getattr(item[1], "name", item[0])))
    ]


def _page_state(
    ctx: ServiceContext, t: Translator, facility: str | None, number: str | None,
    minutes: str | None,
) -> dict[str, Any]:
    """Form values, the quote if the form was submitted, and per-field errors."""
    errors: dict[str, str] = {}
    quote: dict[str, Any] | None = None
    facility_cfg = ctx.config.facilities.get(facility) if facility else None
    max_minutes = int(facility_cfg.max_call_minutes) if facility_cfg is not None else None
    submitted = any(v not in (None, "") for v in (facility, number, minutes))
    if submitted:
        if facility_cfg is None:
            errors["facility"] = t("error.facility")
        if not (number or "").strip():
            errors["number"] = t("error.number")
        minutes_value: int | None = None
        text = (minutes or "").strip()
        if text.isascii() and text.isdigit() and len(text) <= 6:
            minutes_value = int(text)
        limit = max_minutes if max_minutes is not None else "…"
        if minutes_value is None or minutes_value < 1 or (
            max_minutes is not None and minutes_value > max_minutes
        ):
            errors["minutes"] = t("error.minutes", max=limit)
        if not errors and facility and number and minutes_value is not None:
            try:
                quote = quote_document(ctx, facility, number.strip(), minutes_value)
            except ApiError as exc:
                field = exc.field if exc.field in ("facility", "number", "minutes") else "number"
                if exc.status >= 500:
                    errors["form"] = t("error.unavailable")
                else:
                    errors[field] = t(f"error.{field}", max=limit)
    return {"quote": quote, "errors": errors, "max_minutes": max_minutes,
            "submitted": submitted}


@router.get(
    "/",
    summary="Rate calculator page",
    description="HTML page for families. Without JavaScript the form submits here and the "
    "quote is rendered on the server; `fragment=result` returns only the result section.",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                     "description": "The page (or its result section)"},
               # Given as content, not a model: FastAPI would label a model's
               # schema with the route's text/html media type.
               422: {"description": "A parameter is longer than allowed",
                     "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}},
)
async def rate_calculator_page(
    ctx: Annotated[ServiceContext, Depends(get_context)],
    facility: Annotated[str | None, Query(max_length=100)] = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
    minutes: Annotated[str | None, Query(max_length=10)] = None,
    lang: Annotated[str | None, Query(max_length=10, description="en or es")] = None,
    fragment: Annotated[str | None, Query(max_length=10, description="'result' for the "
                                          "result section only")] = None,
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> HTMLResponse:
    language = pick_language(lang, accept_language)
    t = Translator(language)
    state = _page_state(ctx, t, facility, number, minutes)
    form = {"facility": facility or "", "number": number or "", "minutes": minutes or ""}
    switch = {}
    for other in LANGUAGES:
        params = {k: v for k, v in form.items() if v}
        params["lang"] = other
        switch[other] = "/?" + urlencode(params)
    template = "result.html" if fragment == "result" else "page.html"
    html = _ENV.get_template(template).render(
        t=t, lang=language, languages=LANGUAGE_NAMES, switch=switch, form=form,
        facilities=_facilities(ctx), **state,
    )
    status = 200
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
               "Content-Language": language, "Vary": "Accept-Language"}
    return HTMLResponse(html, status_code=status, headers=headers)
