"""What every family page needs: its language, its form fields, cookies, CSRF checks, rendering.

Forms are read here rather than by a form library: the body is refused past
``MAX_FORM_BYTES``, fields past their own limits, and a repeated or unknown
field is an error, so a page never acts on a field it did not expect.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accounts.family import FamilyAccess, FamilySession
from api.context import ServiceContext
from api.family_i18n import FamilyTranslator
from api.i18n import LANGUAGE_NAMES, LANGUAGES, pick_language
from api.page import _ENV

SESSION_COOKIE: Final = "ics_family"
FORM_CSRF_COOKIE: Final = "ics_family_form"
LANG_COOKIE: Final = "ics_lang"
MAX_FORM_BYTES: Final = 8192

#: Like the calculator's, and nothing posts anywhere but here.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class FormError(Exception):
    """The form could not be read at all (too big, wrong type, undecodable, repeated)."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


async def read_form(request: Request, limits: Mapping[str, int]) -> dict[str, str]:
    """The urlencoded body's fields, each within ``limits[name]`` characters."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type and request.headers.get("content-length", "0") == "0":
        return {}  # a form with no fields at all
    if content_type != "application/x-www-form-urlencoded":
        raise FormError(415, "error.field")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise FormError(413, "error.too_long")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, "error.too_long")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=len(limits) + 1, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "error.field") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name not in limits or name in fields:
            raise FormError(400, "error.field")
        if len(value) > limits[name]:
            raise FormError(413, "error.too_long")
        if "\x00" in value:
            raise FormError(400, "error.field")
        fields[name] = value
    return fields


def language(request: Request) -> str:
    query = request.query_params.get("lang")
    if query in LANGUAGES:
        return query
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return pick_language(None, request.headers.get("accept-language"))


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/account", httponly=True,
                        secure=secure(request), samesite="lax")


def page_headers(lang: str) -> dict[str, str]:
    return {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Content-Language": lang,
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Vary": "Accept-Language, Cookie"}


def render(request: Request, template: str, *, status: int = 200,
           session: FamilySession | None = None, **values: Any) -> HTMLResponse:
    lang = language(request)
    t = FamilyTranslator(lang)
    switch = {code: f"{request.url.path}?lang={code}" for code in LANGUAGES}
    html = _ENV.get_template(f"family/{template}").render(
        t=t, lang=lang, languages=LANGUAGE_NAMES, switch=switch, session=session,
        **values)
    response = HTMLResponse(html, status_code=status, headers=page_headers(lang))
    if request.query_params.get("lang") in LANGUAGES:
        set_cookie(response, request, LANG_COOKIE, lang, max_age=365 * 86400)
    return response


def message(request: Request, key: str, *, status: int,
            session: FamilySession | None = None, sign_in: bool = False) -> HTMLResponse:
    """A page that says one thing (an error, mostly) and links on."""
    return render(request, "message.html", status=status, session=session, key=key,
                  sign_in=sign_in)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def form_token(request: Request) -> str:
    """The double-submit token of the sign-in forms (before there is a session)."""
    existing = request.cookies.get(FORM_CSRF_COOKIE, "")
    return existing if 20 <= len(existing) <= 64 else secrets.token_urlsafe(24)


def form_token_ok(request: Request, given: str | None) -> bool:
    cookie = request.cookies.get(FORM_CSRF_COOKIE, "")
    return bool(cookie) and given is not None and hmac.compare_digest(
        cookie.encode(), given.encode("utf-8", "surrogateescape"))


def csrf_ok(session: FamilySession, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(
        session.csrf_token.encode(), given.encode("utf-8", "surrogateescape"))


def family_of(request: Request) -> FamilyAccess | None:
    found: FamilyAccess | None = getattr(request.app.state, "family", None)
    return found


def context_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.context
    return ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
