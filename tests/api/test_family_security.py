"""Bad input and security on the family pages: each refusal is a clear page and changes
nothing; a family session reaches its own account's pages only, and never the admin API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from api import create_app
from tests.api.conftest import NOW
from tests.api.family_helpers import (
    AC,
    AC_NUMBER,
    DB,
    DB_NUMBER,
    PASSCODE,
    cheap_family,
    csrf,
    form_token,
    set_up,
    sign_in,
)
from tests.api.test_auth_matrix import OPERATIONS, send, snapshot


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(config: Any, service: Any, live_calls: Any, clock: Clock) -> Any:
    return cheap_family(create_app(config, service, live_calls, clock=clock))


#: Every page of an account: (method, path template, form fields of a request that works).
PAGES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/account/{id}", {}),
    ("GET", "/account/{id}/calls", {}),
    ("GET", "/account/{id}/calls/some-call", {}),
    ("GET", "/account/{id}/statements", {}),
    ("GET", "/account/{id}/statements/2026-03", {}),
    ("GET", "/account/{id}/statements/2026-03.csv", {}),
    ("GET", "/account/{id}/numbers", {}),
    ("POST", "/account/{id}/numbers", {"action": "add", "number": "+12135550111"}),
    ("GET", "/account/{id}/blocks", {}),
    ("POST", "/account/{id}/blocks", {"number": AC_NUMBER, "facility": "tx-state-prison",
                                      "action": "block"}),
    ("GET", "/account/{id}/money", {}),
    ("POST", "/account/{id}/refund", {}),
    ("POST", "/account/{id}/closure", {"confirm": "yes"}),
    ("GET", "/account/{id}/alerts", {}),
    ("POST", "/account/{id}/alerts", {"email": "x@example.com", "low_balance": "1.00"}),
]


async def family_snapshot(service: Any, live_calls: Any, app: Any) -> dict[str, Any]:
    family = app.state.family
    return {**await snapshot(service, live_calls),
            "self_blocks_db": await service.store.list_self_blocks(DB_NUMBER),
            "alerts": [await family.alerts(a) for a in (AC, DB)]}


async def own_csrf(client: httpx.AsyncClient, account: str) -> str:
    return csrf((await client.get(f"/account/{account}")).text)


def test_every_account_page_is_in_the_matrix() -> None:
    from api.family_pages import router

    routes = {(m, r.path) for r in router.routes for m in getattr(r, "methods", ()) or ()
              if getattr(r, "path", "").startswith("/account/{account_id}")}
    listed = {(m, p.replace("{id}", "{account_id}")
                .replace("some-call", "{call_id}").replace("2026-03.csv", "{period}.csv")
                .replace("2026-03", "{period}")) for m, p, _ in PAGES}
    assert routes == listed


async def test_another_accounts_pages_are_403_and_change_nothing(
    client: httpx.AsyncClient, service: Any, live_calls: Any, app: Any
) -> None:
    await set_up(client, DB, DB_NUMBER)
    token = await own_csrf(client, DB)
    before = await family_snapshot(service, live_calls, app)
    bodies = {}
    for target in (AC, "no-such-account"):
        for method, template, fields in PAGES:
            path = template.format(id=target)
            r = await client.request(method, path, data={**fields, "csrf": token}
                                     if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code)
            assert 'data-key="error.forbidden"' in r.text
            # The page links to itself (language switch): the id it was asked for.
            bodies.setdefault((method, template), set()).add(r.text.replace(target, "ID"))
    # An account that exists and one that does not get the very same page.
    assert all(len(texts) == 1 for texts in bodies.values())
    assert await family_snapshot(service, live_calls, app) == before


async def test_own_pages_are_reachable(client: httpx.AsyncClient) -> None:
    await set_up(client, DB, DB_NUMBER)
    for method, template, _ in PAGES:
        if method == "GET" and "some-call" not in template:
            r = await client.get(template.format(id=DB))
            assert r.status_code == 200, (template, r.text[:300])


async def test_family_session_never_reaches_the_admin_api(
    client: httpx.AsyncClient, service: Any, live_calls: Any, app: Any
) -> None:
    await set_up(client)
    before = await family_snapshot(service, live_calls, app)
    for op in OPERATIONS:
        r = await send(client, op, {})
        assert r.status_code == 401, (op, r.status_code)
    # The session token is no bearer token either.
    cookie = client.cookies.get("ics_family")
    for op in OPERATIONS:
        r = await send(client, op, {"Authorization": f"Bearer {cookie}"})
        assert r.status_code == 401, op
    assert await family_snapshot(service, live_calls, app) == before


async def test_no_session_is_401_with_a_sign_in_link(
    client: httpx.AsyncClient, service: Any, live_calls: Any, app: Any
) -> None:
    before = await family_snapshot(service, live_calls, app)
    for method, template, fields in PAGES:
        r = await client.request(method, template.format(id=AC),
                                 data=fields if method == "POST" else None)
        assert r.status_code == 401
        assert 'data-key="error.expired"' in r.text and 'href="/account/sign-in"' in r.text
    assert await family_snapshot(service, live_calls, app) == before


async def test_expired_session(client: httpx.AsyncClient, clock: Clock, service: Any) -> None:
    await set_up(client)
    token = await own_csrf(client, AC)
    clock.now = NOW + timedelta(minutes=31)
    r = await client.post(f"/account/{AC}/refund", data={"csrf": token})
    assert r.status_code == 401 and 'data-key="error.expired"' in r.text
    assert await service.store.list_refunds(account_id=AC) == []
    assert (await client.get(f"/account/{AC}")).status_code == 401


@pytest.mark.parametrize("forged", ["", "x" * 43, None])
async def test_forged_csrf_changes_nothing(
    client: httpx.AsyncClient, service: Any, live_calls: Any, app: Any, forged: str | None
) -> None:
    await set_up(client)
    await client.get(f"/account/{AC}")
    before = await family_snapshot(service, live_calls, app)
    for method, template, fields in PAGES:
        if method != "POST":
            continue
        data = dict(fields) if forged is None else {**fields, "csrf": forged}
        r = await client.post(template.format(id=AC), data=data)
        assert r.status_code == 403, template
        assert 'data-key="error.csrf"' in r.text
    r = await client.post("/account/sign-out", data={"csrf": "forged"})
    assert r.status_code == 403
    assert await family_snapshot(service, live_calls, app) == before
    assert (await client.get(f"/account/{AC}")).status_code == 200


async def test_another_sessions_csrf_token_is_refused(
    client: httpx.AsyncClient, app: Any, service: Any
) -> None:
    await set_up(client)
    first = await own_csrf(client, AC)
    await sign_in(client)  # a second session, with its own token
    r = await client.post(f"/account/{AC}/refund", data={"csrf": first})
    assert r.status_code == 403
    assert await service.store.list_refunds(account_id=AC) == []


async def test_wrong_passcode(client: httpx.AsyncClient) -> None:
    await set_up(client)
    client.cookies.clear()
    r = await sign_in(client, passcode="not the passcode")
    assert r.status_code == 401 and 'data-error="error.sign_in"' in r.text
    assert "ics_family=" not in r.headers.get("set-cookie", "")
    # An unknown number gets the same answer.
    r = await sign_in(client, number="+12125550100", passcode="not the passcode")
    assert r.status_code == 401 and 'data-error="error.sign_in"' in r.text
    r = await sign_in(client, number="not a number", passcode="not the passcode")
    assert r.status_code == 401 and 'data-error="error.sign_in"' in r.text


async def test_sign_in_is_throttled(client: httpx.AsyncClient) -> None:
    await set_up(client)
    client.cookies.clear()
    for _ in range(5):
        assert (await sign_in(client, passcode="wrong passcode")).status_code == 401
    r = await sign_in(client)
    assert r.status_code == 429 and 'data-error="error.throttled"' in r.text


async def test_sign_in_form_needs_its_token(client: httpx.AsyncClient) -> None:
    await set_up(client)
    client.cookies.clear()
    page = await client.get("/account/sign-in")
    token = form_token(page.text)
    r = await client.post("/account/sign-in", data={"number": AC_NUMBER, "passcode": PASSCODE})
    assert r.status_code == 403
    r = await client.post("/account/sign-in", data={"number": AC_NUMBER, "passcode": PASSCODE,
                                                    "form_token": token + "x"})
    assert r.status_code == 403
    assert "ics_family=" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(("body", "headers", "status", "key"), [
    ({"csrf": "{csrf}", "email": "a" * 300 + "@example.com"}, None, 413, "error.too_long"),
    ("csrf={csrf}&email=" + "a" * 9000, None, 413, "error.too_long"),
    ({"csrf": "{csrf}", "email": "x@example.com", "surprise": "1"}, None, 400, "error.field"),
    ("csrf={csrf}&email=x%40example.com&email=y%40example.com", None, 400, "error.field"),
    ("csrf={csrf}&email=%FF%FE", None, 400, "error.field"),
    ("csrf={csrf}&email=a%00b", None, 400, "error.field"),
    ('{"email": "x@example.com"}', {"content-type": "application/json"}, 415, "error.field"),
], ids=["long-field", "huge-body", "unknown-field", "repeated", "not-utf8", "nul", "json"])
async def test_malformed_forms_change_nothing(
    client: httpx.AsyncClient, app: Any, body: Any, headers: dict[str, str] | None,
    status: int, key: str
) -> None:
    await set_up(client)
    token = await own_csrf(client, AC)
    before = await app.state.family.alerts(AC)
    path = f"/account/{AC}/alerts"
    if isinstance(body, dict):
        r = await client.post(path, data={k: v.format(csrf=token) for k, v in body.items()})
    else:
        r = await client.post(path, content=body.replace("{csrf}", token).encode(),
                              headers=headers or {
                                  "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == status, r.text[:300]
    assert f'data-key="{key}"' in r.text
    assert await app.state.family.alerts(AC) == before


async def test_oversized_sign_in_fields(client: httpx.AsyncClient) -> None:
    page = await client.get("/account/sign-in")
    r = await client.post("/account/sign-in", data={
        "number": "5" * 41, "passcode": "x", "form_token": form_token(page.text)})
    assert r.status_code == 413 and 'data-error="error.too_long"' in r.text


async def test_secure_cookie_over_tls(app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://calls.example") as client:
        r = await set_up(client)
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_pages_forbid_framing_and_caching(client: httpx.AsyncClient) -> None:
    await set_up(client)
    r = await client.get(f"/account/{AC}")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


async def test_statement_outside_90_days_is_not_found(client: httpx.AsyncClient) -> None:
    await set_up(client)
    for period in ("2025-11", "2026-04", "2026-3", "abcd-ef"):
        r = await client.get(f"/account/{AC}/statements/{period}")
        assert r.status_code == 404, period
    assert (await client.get(f"/account/{AC}/statements/2025-12")).status_code == 200


async def test_store_away_is_a_clear_page(client: httpx.AsyncClient, service: Any) -> None:
    await set_up(client)
    await service.store.close()
    for path in (f"/account/{AC}", "/account", f"/account/{AC}/calls"):
        r = await client.get(path)
        assert r.status_code == 503, path
        assert 'data-key="error.unavailable"' in r.text
    await service.store.open()
