"""Contract of the PIN-guessing store methods, on every store: counts, windows, locks."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from account_helpers import T0

from accounts import (
    AccountService,
    AccountsPolicy,
    AccountStore,
    FacilityPolicy,
    InvalidRequest,
    SqliteAccountStore,
)
from accounts.redis.store import RedisAccountStore
from accounts.station_locks import PinGuardPolicy, StationLock
from settings.config import load_config

POLICY = PinGuardPolicy()  # 5 failures in 10 minutes lock for 15 minutes


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


async def fail(store: AccountStore, *offsets: float, station: str = "4001",
               facility: str = "tx", policy: PinGuardPolicy = POLICY) -> list[StationLock | None]:
    return [
        await store.record_pin_failure(facility, station, T0 + minutes(m), policy)
        for m in offsets
    ]


async def test_the_fifth_failure_in_the_window_locks_the_station(store: AccountStore) -> None:
    assert await fail(store, 0, 2, 4, 6) == [None] * 4
    assert await store.station_lock("tx", "4001", T0 + minutes(6)) is None
    (lock,) = await fail(store, 9)
    assert lock == StationLock("tx", "4001", T0 + minutes(9), T0 + minutes(24), 5)
    assert await store.station_lock("tx", "4001", T0 + minutes(10)) == lock
    assert await store.list_station_locks("tx", T0 + minutes(10)) == [lock]


async def test_failures_older_than_the_window_do_not_count(store: AccountStore) -> None:
    # One every three minutes: never more than four within ten minutes.
    assert await fail(store, *(3 * i for i in range(12))) == [None] * 12
    assert await store.list_station_locks("tx", T0 + minutes(40)) == []


async def test_stations_and_facilities_are_counted_apart(store: AccountStore) -> None:
    await fail(store, 0, 1, 2, 3, station="4001")
    assert await fail(store, 4, station="4002") == [None]
    assert await fail(store, 4, station="4001", facility="al") == [None]
    (lock,) = await fail(store, 5, station="4001")
    assert lock is not None and lock.station == "4001"
    assert await store.station_lock("al", "4001", T0 + minutes(5)) is None
    assert await store.station_lock("tx", "4002", T0 + minutes(5)) is None
    assert await store.list_station_locks("al", T0 + minutes(5)) == []


async def test_a_lock_lapses_at_its_end_and_the_count_starts_again(store: AccountStore) -> None:
    *_, lock = await fail(store, 0, 1, 2, 3, 4)
    assert lock is not None and lock.until == T0 + minutes(19)
    assert await store.station_lock("tx", "4001", T0 + minutes(19) - timedelta(seconds=1))
    assert await store.station_lock("tx", "4001", T0 + minutes(19)) is None
    assert await store.list_station_locks("tx", T0 + minutes(19)) == []
    # The failures that set the lock are not counted again.
    assert await fail(store, 5, 6, 7, 8) == [None] * 4
    (again,) = await fail(store, 9)
    assert again is not None and again.locked_at == T0 + minutes(9)


async def test_an_operator_clears_a_lock(store: AccountStore) -> None:
    await fail(store, 0, 1, 2, 3, 4)
    await fail(store, 0, 1, 2, 3, 4, station="4002")
    assert await store.clear_station_lock("tx", "4001") is True
    assert await store.station_lock("tx", "4001", T0 + minutes(5)) is None
    assert await store.clear_station_lock("tx", "4001") is False
    assert [lk.station for lk in await store.list_station_locks("tx", T0 + minutes(5))] == [
        "4002"
    ]
    assert await store.clear_station_lock("tx", "4999") is False


async def test_locks_are_listed_by_station(store: AccountStore) -> None:
    for station in ("5003", "5001", "5002"):
        await fail(store, 0, station=station, policy=PinGuardPolicy(failures=1))
    locks = await store.list_station_locks("tx", T0)
    assert [lk.station for lk in locks] == ["5001", "5002", "5003"]
    assert all(lk.failures == 1 and lk.until == T0 + minutes(15) for lk in locks)


BAD_KEYS = [
    ("tx", ""),
    ("", "4001"),
    ("tx", "4" * 65),
    ("t" * 65, "4001"),
    ("tx", "40\n01"),
    ("tx", "40\x0001"),
    ("tx\r", "4001"),
]


@pytest.mark.parametrize(("facility", "station"), BAD_KEYS)
async def test_a_bad_facility_or_station_is_refused_and_nothing_written(
    store: AccountStore, facility: str, station: str
) -> None:
    once = PinGuardPolicy(failures=1)
    with pytest.raises(InvalidRequest):
        await store.record_pin_failure(facility, station, T0, once)
    with pytest.raises(InvalidRequest):
        await store.station_lock(facility, station, T0)
    with pytest.raises(InvalidRequest):
        await store.clear_station_lock(facility, station)
    if not (facility and len(facility) <= 64 and facility.isprintable()):
        with pytest.raises(InvalidRequest):
            await store.list_station_locks(facility, T0)
    assert await kept_records(store) == 0
    # The longest allowed key is kept.
    longest = "4" * 64
    assert await store.record_pin_failure("tx", longest, T0, once) is not None
    assert [lk.station for lk in await store.list_station_locks("tx", T0)] == [longest]


async def kept_records(store: AccountStore) -> int:
    """How many PIN-guessing records the store holds, of any facility and station."""
    if isinstance(store, SqliteAccountStore):
        row = store.db.execute(
            "SELECT (SELECT COUNT(*) FROM pin_failures) + (SELECT COUNT(*) FROM station_locks)"
        ).fetchone()
        return int(row[0])
    assert isinstance(store, RedisAccountStore)
    return len([k async for k in store.client.scan_iter(match=f"{store.prefix}:{{f:*")])


def _twin(store: AccountStore) -> AccountStore:
    """Another store instance, with its own connection, on the same data."""
    if isinstance(store, SqliteAccountStore):
        return SqliteAccountStore(store.path)
    assert isinstance(store, RedisAccountStore)
    return RedisAccountStore(store.url, cluster_nodes=store.cluster_nodes, prefix=store.prefix)


def _fail_in_own_thread(twin: AccountStore, seconds: list[int],
                        policy: PinGuardPolicy) -> list[StationLock | None]:
    """On a thread of its own with its own event loop, so that two of these truly overlap."""

    async def run() -> list[StationLock | None]:
        await twin.open()
        try:
            return list(await asyncio.gather(*(
                twin.record_pin_failure("tx", "4001", T0 + timedelta(seconds=s), policy)
                for s in seconds
            )))
        finally:
            await twin.close()

    return asyncio.run(run())


async def test_concurrent_failures_from_two_stores_are_all_counted(store: AccountStore) -> None:
    policy = PinGuardPolicy(failures=40, window_seconds=3600)
    halves = list(range(0, 40, 2)), list(range(1, 40, 2))
    results = await asyncio.gather(
        *(asyncio.to_thread(_fail_in_own_thread, _twin(store), half, policy) for half in halves)
    )
    locks = [lk for half in results for lk in half if lk is not None]
    assert len(locks) == 1 and locks[0].failures == 40
    assert await store.station_lock("tx", "4001", T0 + minutes(1)) == locks[0]


# -- the service part ------------------------------------------------------------------


@pytest.fixture
def demo_service(store: AccountStore) -> AccountService:
    config = load_config("configs/demo.toml")
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    return AccountService(store, facilities, AccountsPolicy())


def test_the_facility_policy_comes_from_its_menu_pin_lock_settings() -> None:
    config = load_config("configs/demo.toml")
    tx = config.facilities["tx-state-prison"]
    assert FacilityPolicy.from_config(tx).pin_guard == PinGuardPolicy(5, 600, 900)
    stricter = tx.model_copy(update={"menu": tx.menu.model_copy(update={
        "pin_lock": tx.menu.pin_lock.model_copy(
            update={"failures": 3, "window_minutes": 2, "lock_minutes": 60}
        )
    })})
    assert FacilityPolicy.from_config(stricter).pin_guard == PinGuardPolicy(3, 120, 3600)


async def test_the_service_locks_by_the_facility_policy_and_logs_it(
    demo_service: AccountService, caplog: pytest.LogCaptureFixture
) -> None:
    svc = demo_service
    fid = "tx-state-prison"
    with caplog.at_level(logging.WARNING, logger="ics.accounts.station_guard"):
        for m in range(4):
            assert await svc.pin_failed(fid, "4001", T0 + minutes(m)) is None
        assert caplog.records == []
        lock = await svc.pin_failed(fid, "4001", T0 + minutes(4))
    assert lock is not None and lock.until == T0 + minutes(19) and lock.failures == 5
    (line,) = [r.getMessage() for r in caplog.records]
    assert fid in line and "'4001'" in line and "5 failures" in line
    assert lock.until.isoformat() in line
    assert await svc.station_lock(fid, "4001", T0 + minutes(5)) == lock
    assert await svc.list_station_locks(fid, T0 + minutes(5)) == [lock]
    assert await svc.clear_station_lock(fid, "4001") is True
    assert await svc.station_lock(fid, "4001", T0 + minutes(5)) is None
    assert await svc.clear_station_lock(fid, "4001") is False


async def test_the_service_refuses_an_unknown_facility(demo_service: AccountService) -> None:
    with pytest.raises(InvalidRequest, match="facility"):
        await demo_service.pin_failed("nowhere", "4001", T0)
    with pytest.raises(InvalidRequest, match="facility"):
        await demo_service.list_station_locks("nowhere", T0)
