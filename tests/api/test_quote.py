"""GET /v1/quote: the documented contract, and a field-named 4xx for every bad parameter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rating import quote_document
from tests.api.conftest import NOW


async def test_quote_matches_the_rating_document(client: httpx.AsyncClient, config: Any) -> None:
    r = await client.get("/v1/quote", params={"facility": "tx-state-prison",
                                              "number": "(512) 555-0100", "minutes": "15"})
    assert r.status_code == 200
    body = r.json()
    expected = quote_document(config.facilities["tx-state-prison"].rated, "+15125550100", 15, NOW)
    assert body == expected
    assert body["number"] == "+15125550100"
    assert body["jurisdiction"] == "intrastate"
    assert body["cap_per_minute"] == "0.06"  # FCC 2024 permanent cap for prisons
    products = {q["product"]: q for q in body["quotes"]}
    ac = products["advance_connect"]
    assert ac["rate_per_minute"] == "0.0600"
    assert ac["billed_minutes"] == 15
    assert ac["charge"] == "0.90"
    assert ac["total"] == "0.90"
    for q in body["quotes"]:
        for money in ("rate_per_minute", "charge", "total"):
            assert isinstance(q[money], str)


async def test_interstate_and_international_quotes(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/quote", params={"facility": "tx-state-prison",
                                              "number": "+12125550100", "minutes": "1"})
    assert r.status_code == 200
    assert r.json()["jurisdiction"] == "interstate"
    r = await client.get("/v1/quote", params={"facility": "tx-state-prison",
                                              "number": "011442079460958", "minutes": "3"})
    assert r.status_code == 200
    assert r.json()["jurisdiction"] == "international"


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"facility": "nowhere", "number": "5125550100", "minutes": "5"}, 404, "facility"),
        ({"facility": "tx-state-prison", "number": "5125550100", "minutes": "0"}, 422, "minutes"),
        ({"facility": "tx-state-prison", "number": "5125550100", "minutes": "21"}, 422,
         "minutes"),
        ({"facility": "al-county-jail", "number": "5125550100", "minutes": "16"}, 422, "minutes"),
        ({"facility": "tx-state-prison", "number": "5125550100", "minutes": "ten"}, 422,
         "minutes"),
        ({"facility": "tx-state-prison", "number": "5125550100", "minutes": "1.5"}, 422,
         "minutes"),
        ({"facility": "tx-state-prison", "number": "5125550100", "minutes": "-3"}, 422,
         "minutes"),
        ({"facility": "tx-state-prison", "number": "12", "minutes": "5"}, 422, "number"),
        ({"facility": "tx-state-prison", "number": "not a phone", "minutes": "5"}, 422, "number"),
        ({"facility": "tx-state-prison", "number": "+1 555 0100 999 999", "minutes": "5"}, 422,
         "number"),
        ({"facility": "tx-state-prison", "number": "", "minutes": "5"}, 422, "number"),
        ({"number": "5125550100", "minutes": "5"}, 422, "facility"),
        ({"facility": "tx-state-prison", "minutes": "5"}, 422, "number"),
        ({"facility": "tx-state-prison", "number": "5125550100"}, 422, "minutes"),
    ],
)
async def test_bad_parameters_name_the_field(client: httpx.AsyncClient, params: dict[str, str],
                                             status: int, field: str) -> None:
    r = await client.get("/v1/quote", params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field
    assert body["error"] in ("invalid_parameter", "not_found")
    assert body["message"]


async def test_quote_is_documented_in_openapi(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/quote"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"facility", "number", "minutes"}
    assert set(op["responses"]) >= {"200", "404", "422"}
    assert "security" not in op


async def test_quotes_are_reused_only_within_their_minute(config: Any) -> None:
    from datetime import timedelta

    from api import create_app

    now = [NOW.replace(second=5)]
    app = create_app(config, clock=lambda: now[0])
    cache = app.state.quote_cache
    params = {"facility": "tx-state-prison", "number": "5125550100", "minutes": "15"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        first = await c.get("/v1/quote", params=params)
        now[0] = NOW.replace(second=55)
        second = await c.get("/v1/quote", params=params)
        assert (cache.info().hits, cache.info().misses) == (1, 1)
        assert first.content == second.content
        assert first.headers["content-type"] == "application/json"
        # The next minute is priced afresh; the answer is what rating gives for it.
        now[0] = NOW + timedelta(days=300)
        third = await c.get("/v1/quote", params=params)
        assert cache.info().misses == 2
        minute = now[0].replace(second=0, microsecond=0)
        assert third.json() == quote_document(config.facilities["tx-state-prison"].rated,
                                              "+15125550100", 15, minute)
        # Errors are answered every time, never cached.
        for _ in range(2):
            bad = await c.get("/v1/quote", params={**params, "number": "12"})
            assert bad.status_code == 422
        assert cache.info().currsize == 2


async def test_same_document_as_ics_rate_json(config: Any) -> None:
    import json
    import subprocess
    import sys

    from api import create_app
    from tests.api.conftest import DEMO_CONFIG

    app = create_app(config)  # the real clock, like the command line
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.get("/v1/quote", params={"facility": "ak-regional-jail",
                                             "number": "907-269-0100", "minutes": "12"})
    cli = subprocess.run(
        [sys.executable, "-m", "ics.cli", "rate", "--config", str(DEMO_CONFIG),
         "--facility", "ak-regional-jail", "--number", "907-269-0100", "--minutes", "12",
         "--json"], capture_output=True, text=True, timeout=60, check=True)
    assert r.json() == json.loads(cli.stdout)


async def test_the_day_is_the_facility_s_own(config: Any) -> None:
    from datetime import UTC, datetime

    from api import create_app

    # 03:00 UTC on 1 March is still 28 February in Texas.
    app = create_app(config, clock=lambda: datetime(2026, 3, 1, 3, 0, tzinfo=UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.get("/v1/quote", params={"facility": "tx-state-prison",
                                             "number": "5125550100", "minutes": "1"})
    assert r.json()["date"] == "2026-02-28"
