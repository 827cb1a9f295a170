"""`ics serve` under faults, driven from outside: a kill -9 during a connected call, and a
SIGTERM while a call is connected. Each test runs its own service instance."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from audio import RtpSink
from checks import Balances, assert_cdr, connected_call_id
from e2e_setup import Peers, prepare_e2e_service

pytestmark = pytest.mark.e2e

NUMBER, ACCOUNT = "+15125550100", "ac-15125550100"


def test_kill_9_during_a_connected_call_is_settled_from_its_last_heartbeat(
    tmp_path: Path,
) -> None:
    svc = prepare_e2e_service(tmp_path / "svc", accounts__heartbeat_seconds="1")
    svc.start()
    try:
        peers = Peers(svc, tmp_path)
        balances = Balances(svc, ACCOUNT)
        carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                                sets={"ring_ms": 200, "dtmf_ms": 1000}, timeout_s=30)
        with RtpSink("127.0.0.11") as sink:
            fac = peers.facility("facility_call_held", NUMBER,
                                 keys={"rtp_port": str(sink.port)}, timeout_s=30).start()
            assert fac.process is not None
            call_id = f"1-{fac.process.pid}@127.0.0.11"  # SIPp's Call-ID of its first call
            # Answered after 0.2 s, accepted at about 1.2 s; talk with heartbeats every second.
            time.sleep(5)
            assert svc.process is not None
            svc.process.send_signal(signal.SIGKILL)
            svc.process.wait()
            svc.process = None
            fac.kill()
            carrier.kill()
        # After the restart the call is settled from its last heartbeat, before new calls.
        svc.start()
        record = svc.cdr(call_id)
        assert record.recovered is True, record
        assert_cdr(record, outcome="completed", number=NUMBER)
        assert 1 <= record.talked_seconds <= 4, record  # never more than was talked
        assert record.total_units > 0
        assert balances.delta(ACCOUNT) == record.total_units
        assert svc.held(ACCOUNT) == 0
        assert svc.open_reservations() == []
    finally:
        status = svc.stop()
    assert status == 0, svc.log()[-3000:]


def test_sigterm_lets_a_connected_call_finish_then_ends_and_settles_it(
    tmp_path: Path,
) -> None:
    # Grace of 2 s (test config): the call is still connected when it runs out.
    svc = prepare_e2e_service(tmp_path / "svc")
    svc.start()
    peers = Peers(svc, tmp_path)
    balances = Balances(svc, ACCOUNT)
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1000}, timeout_s=30)
    try:
        with RtpSink("127.0.0.11") as sink:
            fac = peers.facility("facility_call_held", NUMBER,
                                 keys={"rtp_port": str(sink.port)}, timeout_s=30).start()
            time.sleep(4)
            assert svc.process is not None
            svc.process.send_signal(signal.SIGTERM)
            status = svc.process.wait(timeout=30)
            fac_result = fac.wait()
            car_result = carrier.wait()
    finally:
        carrier.kill()
        log = svc.log()
        svc.stop()
    assert status == 0, log[-3000:]
    # Both legs got a BYE from the controller, and the call was settled before exit.
    call_id = connected_call_id(fac_result)
    assert len(fac_result.log_lines("bye ")) == 1, fac_result.describe()
    assert car_result.returncode == 0, car_result.describe()
    record = svc.cdr(call_id, timeout=1)
    assert_cdr(record, outcome="completed", number=NUMBER, side="controller")
    assert record.recovered is False
    assert 3 <= record.talked_seconds <= 7, record
    assert balances.delta(ACCOUNT) == record.total_units > 0
    assert svc.open_reservations() == []
