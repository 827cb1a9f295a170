"""Carrier failover against a real `ics serve`: SIPp gateways, a dead one, a keep-alive peer.

The route of the first service is a dead gateway (nothing listens), then a
SIPp gateway that answers 503, then a SIPp called party that accepts; the
last one carries one call at most. The second service watches a gateway that
answers OPTIONS (a socket in this test) and a dead one by keep-alive.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from checks import Balances, assert_cdr, assert_final, assert_not_billed, connected_call_id
from e2e_setup import Peers, prepare_e2e_service
from harness import _RESERVED, Service, Sipp, free_port

from callcontrol.sip import Request, make_response, parse_message

pytestmark = pytest.mark.e2e

NUMBER = "+15125550100"
ACCOUNT = "ac-15125550100"


def gateway_blocks(*gateways: tuple[str, int, str]) -> str:
    return "".join(f'\n[[carrier.gateways]]\nname = "{name}"\naddress = "127.0.0.1:{port}"\n'
                   f"{extra}\n" for name, port, extra in gateways)


def metric(service: Service, name: str, gateway: str) -> float | None:
    with urllib.request.urlopen(service.http_base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{gateway="{gateway}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def readiness(service: Service) -> tuple[int, dict[str, bool]]:
    try:
        with urllib.request.urlopen(service.http_base + "/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())["checks"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["checks"]


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Sipp, int]]:
    root = tmp_path_factory.mktemp("ics-routes")
    svc = prepare_e2e_service(root)
    dead = free_port()
    _RESERVED.add(dead)  # nothing may listen there
    unavailable = Sipp(root, "gw-503", "carrier_503", local_ip="127.0.0.1", calls=4,
                       timeout_s=40)
    svc.edit("demo.toml", lambda text: text + "\n[carrier]\n" + gateway_blocks(
        ("dead", dead, "priority = 1"),
        ("busy", unavailable.sip_port, "priority = 2"),
        ("good", svc.ports.carrier, "priority = 3\nmax_calls = 1")))
    svc.start()
    unavailable.start().wait_listening()
    try:
        yield svc, unavailable, dead
    finally:
        unavailable.kill()
        status = svc.stop()
        assert status == 0, svc.log()[-3000:]


def test_a_call_fails_over_past_a_dead_and_a_503_gateway(
        routed: tuple[Service, Sipp, int], tmp_path: Path) -> None:
    svc, unavailable, _ = routed
    peers = Peers(svc, tmp_path)
    fac, car = peers.call("facility_call", NUMBER, "carrier_info",
                          carrier_keys={"digit": "1"},
                          carrier_sets={"ring_ms": 200, "dtmf_ms": 500},
                          sets={"talk_ms": 1000}, timeout_s=30)
    call_id = connected_call_id(fac)
    assert car is not None and car.returncode == 0, car.describe()
    record = svc.cdr(call_id)
    assert_cdr(record, outcome="completed", number=NUMBER)
    assert record.gateway == "good"
    assert record.talked_seconds >= 1
    assert unavailable.result().log_lines("invite call=1 ")  # the 503 gateway was tried
    assert metric(svc, "ics_carrier_failovers_total", "dead") == 1
    assert metric(svc, "ics_carrier_failovers_total", "busy") == 1
    line = next(json.loads(x) for x in svc.outcome_lines() if call_id in x)
    assert line["gateway"] == "good"


def test_a_full_gateway_is_passed_over(routed: tuple[Service, Sipp, int],
                                       tmp_path: Path) -> None:
    svc, _, _ = routed
    peers = Peers(svc, tmp_path)
    # The first call holds "good" (its only slot) while the second is placed.
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 100, "dtmf_ms": 300}, timeout_s=30)
    first = peers.facility("facility_call", NUMBER, sets={"talk_ms": 6000},
                           timeout_s=30).start()
    deadline = time.monotonic() + 10
    while metric(svc, "ics_carrier_gateway_calls", "good") != 1:
        assert time.monotonic() < deadline, svc.log()[-3000:]
        time.sleep(0.1)
    second = peers.facility("facility_refused", NUMBER, timeout_s=20).run()
    finals = second.finals()
    assert len(finals) == 1 and finals[0]["status"] == "503", second.describe()
    refused = svc.cdr(finals[0]["callid"])
    assert refused.gateway == "busy"  # the last it could try; "good" was full
    assert refused.total_units == 0
    result = first.wait()
    assert result.returncode == 0, result.describe()
    assert carrier.wait().returncode == 0
    assert len(carrier.result().log_lines("invite ")) == 1


def test_a_carrier_silent_after_trying_is_cancelled_at_the_ring_timeout(
        routed: tuple[Service, Sipp, int], tmp_path: Path) -> None:
    svc, _, _ = routed
    peers = Peers(svc, tmp_path)
    balances = Balances(svc, ACCOUNT)
    started = time.monotonic()
    # dead (3 s of silence), 503, then a gateway that says 100 Trying and nothing more,
    # not even to the CANCEL.
    fac, car = peers.call("facility_refused", NUMBER, "carrier_trying_only", timeout_s=20)
    assert time.monotonic() - started < 10
    call_id = assert_final(fac, 480, 19)
    assert car is not None
    assert car.log_lines("cancel call=1 ")
    record = svc.cdr(call_id)
    assert_cdr(record, outcome="no_answer", number=NUMBER)
    assert record.gateway == "good"
    assert_not_billed(record)
    balances.assert_unchanged()  # the hold is released although the CANCEL got no answer
    assert [r for r in svc.open_reservations() if r.call_id == call_id] == []


class OptionsPeer:
    """A gateway that answers OPTIONS 200 while ``answering`` is set."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answering = threading.Event()
        self.answering.set()
        self.seen = 0
        self.invites = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = parse_message(data)
            if isinstance(message, Request) and message.method == "INVITE":
                self.invites += 1  # never answered: a gateway that took the call and is silent
            if isinstance(message, Request) and message.method == "OPTIONS":
                self.seen += 1
                if self.answering.is_set():
                    self.sock.sendto(make_response(message, 200).serialize(), addr)

    def __enter__(self) -> OptionsPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def wait_for(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_keepalive_marks_gateways_down_and_up(tmp_path: Path) -> None:
    """And with every gateway down or full, the facility gets 503 (cause 34) at once."""
    svc = prepare_e2e_service(tmp_path / "svc")
    dead = free_port()
    _RESERVED.add(dead)
    with OptionsPeer() as peer:
        svc.edit("demo.toml", lambda text: text + (
            "\n[carrier]\nkeepalive_interval_seconds = 0.5\nkeepalive_timeout_seconds = 0.4\n"
            "keepalive_failures = 2\n") + gateway_blocks(("alive", peer.port, "max_calls = 1"),
                                                         ("dead", dead, "")))
        svc.start()
        try:
            wait_for(lambda: metric(svc, "ics_carrier_gateway_up", "dead") == 0)
            assert metric(svc, "ics_carrier_gateway_up", "alive") == 1
            assert readiness(svc) == (200, {"store": True, "sip": True, "carrier": True})
            peers = Peers(svc, tmp_path)
            # "alive" takes the first call (and stays silent); the second finds it full.
            first = peers.facility("facility_refused", NUMBER, timeout_s=20).start()
            wait_for(lambda: metric(svc, "ics_carrier_gateway_calls", "alive") == 1)
            second = peers.facility("facility_refused", NUMBER, timeout_s=20).run()
            assert [(f["status"], f["cause"]) for f in second.finals()] == [("503", "34")]
            refused = svc.cdr(second.finals()[0]["callid"])
            assert (refused.gateway, refused.outcome, refused.reservation_id) == (
                "", "failed", None)  # nothing was held
            assert [(f["status"], f["cause"]) for f in first.wait().finals()] == [
                ("503", "102")]  # "alive" never answered the INVITE
            assert peer.invites >= 1
            peer.answering.clear()
            wait_for(lambda: metric(svc, "ics_carrier_gateway_up", "alive") == 0)
            status, checks = readiness(svc)
            assert (status, checks["carrier"]) == (503, False)
            invites = peer.invites
            down = peers.facility("facility_refused", NUMBER, timeout_s=20).run()
            assert [(f["status"], f["cause"]) for f in down.finals()] == [("503", "34")]
            assert peer.invites == invites  # a gateway that is down gets no call
            peer.answering.set()
            wait_for(lambda: metric(svc, "ics_carrier_gateway_up", "alive") == 1)
            assert readiness(svc)[0] == 200
            assert peer.seen >= 5
        finally:
            assert svc.stop() == 0, svc.log()[-3000:]
