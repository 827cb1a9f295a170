"""The real-time path on a standalone Redis: one pipelined connection, three round trips a call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_demo import AT, FACILITY, NUMBER, funded_service, request
from redis_servers import SERVERS, RedisServer, own_server, unique_prefix

from accounts import (
    AccountService,
    Authorization,
    Book,
    LedgerTransaction,
    Leg,
    RedisAccountStore,
)
from accounts.redis.lane import Lane, pack

pytestmark = pytest.mark.e2e


def test_commands_are_packed_as_resp_bulk_strings() -> None:
    assert pack([("SET", "k", 12), ("GET", "é")]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with own_server(tmp_path / "redis") as s:
        yield s


async def test_replies_come_back_in_order_with_errors_in_their_place() -> None:
    lane = Lane(port=SERVERS.single().port, timeout=5.0)
    key = unique_prefix()
    try:
        assert await lane.execute([("PING",)]) == ["PONG"]
        first, second = await asyncio.gather(
            lane.execute([("SET", key, "v"), ("HSET", key, "f", "x"), ("GET", key)]),
            lane.execute([("DEL", key), ("GET", key)]),
        )
    finally:
        lane.close()
    assert first[0] == "OK"
    assert isinstance(first[1], ResponseError) and "WRONGTYPE" in str(first[1])
    assert first[2] == "v"
    assert second == [1, None]
    # Both requests of one loop turn left in a single write.
    assert (lane.requests, lane.writes) == (3, 2)


async def test_a_request_given_up_by_its_caller_leaves_the_others_their_replies() -> None:
    lane = Lane(port=SERVERS.single().port, timeout=5.0)
    key = unique_prefix()
    try:
        assert await lane.execute([("SET", key, "mine")]) == ["OK"]
        abandoned = asyncio.create_task(lane.execute([("INCR", key + ":n")]))
        await asyncio.sleep(0)  # the request is queued and on its way
        abandoned.cancel()
        assert await lane.execute([("GET", key)]) == ["mine"]
        assert await lane.execute([("GET", key + ":n")]) == ["1"]
    finally:
        lane.close()


async def test_a_lost_server_fails_requests_and_the_next_one_reconnects(
    server: RedisServer,
) -> None:
    lane = Lane(port=server.port, connect_timeout=0.5, timeout=2.0)
    try:
        assert await lane.execute([("PING",)]) == ["PONG"]
        server.stop()
        with pytest.raises(RedisConnectionError):
            await lane.execute([("PING",)])
        server.start()
        assert await lane.execute([("PING",)]) == ["PONG"]
    finally:
        lane.close()


async def test_a_request_without_an_answer_times_out_and_drops_the_connection(
    server: RedisServer,
) -> None:
    lane = Lane(port=server.port, timeout=0.2)
    try:
        assert await lane.execute([("SET", "k", "1")]) == ["OK"]
        # Redis holds every client's commands; the lane gives up on its request.
        server.cli("CLIENT", "PAUSE", "1000", "ALL")
        with pytest.raises(RedisTimeoutError):
            await lane.execute([("GET", "k")])
        server.cli("CLIENT", "UNPAUSE")
        # A new connection: the late answer to the abandoned request is never read.
        assert await lane.execute([("INCR", "n")]) == [1]
        assert await lane.execute([("GET", "k")]) == ["1"]
    finally:
        lane.close()


@pytest.fixture
async def service() -> AsyncIterator[AccountService]:
    store = RedisAccountStore(SERVERS.single().url, prefix=unique_prefix())
    await store.open()
    svc = await funded_service(store)
    try:
        yield svc
    finally:
        await store.close()


async def test_a_call_is_authorized_and_settled_in_three_round_trips(
    service: AccountService,
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore) and store._lane is not None
    first = await service.authorize(request("c1"))  # learns who pays for the number
    assert isinstance(first, Authorization)
    await service.settle(first.reservation_id, 60, AT + timedelta(seconds=60))
    before = store._lane.requests
    auth = await service.authorize(request("c2"))
    assert isinstance(auth, Authorization) and auth.payer_account_id == "ac1"
    assert store._lane.requests - before == 2  # screening with payers, then the hold
    await service.settle(auth.reservation_id, 120, AT + timedelta(seconds=120))
    assert store._lane.requests - before == 3
    account = await store.get_account("ac1")
    assert (account.balance_units, account.held_units) == (100_000 - 600 - 1_200, 0)
    assert await store.book_balance(Book.HOLD, "ac1") == 0


async def test_payers_read_with_a_screening_are_not_used_after_a_change_on_the_node(
    service: AccountService,
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore)
    await store.screening_facts(FACILITY, "100001", NUMBER)
    await store.post(
        LedgerTransaction(
            kind="deposit",
            at=AT,
            account_id="ac1",
            idempotency_key="dep-2",
            legs=(Leg(Book.ACCOUNT, "ac1", 50_000), Leg(Book.FUNDS_IN, "card", -50_000)),
        )
    )
    candidates = await store.payer_candidates(FACILITY, "100001", NUMBER, AT)
    assert candidates.advance_connect is not None
    assert candidates.advance_connect.balance_units == 150_000


async def test_payers_read_with_a_screening_serve_only_the_task_that_screened(
    service: AccountService,
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore)
    await store.screening_facts(FACILITY, "100001", NUMBER)
    # Another node spends from the account (its own connection, not this node's).
    other = RedisAccountStore(SERVERS.single().url, prefix=store.prefix)
    await other.open()
    try:
        await other.update_account("ac1", status="closing")
    finally:
        await other.close()
    elsewhere = await asyncio.create_task(
        store.payer_candidates(FACILITY, "100001", NUMBER, AT)
    )
    assert elsewhere.advance_connect is not None
    assert elsewhere.advance_connect.status == "closing"


async def test_scripts_a_restarted_server_forgot_are_loaded_again(server: RedisServer) -> None:
    store = RedisAccountStore(server.url, prefix=unique_prefix())
    await store.open()
    try:
        svc = await funded_service(store)
        server.stop()
        server.start()  # the data is back (AOF), the script cache is empty
        assert server.cli("SCRIPT", "EXISTS", store._scripts["hold"].sha) == "0"
        auth = await svc.authorize(request("c1"))
        assert isinstance(auth, Authorization)
        server.cli("SCRIPT", "FLUSH")
        settled = await svc.settle(auth.reservation_id, 60, AT + timedelta(seconds=60))
        assert settled.reservation.charged_units == 600
        account = await store.get_account("ac1")
        assert (account.balance_units, account.held_units) == (100_000 - 600, 0)
    finally:
        await store.close()
