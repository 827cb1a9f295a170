"""Health, readiness, metrics and the error shape of unknown routes."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api import Metrics, create_app


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_reports_each_check(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"store": True, "sip": True}}


async def test_readyz_is_503_when_a_check_fails_or_raises(config: Any, service: Any) -> None:
    async def store_down() -> bool:
        raise ConnectionError("store unreachable")

    app = create_app(config, service, readiness={"store": store_down, "sip": lambda: False,
                                                 "other": lambda: True})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"store": False, "sip": False, "other": True}


async def test_metrics_expose_every_family_and_count_requests(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    metrics.call_started("tx-state-prison")
    await client.get("/healthz")
    await client.get("/v1/quote", params={"facility": "nowhere", "number": "1", "minutes": "1"})
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("ics_calls", "ics_active_calls", "ics_ivr_key_presses",
                 "ics_authorization_seconds", "ics_sip_messages", "ics_rtp_packets",
                 "ics_rtp_packets_lost", "ics_reservations", "ics_reserved_units",
                 "ics_settlements", "ics_settled_units", "ics_store_errors",
                 "ics_http_requests"):
        assert name in families, name
    http = {(s.labels["route"], s.labels["status"]): s.value
            for s in families["ics_http_requests"].samples if s.name.endswith("_total")}
    assert http[("/healthz", "200")] == 1
    assert http[("/v1/quote", "404")] == 1
    active = [s.value for s in families["ics_active_calls"].samples]
    assert active == [1.0]


async def test_unknown_route_and_method_answer_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    r = await client.delete("/healthz")
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
