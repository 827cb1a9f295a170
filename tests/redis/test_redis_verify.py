"""`ics accounts verify` on the Redis store: cached balances against the ledger streams."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis_servers import SERVERS, unique_prefix

from accounts import (
    AccountService,
    AccountsPolicy,
    Authorization,
    CallRequest,
    FacilityPolicy,
    Person,
    RedisAccountStore,
)
from accounts.redis.verify import verify_store
from ics.cli import main as ics_main
from settings.config import load_config

pytestmark = pytest.mark.e2e

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


def redis_config(tmp_path: Path, url: str, prefix: str) -> Path:
    """The demo config, pointed at a test Redis under its own key prefix."""
    text = (CONFIGS / "demo.toml").read_text()
    for name in ("facilities", "regulation"):
        text = text.replace(f'{name} = "{name}/*.toml"', f'{name} = "{CONFIGS / name}/*.toml"')
    text = text.replace('kind = "sqlite"', 'kind = "redis"')
    text = text.replace('url = "redis://127.0.0.1:6379/0"', f'url = "{url}"\nprefix = "{prefix}"')
    path = tmp_path / "redis.toml"
    path.write_text(text)
    return path


def verify_command(config_path: Path) -> list[str]:
    # The command runs its own event loop, so it runs beside the test's, in a thread.
    return ["accounts", "--config", str(config_path), "verify"]


async def test_verify_passes_on_a_busy_store_and_finds_a_tampered_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = SERVERS.single()
    prefix = unique_prefix()
    config_path = redis_config(tmp_path, server.url, prefix)
    config = load_config(config_path)
    assert (config.store.kind, config.store.prefix) == ("redis", prefix)
    store = RedisAccountStore.from_config(config.store)
    await store.open()
    try:
        facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
        service = AccountService(store, facilities, AccountsPolicy())
        await store.add_person(Person(facility_id="tx-state-prison", pin="100001"))
        await service.open_advance_connect(["+15125550100"], AT, account_id="ac1")
        await service.deposit("ac1", "20.00", "card", "dep-1", AT)
        for n in range(3):
            auth = await service.authorize(
                CallRequest(f"c{n}", "tx-state-prison", "100001", "+15125550100", AT)
            )
            assert isinstance(auth, Authorization)
            if n < 2:  # one call stays connected: its hold must match an open reservation
                await service.settle(auth.reservation_id, 90 * (n + 1), AT + timedelta(minutes=5))
        report = await verify_store(store)
        assert report.ok, report.problems
        assert (report.accounts, report.open_reservations, report.entries) == (1, 1, 6)

        assert await asyncio.to_thread(ics_main, verify_command(config_path)) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] is True and out["accounts"] == 1

        # Someone edits the cached balance behind the ledger's back.
        await store.client.hincrby(store._acct("ac1"), "balance", 500)
        assert await asyncio.to_thread(ics_main, verify_command(config_path)) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] is False
        assert out["problems"] == [
            "account ac1: balance 185500 but its entries sum to 185000"
        ]
    finally:
        await store.close()
