"""Redis killed and restarted under a running service: refusals, journaling, exactly-once replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from redis_demo import AT, FACILITY, NUMBER, funded_service, request
from redis_servers import RedisServer, own_server, unique_prefix

from accounts import (
    AccountService,
    Authorization,
    Book,
    CallDetailRecord,
    CallOutcome,
    RedisAccountStore,
    Refusal,
    RefusalReason,
    StoreUnavailable,
)
from accounts.settlement_journal import JournaledSettlement, SettlementJournal
from api.metrics import Metrics

pytestmark = pytest.mark.e2e

DEPOSIT = 100_000  # $10.00


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    # appendfsync always: a SIGKILL loses nothing, so the restarted server has
    # every write the test made before the kill.
    with own_server(tmp_path / "redis", appendfsync="always") as s:
        yield s


@pytest.fixture
async def service(server: RedisServer) -> AsyncIterator[AccountService]:
    metrics = Metrics()
    store = RedisAccountStore(
        server.url,
        prefix=unique_prefix(),
        on_unavailable=lambda op: metrics.store_error("redis", op),
        connect_timeout=0.5,
        command_timeout=1.0,
        journal_path=server.directory.parent / "journal.sqlite3",
        replay_interval=0.1,
    )
    await store.open()
    svc = await funded_service(store)
    svc.metrics = metrics  # type: ignore[attr-defined]
    try:
        yield svc
    finally:
        await store.close()


def errors_counted(svc: AccountService, operation: str) -> float:
    metrics: Metrics = svc.metrics  # type: ignore[attr-defined]
    value = metrics.registry.get_sample_value(
        "ics_store_errors_total", {"store": "redis", "operation": operation}
    )
    return value or 0.0


def record(call_id: str, talked: int) -> CallDetailRecord:
    return CallDetailRecord(
        call_id=call_id,
        facility_id=FACILITY,
        pin="100001",
        number_e164=NUMBER,
        jurisdiction="",
        product="advance_connect",
        payer_account_id="ac1",
        setup_at=AT,
        answer_at=AT + timedelta(seconds=3),
        accept_at=AT + timedelta(seconds=9),
        end_at=AT + timedelta(seconds=9 + talked),
        talked_seconds=talked,
        billed_seconds=0,
        charge_units=0,
        fee_units=0,
        tax_units=0,
        total_units=0,
        outcome=CallOutcome.COMPLETED,
        disconnect_reason="caller hung up",
        disconnect_side="caller",
    )


async def test_redis_down_at_call_setup_refuses_with_503_and_counts_it(
    server: RedisServer, service: AccountService
) -> None:
    server.stop()
    refused = await service.authorize(request("c1"))
    assert isinstance(refused, Refusal)
    assert refused.reason is RefusalReason.STORE_UNAVAILABLE
    assert (refused.sip_status, refused.q850_cause) == (503, 41)
    assert refused.reason_header() == 'Q.850;cause=41;text="account store unavailable"'
    assert errors_counted(service, "screening_facts") == 1
    assert service.store.unavailable_count == 1  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable):
        await service.store.get_account("ac1")

    server.start()
    # Nothing was held for the refused call; the next call goes through.
    account = await service.store.get_account("ac1")
    assert (account.balance_units, account.held_units) == (DEPOSIT, 0)
    auth = await service.authorize(request("c2"))
    assert isinstance(auth, Authorization)
    assert auth.payer_account_id == "ac1"


async def test_redis_lost_during_a_call_settles_once_when_it_returns(
    server: RedisServer, service: AccountService
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore) and store.journal is not None
    journaled: list[str] = []
    store.on_journaled = journaled.append
    auth = await service.authorize(request("c1"))
    assert isinstance(auth, Authorization)
    held = auth.reservation.amount_units
    assert held > 0

    server.stop()  # the call is connected; it goes on to its limit without Redis
    talked = 300
    at = AT + timedelta(seconds=9 + talked)
    # The controller's end of call: settle, then write the record. Both land in the
    # node's journal, and the call is reported settled with the right charge.
    settlement = await service.settle(auth.reservation_id, talked, at)
    charge = 5 * 600  # 5 minutes at $0.06
    assert settlement.reservation.charged_units == charge
    assert settlement.quote is not None and settlement.quote.total_units == charge
    await store.add_cdr(replace(record("c1", talked), total_units=charge))
    assert journaled == [auth.reservation_id]
    assert [(e.kind, e.key) for e in store.journal.pending()] == [
        ("settle", auth.reservation_id),
        ("record", "c1"),
    ]
    # While Redis is away a replay keeps every entry.
    report = await store.replay_journal()
    assert (report.applied, report.remaining) == ([], 2)
    assert store.journal.pending()[0].attempts >= 1

    server.start()
    # The background replay applies the journal once Redis answers again.
    deadline = asyncio.get_running_loop().time() + 10
    while len(store.journal) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert len(store.journal) == 0
    account = await store.get_account("ac1")
    assert (account.balance_units, account.held_units) == (DEPOSIT - charge, 0)
    assert (await store.get_cdr("c1")).total_units == charge
    assert await store.open_reservations() == []
    # Applied exactly once: a second replay moves nothing.
    again = await store.replay_journal()
    assert (again.applied, again.already_applied) == ([], [])
    assert await store.book_balance(Book.REVENUE, "advance_connect") == charge
    assert [tx.kind for tx in await store.transactions(account_id="ac1")] == [
        "deposit",
        "reserve",
        "call",
    ]
    assert [e.state for e in store.journal.entries()] == ["applied", "applied"]


async def test_the_journal_survives_the_node_and_never_applies_twice(
    server: RedisServer, service: AccountService
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore) and store.journal is not None
    store.replay_interval = 3600  # replayed by hand below
    first = await service.authorize(request("c1"))
    second = await service.authorize(request("c2"))
    assert isinstance(first, Authorization) and isinstance(second, Authorization)
    # The first settlement reached Redis, but its answer was lost: the node journaled it.
    await service.settle(first.reservation_id, 120, AT + timedelta(seconds=130))
    assert store.journal.append_settlement(
        JournaledSettlement(first.reservation_id, 120, (), AT + timedelta(seconds=130))
    )
    server.stop()
    await service.settle(second.reservation_id, 60, AT + timedelta(seconds=70))
    path = store.journal.path
    await store.close()  # the node stops with its journal on disk

    server.start()
    node = RedisAccountStore(server.url, prefix=store.prefix, journal_path=path,
                             replay_interval=3600)  # fmt: skip
    on_disk = SettlementJournal(path)
    assert len(on_disk) == 2
    on_disk.close()
    await node.open()  # applies the journal before anything else uses the store
    try:
        assert node.journal is not None and len(node.journal) == 0
        assert [(e.key, e.state) for e in node.journal.entries()] == [
            (first.reservation_id, "already_applied"),
            (second.reservation_id, "applied"),
        ]
        assert await node.open_reservations() == []
        account = await node.get_account("ac1")
        assert (account.balance_units, account.held_units) == (DEPOSIT - 1_200 - 600, 0)
        calls = [tx for tx in await node.transactions(account_id="ac1") if tx.kind == "call"]
        assert len(calls) == 2
    finally:
        await node.close()


async def test_the_client_resending_a_script_never_moves_money_twice(
    service: AccountService,
) -> None:
    # A lost reply makes the client send the same EVALSHA again; replay it by hand.
    store = service.store
    assert isinstance(store, RedisAccountStore)
    auth = await service.authorize(request("c1"))
    assert isinstance(auth, Authorization)
    sent: list[tuple[list[str], list[str]]] = []
    script = store._scripts["settle"]

    class Twice:
        async def __call__(self, keys: list[str], args: list[str]) -> object:
            sent.append((keys, args))
            await script(keys=keys, args=args)
            return await script(keys=keys, args=args)

    store._scripts["settle"] = Twice()
    try:
        settled = await service.settle(auth.reservation_id, 60, AT + timedelta(seconds=60))
    finally:
        store._scripts["settle"] = script
    assert len(sent) == 1
    assert settled.reservation.charged_units == 600
    account = await store.get_account("ac1")
    assert (account.balance_units, account.held_units) == (DEPOSIT - 600, 0)
    assert [tx.kind for tx in await store.transactions(account_id="ac1")].count("call") == 1


async def test_an_entry_the_store_refuses_is_set_aside_and_the_rest_applied(
    service: AccountService,
) -> None:
    store = service.store
    assert isinstance(store, RedisAccountStore) and store.journal is not None
    store.replay_interval = 3600  # replayed by hand below
    auth = await service.authorize(request("c1"))
    assert isinstance(auth, Authorization)
    # A reservation the store never heard of, journaled before a real one.
    store.journal.append_settlement(JournaledSettlement("no-such-reservation", 10, (), AT))
    store.journal.append_settlement(JournaledSettlement(auth.reservation_id, 0, (), AT))
    report = await store.replay_journal()
    assert list(report.failed) == ["settle:no-such-reservation"]
    assert report.applied == [f"settle:{auth.reservation_id}"]
    assert [e.state for e in store.journal.entries()] == ["failed", "applied"]
    assert "NotFound" in store.journal.entries()[0].last_error
    account = await store.get_account("ac1")
    assert (account.balance_units, account.held_units) == (DEPOSIT, 0)
