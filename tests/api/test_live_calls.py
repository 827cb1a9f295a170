"""Live calls: listing (scoped by facility) and the admin hang-up."""

from __future__ import annotations

from typing import Any

import httpx

from api import create_app
from tests.api.conftest import ADMIN, AL_FACILITY, FINANCE, TX_FACILITY, auth


async def test_list_calls(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/calls", headers=auth(ADMIN))
    assert r.status_code == 200
    assert [c["call_id"] for c in r.json()] == ["call-tx-1", "call-al-1"]
    assert r.json()[0]["product"] == "advance_connect"
    r = await client.get("/v1/calls", headers=auth(TX_FACILITY))
    assert [c["call_id"] for c in r.json()] == ["call-tx-1"]
    r = await client.get("/v1/calls", headers=auth(FINANCE))
    assert r.status_code == 403


async def test_admin_hang_up(client: httpx.AsyncClient, live_calls: Any) -> None:
    r = await client.post("/v1/calls/call-al-1/hang-up", headers=auth(AL_FACILITY))
    assert r.status_code == 403
    assert live_calls.hung_up == []
    r = await client.post("/v1/calls/call-al-1/hang-up", headers=auth(ADMIN),
                          json={"reason": "threat to staff"})
    assert r.status_code == 200
    assert r.json() == {"call_id": "call-al-1", "hung_up": True}
    assert live_calls.hung_up == [("call-al-1", "threat to staff")]
    r = await client.post("/v1/calls/call-al-1/hang-up", headers=auth(ADMIN))
    assert r.status_code == 404
    assert r.json()["field"] == "call_id"


async def test_without_a_controller_live_calls_are_unavailable(config: Any,
                                                               service: Any) -> None:
    app = create_app(config, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.get("/v1/calls", headers=auth(ADMIN))
        assert r.status_code == 503
        r = await c.get("/v1/calls")
        assert r.status_code == 401
