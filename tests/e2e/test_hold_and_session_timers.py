"""Mid-dialog requests end to end: session timers (RFC 4028) on both legs of a real call.

A controller of its own asks both legs for a 6-second session (Min-SE 2), so its
refreshes come within seconds: SIPp plays the facility (which supports no
timer: the controller refreshes that leg) and the called party (which answers
refresher=uac: the controller refreshes that leg too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from checks import (
    Balances,
    assert_billed,
    assert_carrier_ok,
    assert_cdr,
    seconds_between,
)
from e2e_setup import Peers, prepare_e2e_service
from harness import Service, SippResult

pytestmark = pytest.mark.e2e

INTERVAL = 6
CARRIER = {"digit": "1", "interval": str(INTERVAL)}
RING = {"ring_ms": 200, "dtmf_ms": 1000}


@pytest.fixture(scope="module")
def timed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = prepare_e2e_service(tmp_path_factory.mktemp("ics-timers"),
                              sip__session_expires_seconds=str(INTERVAL),
                              sip__min_se_seconds="2")
    svc.start()
    try:
        yield svc
    finally:
        status = svc.stop()
        assert status == 0, f"ics serve exited with {status}:\n{svc.log()[-4000:]}"


@pytest.fixture
def timed_peers(timed_service: Service, tmp_path: Path) -> Peers:
    return Peers(timed_service, tmp_path)


def session_call(peers: Peers, number: str, refresh: str) -> tuple[SippResult, SippResult]:
    fac, car = peers.call("facility_session", number, "carrier_session", carrier_keys=CARRIER,
                          carrier_sets=RING, timeout_s=40,
                          keys={"refresh": refresh},
                          sets={"talk_ms": 1000})
    assert car is not None
    return fac, car


def refresh_times(result: SippResult) -> list[str]:
    return result.log_lines("refresh ")


def test_both_legs_are_refreshed_and_the_call_is_billed_as_talked(
    timed_service: Service, timed_peers: Peers
) -> None:
    account = "ac-e2e-hangup"
    balances = Balances(timed_service, account)
    fac, car = session_call(timed_peers, "+15125550148", "ok")
    assert fac.returncode == 0, fac.describe()
    assert_carrier_ok(car)
    # Each leg's 200 named the interval; each leg got one refresh naming it, the SDP
    # unchanged (the origin line the controller answered with first).
    answered = fac.log_lines("answered ")
    assert len(answered) == 1 and f"se={INTERVAL};refresher=uas" in answered[0]
    assert [line.split("se=")[1].split()[0] for line in refresh_times(fac)] == [
        f"{INTERVAL};refresher=uac"]
    assert len(refresh_times(car)) == 1 and f"se={INTERVAL};refresher=uac" in \
        refresh_times(car)[0]
    assert f"se={INTERVAL}" in car.log_lines("invite ")[0]  # the carrier was asked too
    call_id = answered[0].split("callid=")[1].split()[0]
    record = timed_service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550148", side="caller")
    # Talk: from acceptance through the refresh (half the interval) to the BYE 1 s later.
    assert_billed(timed_service, record, talked_about=INTERVAL / 2 + 1, tolerance=1.5)
    assert balances.delta(account) == record.total_units
    assert timed_service.held(account) == 0


def test_a_failed_refresh_ends_both_legs_and_settles_to_the_last_proof_of_life(
    timed_service: Service, timed_peers: Peers
) -> None:
    account = "ac-e2e-rate"
    balances = Balances(timed_service, account)
    fac, car = session_call(timed_peers, "+15125550147", "refuse")
    assert fac.returncode == 0, fac.describe()
    assert_carrier_ok(car)  # the called party got its BYE
    byes = fac.log_lines("bye ")
    assert len(byes) == 1 and "cause=102" in byes[0], fac.describe()  # timer expiry
    call_id = fac.log_lines("answered ")[0].split("callid=")[1].split()[0]
    record = timed_service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550147")
    # The facility sent no media and refused the refresh: nothing after its 200 OK
    # proved it was there, so the call is settled to then, not to the BYE.
    assert record.end_at is not None and record.accept_at is not None
    assert seconds_between(record.accept_at, record.end_at) < 1.5, record
    assert record.talked_seconds <= 1, record
    assert balances.delta(account) == record.total_units
    assert timed_service.held(account) == 0


def test_glare_both_ways_is_resolved_and_the_call_goes_on(
    timed_service: Service, timed_peers: Peers
) -> None:
    """The facility re-INVITEs while the controller's refresh re-INVITE is out: it gets
    491; it answers the refresh 491 too, and the controller's retry gets through."""
    account = "ac-e2e-pyvoip"
    balances = Balances(timed_service, account)
    fac, car = timed_peers.call("facility_glare", "+15125550145", "carrier_session",
                                carrier_keys=CARRIER, carrier_sets=RING, timeout_s=40,
                                sets={"talk_ms": 1000})
    assert fac.returncode == 0, fac.describe()
    assert car is not None
    assert_carrier_ok(car)
    assert len(fac.log_lines("glare ")) == 1  # our re-INVITE got 491
    first, again = fac.log_lines("refresh ")
    assert "first" in first and f"se={INTERVAL};refresher=uac" in again
    # RFC 3261 14.1: the party not owning the Call-ID waits 0-2 s before trying again.
    waited = _seconds(again) - _seconds(first)
    assert 0.0 <= waited <= 2.5, (first, again)
    call_id = fac.log_lines("answered ")[0].split("callid=")[1].split()[0]
    record = timed_service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550145", side="caller")
    assert balances.delta(account) == record.total_units
    assert timed_service.held(account) == 0


def _seconds(line: str) -> float:
    """The epoch seconds SIPp's [timestamp] puts in a log line."""
    return float(line.split("t=")[1].split()[2])
