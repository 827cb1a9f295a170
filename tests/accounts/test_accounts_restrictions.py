"""Contract tests: a person's restrictions are added and removed in single atomic steps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from accounts import AccountStore, NotFound, Person, Restriction, SqliteAccountStore
from accounts.redis.store import RedisAccountStore
from accounts.store import restriction_id

UNTIL = datetime(2031, 5, 1, 12, 30, 0, 250, tzinfo=UTC)


async def _person(store: AccountStore) -> Person:
    return await store.add_person(Person(facility_id="tx", pin="100001"))


def _twin(store: AccountStore) -> AccountStore:
    """Another store instance, with its own connection, on the same data."""
    if isinstance(store, SqliteAccountStore):
        return SqliteAccountStore(store.path)
    assert isinstance(store, RedisAccountStore)
    return RedisAccountStore(store.url, cluster_nodes=store.cluster_nodes, prefix=store.prefix)


def _add_all_in_own_thread(twin: AccountStore, wanted: list[Restriction]) -> list[bool]:
    """Run on a thread of its own with its own event loop, so two of these truly overlap."""

    async def add_all() -> list[bool]:
        await twin.open()
        try:
            return list(await asyncio.gather(
                *(twin.add_restriction("tx", "100001", r) for r in wanted)
            ))
        finally:
            await twin.close()

    return asyncio.run(add_all())


async def test_add_then_add_again_keeps_one(store: AccountStore) -> None:
    await _person(store)
    r = Restriction(kind="suspension", until=UNTIL, note="fight in B block")
    assert await store.add_restriction("tx", "100001", r) is True
    # The same instant in another zone is the same restriction.
    again = Restriction(kind="suspension", note="fight in B block",
                        until=UNTIL.astimezone(timezone(timedelta(hours=-5))))
    assert await store.add_restriction("tx", "100001", again) is False
    person = await store.get_person("tx", "100001")
    assert person.restrictions == (r,)
    assert restriction_id(person.restrictions[0]) == restriction_id(again)


async def test_add_keeps_other_restrictions_and_order(store: AccountStore) -> None:
    await _person(store)
    first = Restriction(kind="suspension", until=None, note="")
    second = Restriction(kind="no-video", until=UNTIL, note="ünïcode / \"quoted\"")
    assert await store.add_restriction("tx", "100001", first)
    assert await store.add_restriction("tx", "100001", second)
    person = await store.get_person("tx", "100001")
    assert person.restrictions == (first, second)


async def test_remove_by_id(store: AccountStore) -> None:
    await _person(store)
    keep = Restriction(kind="no-video", until=None, note="keep")
    lift = Restriction(kind="suspension", until=UNTIL, note="lift")
    await store.add_restriction("tx", "100001", keep)
    await store.add_restriction("tx", "100001", lift)
    assert await store.remove_restriction("tx", "100001", restriction_id(lift)) is True
    assert (await store.get_person("tx", "100001")).restrictions == (keep,)
    assert await store.remove_restriction("tx", "100001", restriction_id(keep)) is True
    assert (await store.get_person("tx", "100001")).restrictions == ()
    # The emptied list is still a list another add can extend.
    assert await store.add_restriction("tx", "100001", lift) is True
    assert (await store.get_person("tx", "100001")).restrictions == (lift,)


async def test_remove_unknown_changes_nothing(store: AccountStore) -> None:
    await _person(store)
    r = Restriction(kind="suspension", until=None, note="")
    await store.add_restriction("tx", "100001", r)
    assert await store.remove_restriction("tx", "100001", "rs-0000000000000000") is False
    assert (await store.get_person("tx", "100001")).restrictions == (r,)
    assert await store.remove_restriction("tx", "100001", restriction_id(r)) is True
    assert await store.remove_restriction("tx", "100001", restriction_id(r)) is False


async def test_unknown_person(store: AccountStore) -> None:
    await _person(store)
    r = Restriction(kind="suspension", until=None, note="")
    with pytest.raises(NotFound):
        await store.add_restriction("tx", "999999", r)
    with pytest.raises(NotFound):
        await store.remove_restriction("tx", "999999", restriction_id(r))
    with pytest.raises(NotFound):
        await store.get_person("tx", "999999")  # the add created nobody


async def test_restrictions_set_whole_are_removable_by_id(store: AccountStore) -> None:
    await _person(store)
    r = Restriction(kind="suspension", until=UNTIL, note="")
    await store.set_restrictions("tx", "100001", [r])
    assert await store.add_restriction("tx", "100001", r) is False
    assert await store.remove_restriction("tx", "100001", restriction_id(r)) is True
    assert (await store.get_person("tx", "100001")).restrictions == ()


async def test_concurrent_adds_from_two_instances_all_survive(store: AccountStore) -> None:
    await _person(store)
    wanted = [Restriction(kind="suspension", until=None, note=f"n{i}") for i in range(60)]
    halves = wanted[0::2], wanted[1::2]
    results = await asyncio.gather(
        *(asyncio.to_thread(_add_all_in_own_thread, _twin(store), half) for half in halves)
    )
    assert [all(r) for r in results] == [True, True]
    kept = (await store.get_person("tx", "100001")).restrictions
    assert sorted(r.note for r in kept) == sorted(r.note for r in wanted)


async def test_concurrent_removes_and_adds_keep_every_other_change(store: AccountStore) -> None:
    await _person(store)
    old = [Restriction(kind="suspension", until=None, note=f"old{i}") for i in range(20)]
    new = [Restriction(kind="no-video", until=UNTIL, note=f"new{i}") for i in range(20)]
    for r in old:
        await store.add_restriction("tx", "100001", r)
    twin = _twin(store)
    await twin.open()
    try:
        changes = await asyncio.gather(
            *(twin.remove_restriction("tx", "100001", restriction_id(r)) for r in old[:10]),
            *(store.add_restriction("tx", "100001", r) for r in new),
        )
    finally:
        await twin.close()
    assert all(changes)
    kept = (await store.get_person("tx", "100001")).restrictions
    assert sorted(r.note for r in kept) == sorted(r.note for r in [*old[10:], *new])
