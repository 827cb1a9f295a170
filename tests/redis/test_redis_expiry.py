"""Keys of finished calls expire on Redis; nothing that carries money ever does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis_servers import SERVERS, unique_prefix
from test_redis_verify import redis_config, verify_command

from accounts import (
    AccountService,
    AccountsPolicy,
    Authorization,
    CallRequest,
    FacilityPolicy,
    InvalidState,
    Person,
    RedisAccountStore,
)
from accounts.postings import plan_release
from accounts.redis.verify import verify_store
from ics.cli import main as ics_main
from rating import Product
from settings.config import StoreConfig, load_config

pytestmark = pytest.mark.e2e

FACILITY = "tx-state-prison"
PIN = "100001"
NUMBER = "+15125550100"
OTHER = "+15125550177"  # no account pays for it: Single Call
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
DAY = 86_400


async def _service(store: RedisAccountStore, config_path: Path) -> AccountService:
    config = load_config(config_path)
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    service = AccountService(store, facilities, AccountsPolicy())
    await store.add_person(Person(facility_id=FACILITY, pin=PIN))
    await service.open_advance_connect([NUMBER], AT, account_id="ac1")
    await service.deposit("ac1", "20.00", "card", "dep-1", AT)
    return service


async def _authorize(service: AccountService, call_id: str, number: str = NUMBER) -> str:
    auth = await service.authorize(CallRequest(call_id, FACILITY, PIN, number, AT))
    assert isinstance(auth, Authorization), auth
    return auth.reservation_id


async def _ttl(store: RedisAccountStore, key: str) -> int:
    return int(await store.client.ttl(key))


async def _tag_keys(store: RedisAccountStore) -> list[str]:
    """Every key of the store's tags (scanned per cluster node on a cluster)."""
    found: list[str] = []
    async for key in store.client.scan_iter(match=f"{store.prefix}:{{*", count=500):
        found.append(key)
    return sorted(set(found))


@pytest.fixture(params=["single", "cluster"])
async def store_and_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RedisAccountStore, Path]]:
    prefix = unique_prefix()
    if request.param == "single":
        server = SERVERS.single()
        config_path = redis_config(tmp_path, server.url, prefix)
        store = RedisAccountStore.from_config(load_config(config_path).store)
    else:
        # The facilities of the demo config; the store itself on the cluster.
        config_path = redis_config(tmp_path, SERVERS.single().url, prefix)
        store = RedisAccountStore(
            None, cluster_nodes=SERVERS.cluster().nodes, prefix=prefix, finished_call_ttl_days=35
        )
    await store.open()
    try:
        yield store, config_path
    finally:
        await store.close()


async def test_finished_calls_expire_and_money_keys_do_not(
    store_and_config: tuple[RedisAccountStore, Path],
) -> None:
    store, config_path = store_and_config
    assert store.finished_call_ttl == 35 * DAY
    service = await _service(store, config_path)
    settled = await _authorize(service, "call-settled")
    released = await _authorize(service, "call-released")
    still_open = await _authorize(service, "call-open")
    single = await _authorize(service, "call-single", OTHER)
    assert (await store.get_reservation(single)).product is Product.SINGLE_CALL

    await service.settle(settled, 90, AT + timedelta(minutes=2))
    await service.release(released, AT + timedelta(minutes=2))
    settlement = await service.settle(single, 60, AT + timedelta(minutes=2))
    assert settlement.receivable_id is not None

    finished = {settled: "call-settled", released: "call-released", single: "call-single"}
    for rid, call_id in finished.items():
        tag = await store._reservation_tag(rid)
        for key in (
            store._res(tag, rid),
            store._t(tag, "call", call_id),
            store._k("loc", "res", rid),
            store._k("loc", "call", call_id),
        ):
            ttl = await _ttl(store, key)
            assert 35 * DAY - 60 <= ttl <= 35 * DAY, (key, ttl)

    # The open call keeps its records for as long as it lasts.
    tag = await store._reservation_tag(still_open)
    for key in (
        store._res(tag, still_open),
        store._t(tag, "call", "call-open"),
        store._k("loc", "res", still_open),
        store._k("loc", "call", "call-open"),
    ):
        assert await _ttl(store, key) == -1, key

    # Everything else under the tags carries money or lists it: none of it expires.
    expiring = set()
    for rid, call_id in finished.items():
        tag = await store._reservation_tag(rid)
        expiring |= {store._res(tag, rid), store._t(tag, "call", call_id)}
    others = [k for k in await _tag_keys(store) if k not in expiring]
    assert store._acct("ac1") in others and store._ledger("a:ac1") in others
    assert store._t(f"n:{OTHER}", "rcv", settlement.receivable_id) in others
    for key in others:
        assert await _ttl(store, key) == -1, key
    assert await _ttl(store, store._k("loc", "rcv", settlement.receivable_id)) == -1

    # Settling again within the period moves no money.
    account = await store.get_account("ac1")
    ledger = await store.ledger_of_account("ac1")
    with pytest.raises(InvalidState):
        await service.settle(settled, 90, AT + timedelta(minutes=3))
    assert await store.get_account("ac1") == account
    assert await store.ledger_of_account("ac1") == ledger

    report = await verify_store(store)
    assert report.ok, report.problems
    assert report.open_reservations == 1


@pytest.mark.parametrize("script", ["settle", "apply"])
async def test_a_settle_resent_after_a_lost_reply_is_a_replay_within_the_period(
    store_and_config: tuple[RedisAccountStore, Path], script: str
) -> None:
    """The script itself (a call's own, or the generic one), run twice with one token:
    the second run changes nothing."""
    store, config_path = store_and_config
    service = await _service(store, config_path)
    rid = await _authorize(service, "call-retried")
    r = await store.get_reservation(rid)
    tag = await store._reservation_tag(rid)
    store.finished_call_ttl = 2 * DAY
    plan = plan_release(r, at=AT + timedelta(minutes=1))
    if script == "settle":
        keys, args = store._settle_command(plan, tag)
    else:
        write = store._plan_write(plan, tag)
        keys, args = write.keys, write.args
    first = await store._scripts[script](keys, args)
    assert list(first)[:2] == ["ok", ""]
    account = await store.get_account("ac1")
    assert account.held_units == 0
    ttl = await _ttl(store, store._res(tag, rid))
    assert DAY < ttl <= 2 * DAY
    again = await store._scripts[script](keys, args)
    assert list(again)[:2] == ["ok", "replayed"]
    assert await store.get_account("ac1") == account
    assert await _ttl(store, store._res(tag, rid)) <= ttl


async def test_the_period_comes_from_the_config_and_is_checked(tmp_path: Path) -> None:
    server = SERVERS.single()
    prefix = unique_prefix()
    config_path = redis_config(tmp_path, server.url, prefix)
    text = config_path.read_text().replace(
        f'prefix = "{prefix}"', f'prefix = "{prefix}"\nfinished_call_ttl_days = 3'
    )
    config_path.write_text(text)
    config = load_config(config_path)
    assert config.store.finished_call_ttl_days == 3
    store = RedisAccountStore.from_config(config.store)
    assert store.finished_call_ttl == 3 * DAY
    assert StoreConfig().finished_call_ttl_days == 35
    with pytest.raises(ValidationError, match="finished_call_ttl_days"):
        StoreConfig(finished_call_ttl_days=0)
    with pytest.raises(ValueError, match="finished_call_ttl_days"):
        RedisAccountStore(server.url, finished_call_ttl_days=0)

    await store.open()
    try:
        service = await _service(store, config_path)
        rid = await _authorize(service, "call-short")
        await service.settle(rid, 30, AT + timedelta(minutes=1))
        ttl = await _ttl(store, store._k("loc", "res", rid))
        assert 3 * DAY - 60 <= ttl <= 3 * DAY
        # `ics accounts verify` reads the same store and still finds it sound.
        assert await asyncio.to_thread(ics_main, verify_command(config_path)) == 0
    finally:
        await store.close()

