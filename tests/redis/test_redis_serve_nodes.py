"""Two `ics serve` nodes on one Redis: concurrent SIPp calls to one AdvanceConnect account."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from redis_servers import SERVERS, unique_prefix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import (
    SIPP,
    TRUNKS,
    Service,
    ServicePorts,
    Sipp,
    replace_array_tables,
    set_toml,
)

from accounts import AccountStore, CallDetailRecord, CdrFilter, RedisAccountStore
from accounts.redis.verify import verify_store
from ics.config import load_config
from rating import Product, from_units, quote

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(SIPP is None, reason="SIPp (sip-tester) is not installed"),
]

NUMBER = "+15125550160"
ACCOUNT = "ac-two-nodes"
CALLS_PER_NODE = 3
ALL_DAY = (
    'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "23:59:59"'
)


def longest_hold_units() -> int:
    """What the longest tx-state-prison call to NUMBER holds (20 minutes)."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml")
    rated = config.facilities["tx-state-prison"].rated
    return quote(rated, NUMBER, Product.ADVANCE_CONNECT, 1200, datetime.now(UTC)).total_units


def prepare_node(root: Path, url: str, prefix: str, deposit: Decimal) -> Service:
    svc = Service.prepare(
        root,
        ports=ServicePorts.pick(rtp_size=60),
        service={
            ("store", "kind"): '"redis"',
            ("store", "url"): f'"{url}"',
            ("store", "prefix"): f'"{prefix}"',
            ("sip", "shutdown_grace_seconds"): "2",
            ("sip", "carrier_response_timeout_seconds"): "3",
            ("media", "menu_choice_timeout_seconds"): "2",
            ("media", "menu_attempts"): "2",
        },
    )

    def tx(text: str) -> str:
        text = set_toml(text, None, "ring_timeout_seconds", "5")
        # Nobody else pays: a call the account cannot hold for is refused (402).
        text = set_toml(text, None, "single_call_allowed", "false")
        return replace_array_tables(text, "calling_hours", [ALL_DAY])

    svc.edit("facilities/tx-state-prison.toml", tx)

    def seed(text: str) -> str:
        return text + (
            f'\n[[accounts]]\nid = "{ACCOUNT}"\nproduct = "advance_connect"\n'
            f'numbers = ["{NUMBER}"]\nholder = "Two nodes"\n'
            f'deposit = "{deposit}"\ndeposit_method = "card"\n'
        )

    svc.edit("seed/demo.toml", seed)
    return svc


def carrier(svc: Service, workdir: Path, name: str) -> Sipp:
    sipp = Sipp(workdir, name, "carrier_info", local_ip="127.0.0.1", calls=CALLS_PER_NODE,
                timeout_s=40, keys={"digit": "1"}, sets={"ring_ms": 200, "dtmf_ms": 800},
                extra=["-rtp_echo"])  # fmt: skip
    i = sipp.cmd.index("-p")
    sipp.cmd[i + 1] = str(svc.ports.carrier)
    sipp.sip_port = svc.ports.carrier
    return sipp.start().wait_listening()


def facility(svc: Service, workdir: Path, name: str) -> Sipp:
    # A refused call leaves SIPp waiting on its scenario; the connected calls are
    # over in about five seconds, so the run is cut at 15.
    return Sipp(workdir, name, "facility_call", local_ip=TRUNKS["tx-state-prison"],
                remote=f"127.0.0.1:{svc.ports.sip}", calls=CALLS_PER_NODE, timeout_s=15,
                keys={"pin": "100001"}, sets={"talk_ms": 3000}, service=NUMBER,
                extra=["-l", str(CALLS_PER_NODE)])  # fmt: skip


async def settled_state(
    store: AccountStore, timeout: float = 20.0
) -> tuple[int, int, list[CallDetailRecord]]:
    """Balance, held and records once every call has settled."""
    deadline = time.monotonic() + timeout
    while True:
        account = await store.get_account(ACCOUNT)
        records = await store.list_cdrs(CdrFilter(number_e164=NUMBER))
        done = account.held_units == 0 and len(records) == 2 * CALLS_PER_NODE
        if done or time.monotonic() > deadline:
            return account.balance_units, account.held_units, records
        await asyncio.sleep(0.2)


def test_two_serve_nodes_never_overspend_one_account(tmp_path: Path) -> None:
    hold = longest_hold_units()
    # Three longest calls and half of a fourth: the six calls placed at once (three
    # on each node) cannot all be held, and neither node can take every hold.
    deposit_units = 3 * hold + hold // 2
    deposit = from_units(deposit_units)
    server = SERVERS.single()
    prefix = unique_prefix()
    nodes = [prepare_node(tmp_path / f"node{n}", server.url, prefix, deposit) for n in (1, 2)]
    started: list[Service] = []
    carriers: list[Sipp] = []
    try:
        for svc in nodes:  # the first one seeds the shared store, the second finds it seeded
            svc.start()
            started.append(svc)
        carriers = [carrier(svc, tmp_path, f"carrier{n}") for n, svc in enumerate(nodes, 1)]
        facilities = [facility(svc, tmp_path, f"facility{n}") for n, svc in enumerate(nodes, 1)]
        for sipp in facilities:
            sipp.start()
        results = [sipp.wait() for sipp in facilities]
        pids = [sipp.process.pid for sipp in facilities if sipp.process is not None]

        async def check() -> tuple[int, int, list[CallDetailRecord], object]:
            store = RedisAccountStore(server.url, prefix=prefix)
            await store.open()
            try:
                balance, held, records = await settled_state(store)
                report = await verify_store(store)
                return balance, held, records, report
            finally:
                await store.close()

        balance, held, records, report = asyncio.run(check())
    finally:
        for sipp in carriers:
            sipp.kill()
        for svc in started:
            svc.stop()

    assert held == 0
    assert report.ok, report.problems  # type: ignore[attr-defined]
    assert len(records) == 2 * CALLS_PER_NODE, [r.call_id for r in records]
    paid = [r for r in records if r.payer_account_id == ACCOUNT and r.outcome == "completed"]
    refused = [r for r in records if r.outcome == "refused"]
    # Never overspent, and every unit is accounted for.
    assert balance >= 0
    assert balance + sum(r.total_units for r in paid) == deposit_units
    # At most four calls could be held at once; the rest were refused, on either node.
    assert 1 <= len(paid) <= 4, records
    assert len(refused) >= 2, records
    # Each node connected at least one call to the shared account.
    for pid, result in zip(pids, results, strict=True):
        mine = [r for r in paid if r.call_id.endswith(f"-{pid}@{TRUNKS['tx-state-prison']}")]
        assert mine, (pid, [r.call_id for r in records], result.describe())
