"""Node leases and adoption on a real Redis and a real 3-master cluster: a survivor settles
a dead node's calls from their last heartbeat, exactly once, and the dead node finds them
settled when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
    InvalidState,
    NotFound,
    Person,
    RedisAccountStore,
)
from accounts.adoption import adopt_expired, settle_own_leftovers
from accounts.redis.leases import NodeLeases
from accounts.redis.verify import verify_store
from rating import Product
from settings.config import load_config

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
FACILITY = "tx-state-prison"
PIN = "100001"
NUMBER = "+15125550100"  # AdvanceConnect pays
SUBSCRIBED = "+15125550142"  # a subscription pays
PRIVILEGED = "+15125550123"
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
#: Lease lengths short enough that a test watches one expire.
TTL = 0.3


async def _open(kind: str) -> RedisAccountStore:
    prefix = unique_prefix()
    if kind == "cluster":
        store = RedisAccountStore(None, cluster_nodes=SERVERS.cluster().nodes, prefix=prefix)
    else:
        store = RedisAccountStore(SERVERS.single().url, prefix=prefix)
    await store.open()
    return store


def _service(store: RedisAccountStore, node: str) -> AccountService:
    config = load_config(CONFIG)
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    return AccountService(store, facilities, AccountsPolicy(), node_id=node)


@pytest.fixture(params=["single", "cluster"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[list[RedisAccountStore]]:
    """Three connections to one store under one prefix: three nodes."""
    first = await _open(request.param)
    others = [
        RedisAccountStore(first.url, cluster_nodes=first.cluster_nodes, prefix=first.prefix)
        for _ in range(2)
    ]
    for store in others:
        await store.open()
    stores = [first, *others]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def _seed(service: AccountService) -> None:
    await service.store.add_person(Person(facility_id=FACILITY, pin=PIN))
    await service.store.set_privileged(PRIVILEGED, True, "attorney")
    await service.open_advance_connect([NUMBER], AT, account_id="ac1")
    await service.deposit("ac1", "20.00", "card", "dep-1", AT)
    await service.buy_subscription(
        SUBSCRIBED, FACILITY, AT - timedelta(days=1), AT + timedelta(days=20),
        "1.00", 100, "card", "sub-1", AT - timedelta(days=1),
    )  # fmt: skip


async def _call(service: AccountService, call_id: str, number: str, station: str) -> Authorization:
    auth = await service.authorize(CallRequest(call_id, FACILITY, PIN, number, AT, station=station))
    assert isinstance(auth, Authorization), auth
    return auth


async def test_a_survivor_settles_a_dead_nodes_calls_from_their_last_heartbeat(
    stores: list[RedisAccountStore],
) -> None:
    dead_store, survivor_store, _ = stores
    dead = _service(dead_store, "node-a")
    survivor = _service(survivor_store, "node-b")
    await _seed(dead)
    leases = NodeLeases(survivor_store)
    await NodeLeases(dead_store).renew("node-a", AT, TTL)
    await leases.renew("node-b", AT, 30)
    money = await _call(dead, "c-money", NUMBER, "A-101")
    sub = await _call(dead, "c-sub", SUBSCRIBED, "A-102")
    lawyer = await _call(dead, "c-lawyer", PRIVILEGED, "A-103")
    own = await _call(survivor, "c-own", NUMBER, "B-201")
    assert sub.product is Product.SUBSCRIPTION and lawyer.privileged
    assert (money.reservation.owner, own.reservation.owner) == ("node-a", "node-b")
    # node-a's controller heartbeats (every 15 s) until it is killed 95 s into talk.
    await dead.heartbeat(money.reservation_id, 90, AT + timedelta(seconds=100))
    await dead.heartbeat(sub.reservation_id, 45, AT + timedelta(seconds=60))

    # While node-a's lease holds, nothing of it is touched.
    assert await adopt_expired(survivor, leases, "node-b", AT + timedelta(seconds=101)) == []
    await asyncio.sleep(TTL + 0.2)
    states = {lease.node: lease.alive for lease in await leases.leases()}
    assert states == {"node-a": False, "node-b": True}

    [adopted] = await adopt_expired(survivor, leases, "node-b", AT + timedelta(seconds=120))
    assert adopted.node == "node-a"
    settled = {s.reservation.call_id: s for s in adopted.settlements}
    assert sorted(settled) == ["c-lawyer", "c-money", "c-sub"]
    assert settled["c-money"].reservation.talked_seconds == 90
    # Two minutes at the AdvanceConnect rate, never the whole hold.
    assert 0 < settled["c-money"].reservation.charged_units < money.reservation.amount_units
    assert settled["c-lawyer"].reservation.charged_units == 0  # never answered

    cdrs = {cid: await survivor_store.get_cdr(cid) for cid in settled}
    assert all(c.recovered for c in cdrs.values())
    assert "node-a's lease expired" in cdrs["c-money"].disconnect_reason
    assert (cdrs["c-money"].talked_seconds, cdrs["c-money"].station) == (90, "A-101")
    assert cdrs["c-money"].total_units == settled["c-money"].reservation.charged_units
    # What the old recovery CDR lacked: jurisdiction of a subscription call, privileged.
    assert (cdrs["c-sub"].jurisdiction, cdrs["c-sub"].product) == ("intrastate", "subscription")
    assert cdrs["c-sub"].talked_seconds == 45
    assert cdrs["c-lawyer"].privileged and cdrs["c-lawyer"].station == "A-103"

    # The survivor's own call is untouched; node-a is forgotten once it has nothing open.
    assert [r.call_id for r in await survivor_store.open_reservations()] == ["c-own"]
    assert [lease.node for lease in await leases.leases()] == ["node-b"]
    account = await survivor_store.get_account("ac1")
    assert account.held_units == own.reservation.amount_units
    report = await verify_store(survivor_store)
    assert report.ok, report.problems

    # node-a comes back: its start-up finds nothing of its own open, and does nothing.
    back = _service(dead_store, "node-a")
    again = await settle_own_leftovers(back, NodeLeases(dead_store), "node-a", AT + timedelta(
        minutes=5))
    assert again.settlements == ()
    with pytest.raises(InvalidState):  # settled already: refused, not repeated
        await dead.settle(money.reservation_id, 95, AT + timedelta(seconds=95))
    assert (await survivor_store.get_account("ac1")).balance_units == account.balance_units
    assert (await survivor_store.get_cdr("c-money")).talked_seconds == 90


async def test_two_survivors_racing_settle_each_call_once(
    stores: list[RedisAccountStore],
) -> None:
    dead_store, one_store, two_store = stores
    dead = _service(dead_store, "node-a")
    await _seed(dead)
    await NodeLeases(dead_store).renew("node-a", AT, TTL)
    calls = [await _call(dead, f"c{n}", NUMBER, f"S{n}") for n in range(12)]
    for n, auth in enumerate(calls):
        await dead.heartbeat(auth.reservation_id, 15 * n, AT + timedelta(seconds=15 * n + 5))
    before = await dead_store.get_account("ac1")
    await asyncio.sleep(TTL + 0.2)
    one, two = _service(one_store, "node-b"), _service(two_store, "node-c")
    at = AT + timedelta(seconds=300)
    results = await asyncio.gather(
        adopt_expired(one, NodeLeases(one_store), "node-b", at),
        adopt_expired(two, NodeLeases(two_store), "node-c", at),
    )
    won = [s.reservation.call_id for adopted in results for a in adopted for s in a.settlements]
    assert sorted(won) == sorted(a.reservation.call_id for a in calls)  # each exactly once
    assert await dead_store.open_reservations() == []
    charged = 0
    for n, auth in enumerate(calls):
        r = await dead_store.get_reservation(auth.reservation_id)
        assert r.talked_seconds == 15 * n
        charged += r.charged_units or 0
        assert (await dead_store.get_cdr(auth.reservation.call_id)).recovered
    after = await dead_store.get_account("ac1")
    assert after.held_units == 0
    # The balance shown is after holds: what was held comes back, less what was charged.
    assert before.balance_units + before.held_units - after.balance_units == charged > 0
    assert (await verify_store(dead_store)).ok


async def test_a_node_restarting_settles_its_own_leftovers_before_taking_calls(
    stores: list[RedisAccountStore],
) -> None:
    store = stores[0]
    first = _service(store, "node-a")
    await _seed(first)
    leases = NodeLeases(store)
    await leases.renew("node-a", AT, 30)
    auth = await _call(first, "c1", NUMBER, "S1")
    await first.heartbeat(auth.reservation_id, 30, AT + timedelta(seconds=40))
    # Restarted before its lease expired: no survivor took the call; the node does.
    restarted = _service(store, "node-a")
    done = await settle_own_leftovers(restarted, leases, "node-a", AT + timedelta(seconds=60))
    assert [s.reservation.talked_seconds for s in done.settlements] == [30]
    assert await store.open_reservations() == []
    assert "at its restart" in (await store.get_cdr("c1")).disconnect_reason


async def test_a_claim_is_held_by_one_node_and_expires(
    stores: list[RedisAccountStore],
) -> None:
    store = stores[0]
    service = _service(store, "node-a")
    await _seed(service)
    auth = await _call(service, "c1", NUMBER, "S1")
    leases = NodeLeases(store)
    assert await leases.claim_call(auth.reservation_id, "node-b", TTL)
    assert await leases.claim_call(auth.reservation_id, "node-b", TTL)  # still ours
    assert not await leases.claim_call(auth.reservation_id, "node-c", TTL)
    await asyncio.sleep(TTL + 0.2)
    assert await leases.claim_call(auth.reservation_id, "node-c", TTL)
    with pytest.raises(NotFound):
        await leases.claim_call("no-such-hold", "node-c", TTL)
    with pytest.raises(ValueError, match="positive number of seconds"):
        await leases.renew("node-a", AT, 0)


async def test_a_released_lease_leaves_nothing_to_adopt(
    stores: list[RedisAccountStore],
) -> None:
    store = stores[0]
    leases = NodeLeases(store)
    await leases.renew("node-a", AT, 30)
    await leases.renew("node-b", AT + timedelta(seconds=2), 30)
    ages = {lease.node: lease.age(AT + timedelta(seconds=5)) for lease in await leases.leases()}
    assert ages == {"node-a": 5.0, "node-b": 3.0}
    await leases.release("node-a")
    assert [lease.node for lease in await leases.leases()] == ["node-b"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[node]\nlease_renew_seconds = 5\nlease_ttl_seconds = 6\n", "at least twice"),
        ("[node]\nlease_renew_seconds = 0\n", "greater than 0"),
        ("[node]\nid = \"a{b}\"\n", "pattern"),
        ("[accounts]\nheartbeat_seconds = 30\n", "less than or equal to 15"),
    ],
)
def test_nonsense_lease_and_heartbeat_settings_are_clear_config_errors(
    tmp_path: Path, table: str, message: str
) -> None:
    from settings.config import ConfigError

    text = CONFIG.read_text()
    for name in ("facilities", "regulation"):
        where = CONFIG.parent / name
        text = text.replace(f'{name} = "{name}/*.toml"', f'{name} = "{where}/*.toml"')
    if table.startswith("[accounts]"):
        text = text.replace("heartbeat_seconds = 15", "heartbeat_seconds = 30")
    else:
        text += "\n" + table
    path = tmp_path / "nodes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


async def test_the_takeover_round_shows_lease_ages_and_adopted_calls_in_metrics(
    stores: list[RedisAccountStore],
) -> None:
    from prometheus_client import CollectorRegistry

    from callcontrol.takeover import NodeTakeover, TakeoverMetrics

    dead_store, survivor_store, _ = stores
    dead = _service(dead_store, "node-a")
    await _seed(dead)
    clock = [AT]
    await NodeLeases(dead_store).renew("node-a", AT, TTL)
    auth = await _call(dead, "c1", NUMBER, "S1")
    await dead.heartbeat(auth.reservation_id, 20, AT + timedelta(seconds=25))
    await asyncio.sleep(TTL + 0.2)
    registry = CollectorRegistry()
    survivor = _service(survivor_store, "node-b")
    takeover = NodeTakeover(
        survivor, NodeLeases(survivor_store), "node-b", renew_seconds=60, ttl_seconds=120,
        metrics=TakeoverMetrics(registry, "node-b", lambda: 7), clock=lambda: clock[0],
    )
    assert await takeover.start() == 0  # node-b had nothing left from before
    clock[0] = AT + timedelta(seconds=30)
    assert await takeover.tick() == 1
    sample = registry.get_sample_value
    assert sample("ics_node_lease_age_seconds", {"node": "node-a"}) == 30.0
    assert sample("ics_node_lease_age_seconds", {"node": "node-b"}) == 0.0
    assert sample("ics_node_calls_adopted_total", {"node": "node-b", "from_node": "node-a"}) == 1
    assert sample("ics_node_calls_connected", {"node": "node-b"}) == 7
    assert takeover.lease_age(AT + timedelta(seconds=31)) == 1.0
    # Nothing more to adopt: node-a is forgotten and leaves the lease ages.
    assert await takeover.tick() == 0
    assert sample("ics_node_lease_age_seconds", {"node": "node-a"}) is None
    await takeover.stop(release=True)
    assert await NodeLeases(survivor_store).leases() == []
