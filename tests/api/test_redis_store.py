"""The admin API on the shared Redis store (a real redis-server started for the test)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts import RedisAccountStore, seed_if_empty
from api import Metrics, create_app
from api.runner import demo_seed_path, open_account_service
from tests.api.conftest import ADMIN, FINANCE, NOW, auth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redis"))
from redis_servers import SERVERS, require_redis, unique_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture
async def redis_client(config: Any) -> AsyncIterator[httpx.AsyncClient]:
    require_redis()
    store = RedisAccountStore(SERVERS.single().url, prefix=unique_prefix())
    await store.open()
    await seed_if_empty(store, demo_seed_path(config), at=NOW)
    service = await open_account_service(config, store=store)
    app = create_app(config, service, metrics=Metrics(), clock=lambda: NOW)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            yield c
    finally:
        await store.close()


async def test_deposit_replay_and_refund_on_redis(redis_client: httpx.AsyncClient) -> None:
    c = redis_client
    body = {"amount": "7.50", "method": "card", "idempotency_key": "redis-dep-1"}
    first = await c.post("/v1/accounts/ac-15125550100/deposits", headers=auth(FINANCE), json=body)
    again = await c.post("/v1/accounts/ac-15125550100/deposits", headers=auth(FINANCE), json=body)
    assert first.status_code == 201, first.text
    assert again.status_code == 200 and again.json()["replayed"] is True
    r = await c.get("/v1/accounts/ac-15125550100", headers=auth(ADMIN))
    assert r.json()["balance"] == "32.50"
    assert [e["kind"] for e in r.json()["entries"]] == ["deposit", "deposit"]
    r = await c.post("/v1/accounts/ac-15125550100/deposits", json=body)
    assert r.status_code == 401
    r = await c.post("/v1/accounts/ac-15125550100/refunds", headers=auth(FINANCE))
    assert r.status_code == 201
    assert r.json()["amount"] == "32.50"
    r = await c.get("/v1/facilities/tx-state-prison/blocks", headers=auth(ADMIN))
    assert r.json() == [{"pattern": "+15125550199", "prefix": False}]
