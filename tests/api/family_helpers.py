"""Shared steps of the family page tests: set-up codes, signing in, reading form tokens."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.api.conftest import ADMIN, auth

AC = "ac-15125550100"
AC_NUMBER = "+15125550100"
DB = "db-13105550100"
DB_NUMBER = "+13105550100"
PASSCODE = "correct horse battery"

_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def form_token(html: str) -> str:
    found = _FORM_TOKEN.search(html)
    assert found, html[:500]
    return found.group(1)


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


async def setup_code(client: httpx.AsyncClient, account: str = AC) -> str:
    r = await client.post(f"/v1/accounts/{account}/family-setup-code", headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert isinstance(code, str)
    return code


async def set_up(client: httpx.AsyncClient, account: str = AC, number: str = AC_NUMBER,
                 passcode: str = PASSCODE) -> httpx.Response:
    code = await setup_code(client, account)
    page = await client.get("/account/set-up")
    return await client.post("/account/set-up", data={
        "number": number, "setup_code": code, "passcode": passcode,
        "passcode_again": passcode, "form_token": form_token(page.text)})


async def sign_in(client: httpx.AsyncClient, number: str = AC_NUMBER,
                  passcode: str = PASSCODE) -> httpx.Response:
    page = await client.get("/account/sign-in")
    return await client.post("/account/sign-in", data={
        "number": number, "passcode": passcode, "form_token": form_token(page.text)})


async def page_csrf(client: httpx.AsyncClient, path: str) -> str:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    return csrf(r.text)


async def post_form(client: httpx.AsyncClient, path: str, fields: dict[str, Any],
                    csrf_from: str | None = None) -> httpx.Response:
    token = await page_csrf(client, csrf_from or path)
    return await client.post(path, data={**fields, "csrf": token})


#: argon2 at its cheapest: the tests sign in dozens of times (production uses the defaults).
CHEAP = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


def cheap_family(app: Any) -> Any:
    """Give ``app`` family sign-in with cheap hashes; returns the app."""
    from accounts.family import FamilyAccess, FamilyPolicy

    old = app.state.family
    app.state.family = FamilyAccess(old.service, old.store, FamilyPolicy(**CHEAP))
    if app.state.family_alerts is not None:
        app.state.family_alerts.family = app.state.family
    return app
