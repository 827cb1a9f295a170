"""Kamailio in front of two `ics serve` nodes on one Redis, SIPp as facility and called party:
calls spread over both nodes; a node killed with calls connected has them adopted and settled
by the other, while new calls keep connecting; a forged source header is refused."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from harness import SIPP, TRUNKS, Service, Sipp, stat_totals
from kamailio_front import KAMAILIO, PROXY_IP, Kamailio, metric, prepare_front_node
from redis_serve import carrier, shared_store
from redis_servers import SERVERS, unique_prefix

from accounts import CallDetailRecord, CdrFilter, RedisAccountStore, Reservation
from accounts.redis.verify import VerifyReport, verify_store

pytestmark = pytest.mark.e2e
assert SIPP is not None, "sipp is missing: install sip-tester (scripts/test.sh does)"
assert KAMAILIO is not None, "kamailio is missing: install it (scripts/test.sh does)"

NUMBER = "+14155550100"  # the demo's load-test account: $100,000
#: Calls connected when a node is killed.
CONNECTED = 50


def facility_through(proxy: Kamailio, workdir: Path, name: str, calls: int, talk_ms: int,
                     rate: float = 10.0) -> Sipp:
    """The facility trunk (its demo source address), calling through the proxy."""
    return Sipp(workdir, name, "facility_call_routed", local_ip=TRUNKS["tx-state-prison"],
                remote=proxy.address, calls=calls, timeout_s=30, keys={"pin": "100001"},
                sets={"talk_ms": talk_ms}, service=NUMBER,
                extra=["-r", str(rate), "-l", str(calls)])  # fmt: skip


def connected(nodes: list[Service]) -> list[float]:
    return [metric(svc, "ics_node_calls_connected", node=f"node{n}")
            for n, svc in enumerate(nodes, 1)]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


async def store_state(
    prefix: str, cluster: list[str],
) -> tuple[list[Reservation], list[CallDetailRecord], VerifyReport]:
    store = RedisAccountStore(
        None if cluster else SERVERS.single().url, cluster_nodes=cluster, prefix=prefix
    )
    await store.open()
    try:
        cdrs = await store.list_cdrs(CdrFilter(number_e164=NUMBER))
        return await store.open_reservations(), cdrs, await verify_store(store)
    finally:
        await store.close()


@pytest.mark.parametrize("redis", ["standalone", "cluster"])
def test_kill_one_node_under_kamailio_its_calls_are_adopted(tmp_path: Path, redis: str) -> None:
    prefix = unique_prefix()
    url, cluster, where = shared_store(redis)
    accounts: dict[str, tuple[str, Decimal]] = {}  # the demo seed funds NUMBER
    nodes = [prepare_front_node(tmp_path / f"node{n}", f"node{n}", url, prefix, accounts,
                                **where)
             for n in (1, 2)]
    proxy = Kamailio(tmp_path / "kamailio", [svc.ports.sip for svc in nodes])
    started: list[Service] = []
    peers: list[Sipp] = []
    try:
        for svc in nodes:
            svc.start()
            started.append(svc)
        peers += [carrier(svc, tmp_path, f"carrier{n}", 200) for n, svc in enumerate(nodes, 1)]
        proxy.start()
        time.sleep(1.5)  # the first OPTIONS round marks both nodes up
        # Long calls on both nodes; the facility SIPp's calls to the killed node die with it.
        long_calls = facility_through(proxy, tmp_path, "long", CONNECTED, talk_ms=12_000)
        peers.append(long_calls.start())
        wait_for(lambda: sum(connected(nodes)) >= CONNECTED, 20, f"{CONNECTED} connected calls")
        # Every call has heartbeated some talk (1 s heartbeats) before the kill.
        time.sleep(1.5)
        on_each = connected(nodes)
        assert min(on_each) >= 1, on_each  # spread over both nodes
        assert metric(nodes[1], "ics_node_lease_age_seconds", node="node1") <= 1.5
        dead, survivor = nodes
        assert dead.process is not None
        dead.process.kill()  # kill -9
        killed_at = time.monotonic()
        dead.process.wait()

        # New calls connect through the survivor within 5 s of the kill.
        fresh = facility_through(proxy, tmp_path, "fresh", 3, talk_ms=500, rate=3)
        fresh_result = fresh.run()
        totals = stat_totals(fresh_result.stat_csv)
        assert totals.get("SuccessfulCall(C)") == 3, fresh_result.describe()
        first_ok = time.monotonic() - killed_at
        assert first_ok < 5 + 2.5, first_ok  # three calls at 3/s end ~2 s after the first

        # The survivor adopts every call of the dead node once its lease expires.
        wait_for(lambda: metric(survivor, "ics_node_calls_adopted_total", node="node2",
                                from_node="node1") >= on_each[0], 15, "adoption")
        adopted_after = time.monotonic() - killed_at
        long_result = long_calls.wait(extra=20)
        peers.remove(long_calls)
        opened, cdrs, report = asyncio.run(store_state(prefix, cluster))
    finally:
        for sipp in peers:
            sipp.kill()
        proxy.stop()
        for svc in started:
            svc.stop()

    assert opened == [], opened  # no hold stays open
    assert report.ok, report.problems
    adopted = [r for r in cdrs if "node1's lease expired" in r.disconnect_reason]
    assert len(adopted) == on_each[0], [(r.call_id, r.disconnect_reason) for r in cdrs]
    for record in adopted:
        assert record.recovered and record.outcome == "completed"
        assert record.talked_seconds >= 1 and record.total_units > 0
        assert record.station == "trunk" and record.jurisdiction
    # The survivor's own long calls and the fresh ones ended normally.
    normal = [r for r in cdrs if not r.recovered]
    assert len(normal) == CONNECTED - on_each[0] + 3, long_result.describe()
    assert all(r.outcome == "completed" for r in normal)
    assert adopted_after < 15


def test_forged_source_header_from_a_facility_is_refused(tmp_path: Path) -> None:
    svc = prepare_front_node(tmp_path / "node", "node1", SERVERS.single().url, unique_prefix(),
                             {})
    svc.start()
    try:
        answers = {}
        for name, header in (("forged", f"X-ICS-Source: {TRUNKS['tx-state-prison']}\r\n"),
                             ("plain", "")):
            answers[name] = raw_invite(TRUNKS["al-county-jail"], svc.ports.sip, header)
        # From the proxy's address without a source: the proxy itself cannot call.
        answers["proxy"] = raw_invite(PROXY_IP, svc.ports.sip, "")
    finally:
        svc.stop()
    assert answers["forged"].startswith("SIP/2.0 403"), answers["forged"]
    assert 'untrusted source' in answers["forged"]
    assert answers["proxy"].startswith("SIP/2.0 403"), answers["proxy"]
    # The same facility without the header is screened as itself: trusted.
    assert "untrusted source" not in answers["plain"], answers["plain"]


def raw_invite(source: str, port: int, extra: str) -> str:
    """One INVITE from ``source`` to the node; its final answer's text."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(5)
        local = s.getsockname()[1]
        message = (
            f"INVITE sip:{NUMBER}@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{local};branch=z9hG4bK-forged-{time.time_ns()};rport\r\n"
            f"From: <sip:trunk@{source}>;tag=f1\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n"
            f"Call-ID: forged-{time.time_ns()}@{source}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:trunk@{source}:{local}>\r\nMax-Forwards: 70\r\n"
            f"X-Inmate-PIN: 200001\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        s.sendto(message.encode(), ("127.0.0.1", port))
        while True:
            data = s.recv(65535).decode(errors="replace")
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                return data


#: Steady new calls per second through the proxy while each node restarts in turn.
ROLLING_RATE = 20
ROLLING_SECONDS = 22


def test_rolling_restart_under_steady_load_fails_no_call(tmp_path: Path) -> None:
    prefix = unique_prefix()
    url = SERVERS.single().url
    # A grace longer than any call (ring, prompt, 1 s talk): draining cuts none.
    nodes = [prepare_front_node(tmp_path / f"node{n}", f"node{n}", url, prefix, {},
                                sip__shutdown_grace_seconds="8")
             for n in (1, 2)]
    proxy = Kamailio(tmp_path / "kamailio", [svc.ports.sip for svc in nodes])
    calls = ROLLING_RATE * ROLLING_SECONDS
    started: list[Service] = []
    peers: list[Sipp] = []
    restarts: list[tuple[str, float, float]] = []
    try:
        for svc in nodes:
            svc.start()
            started.append(svc)
        peers += [carrier(svc, tmp_path, f"carrier{n}", calls) for n, svc in enumerate(nodes, 1)]
        proxy.start()
        time.sleep(1.5)
        load = Sipp(tmp_path, "steady", "facility_call_routed", local_ip=TRUNKS["tx-state-prison"],
                    remote=proxy.address, calls=calls, timeout_s=ROLLING_SECONDS + 30,
                    keys={"pin": "100001"}, sets={"talk_ms": 1000}, service=NUMBER,
                    extra=["-r", str(ROLLING_RATE), "-l", str(calls)], trace_msg=False)
        peers.append(load.start())
        time.sleep(3)
        for n, svc in enumerate(nodes, 1):
            began = time.monotonic()
            assert svc.stop() == 0, svc.log()[-3000:]  # SIGTERM: drain, then exit
            stopped = time.monotonic()
            svc.start()
            restarts.append((f"node{n}", stopped - began, time.monotonic() - stopped))
            time.sleep(2)  # the proxy's next probe puts it back
        result = load.wait(extra=30)
        peers.remove(load)
        opened, cdrs, report = asyncio.run(store_state(prefix, []))
        per_node = [len([line for line in svc.outcome_lines() if '"completed"' in line])
                    for svc in nodes]
    finally:
        for sipp in peers:
            sipp.kill()
        proxy.stop()
        for svc in started:
            svc.stop()

    totals = stat_totals(result.stat_csv)
    assert totals.get("FailedCall(C)", 0) == 0, result.describe()
    assert totals.get("SuccessfulCall(C)") == calls, (totals, restarts)
    assert opened == [] and report.ok, report
    assert len(cdrs) == calls and all(r.outcome == "completed" for r in cdrs)
    assert not any(r.recovered for r in cdrs)
    assert min(per_node) > 0, per_node
