"""`ics serve` on Redis while Redis is killed: refused with 503 at setup, settled after a call."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from redis_serve import SIPP, Service, carrier, facility, prepare_node
from redis_servers import RedisServer, own_server, unique_prefix

from accounts import CallDetailRecord, NotFound, RedisAccountStore

pytestmark = pytest.mark.e2e
# SIPp is part of the test set-up (scripts/test.sh installs sip-tester): missing, it fails.
assert SIPP is not None, "sipp is missing: install sip-tester (scripts/test.sh does)"

NUMBER = "+15125550161"
ACCOUNT = "ac-redis-faults"
DEPOSIT_UNITS = 100_000


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    # appendfsync always: the kill loses nothing the node was told was written.
    with own_server(tmp_path / "redis", appendfsync="always") as server:
        yield server


def metric(svc: Service, operation: str) -> float:
    with urllib.request.urlopen(svc.http_base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = (
        r'^ics_store_errors_total\{[^}]*operation="' + re.escape(operation)
        + r'"[^}]*store="redis"[^}]*\} ([0-9.e+]+)$'
    )  # fmt: skip
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def read(
    url: str, prefix: str, call_id: str, timeout: float = 15.0
) -> tuple[object, CallDetailRecord]:
    """The account and the call's record, once the node's journal reached Redis."""

    async def run() -> tuple[object, CallDetailRecord]:
        store = RedisAccountStore(url, prefix=prefix)
        await store.open()
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    record = await store.get_cdr(call_id)
                    account = await store.get_account(ACCOUNT)
                    if account.held_units == 0 or time.monotonic() > deadline:
                        return account, record
                except NotFound:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.2)
        finally:
            await store.close()

    return asyncio.run(run())


def test_redis_killed_at_setup_and_during_a_connected_call(
    redis: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    svc = prepare_node(tmp_path / "node", redis.url, prefix,
                       {NUMBER: (ACCOUNT, Decimal(DEPOSIT_UNITS) / 10_000)})  # fmt: skip
    svc.start()
    called = None
    try:
        # 1. Redis is down when the call is set up: 503, cause 41, counted.
        redis.stop()
        refused = facility(svc, tmp_path, "refused", NUMBER, 1, scenario="facility_refused").run()
        finals = refused.finals()
        assert [(f["status"], f["cause"]) for f in finals] == [("503", "41")], refused.describe()
        assert metric(svc, "screening_facts") >= 1
        redis.start()

        # 2. Redis is killed while a call is connected: the call goes on, ends, and
        # is settled (with its record) once Redis is back, exactly once.
        called = carrier(svc, tmp_path, "carrier", 1)
        call = facility(svc, tmp_path, "connected", NUMBER, 1, talk_ms=5000).start()
        deadline = time.monotonic() + 10
        while not call.result().log_lines("answered "):
            assert time.monotonic() < deadline, call.result().describe()
            time.sleep(0.1)
        time.sleep(1.5)  # accepted and talking
        redis.stop()
        result = call.wait()
        assert result.log_lines("hungup "), result.describe()  # the caller hung up normally
        call_id = result.call_ids()[0]
        time.sleep(1.0)  # the node settles and journals the call
        redis.start()
        account, record = read(redis.url, prefix, call_id)
    finally:
        if called is not None:
            called.kill()
        status = svc.stop()
    assert status == 0, svc.log()[-3000:]
    assert record.outcome == "completed", record
    assert 2 <= record.talked_seconds <= 6, record
    assert record.total_units > 0
    assert account.held_units == 0  # type: ignore[attr-defined]
    assert account.balance_units == DEPOSIT_UNITS - record.total_units  # type: ignore[attr-defined]
    assert "settlement journal" in svc.log(), svc.log()[-3000:]
