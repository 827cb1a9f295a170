"""PIN-guessing keys on Redis: under the facility's tag, each expiring with its window or
lock, a re-sent count counted once; and call records written before the menu's fields."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis_servers import SERVERS, unique_prefix

from accounts import CallDetailRecord, CallOutcome, RedisAccountStore
from accounts.station_locks import PinGuardPolicy

pytestmark = pytest.mark.e2e

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POLICY = PinGuardPolicy(failures=3, window_seconds=600, lock_seconds=900)


@pytest.fixture(params=["single", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisAccountStore]:
    if request.param == "single":
        s = RedisAccountStore(SERVERS.single().url, prefix=unique_prefix())
    else:
        s = RedisAccountStore(None, cluster_nodes=SERVERS.cluster().nodes,
                              prefix=unique_prefix())
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _keys(store: RedisAccountStore) -> dict[str, int]:
    """The PIN-guessing keys and their time to live in ms."""
    found = [k async for k in store.client.scan_iter(match=f"{store.prefix}:{{f:*")]
    return {k: int(await store.client.pttl(k)) for k in found}


async def test_every_key_is_under_the_facility_tag_and_expires(store: RedisAccountStore) -> None:
    p = store.prefix
    failures = f"{p}:{{f:tx}}:pin-failures:4001"
    lock = f"{p}:{{f:tx}}:station-lock:4001"
    locks = f"{p}:{{f:tx}}:station-locks"
    await store.record_pin_failure("tx", "4001", AT, POLICY)
    keys = await _keys(store)
    assert list(keys) == [failures]
    assert 590_000 < keys[failures] <= 600_000  # the window
    await store.record_pin_failure("tx", "4001", AT + timedelta(minutes=1), POLICY)
    assert await store.record_pin_failure("tx", "4001", AT + timedelta(minutes=2), POLICY)
    keys = await _keys(store)
    # The lock set, the count started again: no failures key, two keys of the lock's length.
    assert sorted(keys) == sorted([lock, locks])
    assert all(890_000 < ttl <= 900_000 for ttl in keys.values())
    if store.is_cluster:
        slots = {await store.client.cluster_keyslot(k) for k in (failures, lock, locks)}
        assert len(slots) == 1


async def test_a_longer_lock_keeps_the_list_alive_past_a_shorter_one(
    store: RedisAccountStore,
) -> None:
    long = PinGuardPolicy(failures=1, lock_seconds=3600)
    short = PinGuardPolicy(failures=1, lock_seconds=60)
    await store.record_pin_failure("tx", "4001", AT, long)
    await store.record_pin_failure("tx", "4002", AT, short)
    ttl = await store.client.pttl(f"{store.prefix}:{{f:tx}}:station-locks")
    assert 3_590_000 < ttl <= 3_600_000
    assert [lk.station for lk in await store.list_station_locks("tx", AT)] == ["4001", "4002"]
    later = AT + timedelta(minutes=2)
    assert [lk.station for lk in await store.list_station_locks("tx", later)] == ["4001"]


async def test_a_count_re_sent_after_a_lost_reply_counts_once(store: RedisAccountStore) -> None:
    keys = store._pin_keys("tx", "4001")

    async def send(token: str, minute: int) -> list[str]:
        at = AT + timedelta(minutes=minute)
        args = ["4001", token, _us(at), _us(at - timedelta(minutes=10)), 3, 600_000, 900_000,
                at.isoformat(), (at + timedelta(minutes=15)).isoformat(),
                _us(at + timedelta(minutes=15))]
        return await store._run("pin_failure", keys, args)

    assert await send("t1", 0) == ["ok", ""]
    assert await send("t1", 0) == ["ok", ""]  # the same call again
    assert await send("t2", 1) == ["ok", ""]
    assert await send("t3", 2) == ["locked", "3"]
    assert await send("t3", 2) == ["locked", "3"]  # answered as before, counted once
    assert await store.client.exists(keys[0]) == 0


def _us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


async def test_a_call_record_written_before_the_menu_fields_reads_as_the_defaults(
    store: RedisAccountStore,
) -> None:
    record = CallDetailRecord(
        call_id="old-1", facility_id="tx", pin="100001", number_e164="+15125550100",
        jurisdiction="intrastate", product="advance_connect", payer_account_id="a1",
        setup_at=AT, answer_at=None, accept_at=None, end_at=AT + timedelta(minutes=1),
        talked_seconds=60, billed_seconds=60, charge_units=600, fee_units=0, tax_units=0,
        total_units=600, outcome=CallOutcome.COMPLETED, station="4001", menu_seconds=12,
    )
    await store.add_cdr(record)
    key = f"{store.prefix}:cdr:old-1"
    data = json.loads(await store.client.get(key))
    assert (data["station"], data["menu_seconds"]) == ("4001", 12)
    del data["station"], data["menu_seconds"]
    await store.client.set(key, json.dumps(data))
    old = await store.get_cdr("old-1")
    assert (old.station, old.menu_seconds) == ("", 0)
    assert [c.station for c in await store.list_cdrs()] == [""]


async def test_a_menu_call_s_lock_checks_keep_the_payer_reads_of_other_calls(
    store: RedisAccountStore,
) -> None:
    # The payers read with one call's screening stay for its next step while other
    # calls on the node check their stations and count wrong PINs...
    key = ("tx", "100001", "+15125550100")
    store._prefetched[key] = (None, 0.0, None, [])
    await store.station_lock("tx", "4001", AT)
    await store.record_pin_failure("tx", "4001", AT, POLICY)
    assert key in store._prefetched
    # ... and go, as after any administrative step, when staff clear a lock.
    await store.clear_station_lock("tx", "4001")
    assert key not in store._prefetched
