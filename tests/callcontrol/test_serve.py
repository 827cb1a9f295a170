"""`ics serve` as a real process with SIPp on both sides: a call accepted by SIP INFO, then
SIGTERM: new calls get 503, the connected call gets BYE on both legs and is settled, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from accounts import CallOutcome, SqliteAccountStore

from .conftest import demo_copy, free_port

SIPP = "/usr/bin/sipp"
SCENARIOS = Path(__file__).parent / "sipp"

# SIPp is part of the test set-up (scripts/test.sh installs sip-tester): missing, it fails.
assert os.path.exists(SIPP), f"{SIPP} is missing: install sip-tester (scripts/test.sh does)"


def _wait_for(predicate: object, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _live_calls(http_port: int) -> list[dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v1/calls",
        headers={"Authorization": "Bearer demo-admin-token"},
    )
    with urllib.request.urlopen(request, timeout=2) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def _sipp(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([SIPP, *args, "-nostdin", "-trace_err"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_call_accepted_then_graceful_shutdown(tmp_path: Path) -> None:
    sip_port, carrier_port = free_port(), free_port()
    http_port = free_port(socket.SOCK_STREAM)
    config = demo_copy(tmp_path, sip_port=sip_port, carrier_port=carrier_port,
                       http_port=http_port, rtp=(42000, 42999))
    serve = subprocess.Popen(
        [sys.executable, "-m", "ics.cli", "serve", "--config", str(config), "--grace", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    carrier = facility = None
    try:
        assert serve.stderr is not None
        line = serve.stderr.readline()
        assert "SIP on" in line, line
        carrier = _sipp("-sf", str(SCENARIOS / "carrier_info_dtmf.xml"), "-i", "127.0.0.1",
                        "-p", str(carrier_port), "-mp", str(free_port()), "-m", "1",
                        "-set", "digitwait", "500", "-key", "digit", "1", "-timeout", "60",
                        cwd=tmp_path)
        time.sleep(0.3)
        facility = _sipp(f"127.0.0.1:{sip_port}", "-sf", str(SCENARIOS / "facility_held.xml"),
                         "-i", "127.0.0.11", "-p", str(free_port()), "-mp", str(free_port()),
                         "-s", "5125550100", "-key", "pin", "100001", "-m", "1",
                         "-timeout", "60", cwd=tmp_path)
        calls = _wait_for(
            lambda: [c for c in _live_calls(http_port) if c["state"] == "connected"], 20,
            "the call to be accepted")
        assert isinstance(calls, list) and calls[0]["number"] == "+15125550100"
        assert calls[0]["product"] == "advance_connect"
        time.sleep(1.2)  # talk a little: at least one second is billed

        serve.send_signal(signal.SIGTERM)
        refused = subprocess.run(
            [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(SCENARIOS / "facility_expect_503.xml"),
             "-i", "127.0.0.12", "-p", str(free_port()), "-mp", str(free_port()),
             "-s", "2055550100", "-key", "pin", "200001", "-m", "1", "-timeout", "10",
             "-nostdin"], cwd=tmp_path, capture_output=True, timeout=20)
        assert refused.returncode == 0, refused.stdout.decode()[-2000:]

        assert serve.wait(timeout=30) == 0
        assert facility.wait(timeout=20) == 0  # it got the BYE
        assert carrier.wait(timeout=20) == 0  # so did the called party
    finally:
        for proc in (facility, carrier, serve):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    errors = serve.stderr.read() if serve.stderr else ""
    outcome_lines = [json.loads(x) for x in errors.splitlines() if x.startswith("{")]
    assert [x["outcome"] for x in outcome_lines] == ["completed"], errors
    assert outcome_lines[0]["reason"] == "service shutting down"

    async def check_store() -> None:
        store = SqliteAccountStore(tmp_path / "configs" / "var" / "ics.sqlite3")
        await store.open()
        try:
            cdrs = await store.list_cdrs()
            assert len(cdrs) == 1
            cdr = cdrs[0]
            assert cdr.outcome is CallOutcome.COMPLETED
            assert cdr.disconnect_side == "controller"
            assert cdr.talked_seconds >= 1
            assert cdr.billed_seconds == 60
            assert cdr.total_units == 600  # one minute at $0.06
            assert cdr.recording_path and Path(cdr.recording_path).exists()
            assert cdr.accept_at is not None and cdr.answer_at is not None
            account = await store.get_account("ac-15125550100")
            assert account.balance_units == 250_000 - 600
            assert await store.open_reservations() == []
        finally:
            await store.close()

    asyncio.run(check_store())


def test_tcp_facility_call_hung_up_by_an_operator(tmp_path: Path) -> None:
    sip_port, carrier_port = free_port(), free_port()
    http_port = free_port(socket.SOCK_STREAM)
    config = demo_copy(tmp_path, sip_port=sip_port, carrier_port=carrier_port,
                       http_port=http_port, rtp=(43000, 43999))
    serve = subprocess.Popen(
        [sys.executable, "-m", "ics.cli", "serve", "--config", str(config), "--grace", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    carrier = facility = None
    try:
        assert serve.stderr is not None
        assert "SIP on" in serve.stderr.readline()
        carrier = _sipp("-sf", str(SCENARIOS / "carrier_info_dtmf.xml"), "-i", "127.0.0.1",
                        "-p", str(carrier_port), "-mp", str(free_port()), "-m", "1",
                        "-set", "digitwait", "500", "-key", "digit", "3", "-timeout", "60",
                        cwd=tmp_path)
        time.sleep(0.3)
        facility = _sipp(f"127.0.0.1:{sip_port}", "-t", "t1",
                         "-sf", str(SCENARIOS / "facility_held.xml"),
                         "-i", "127.0.0.11", "-p", str(free_port()), "-mp", str(free_port()),
                         "-s", "+15125550123", "-key", "pin", "100001", "-m", "1",
                         "-timeout", "60", cwd=tmp_path)
        calls = _wait_for(
            lambda: [c for c in _live_calls(http_port) if c["state"] == "connected"], 20,
            "the call to be accepted")
        assert isinstance(calls, list)
        assert calls[0]["recorded"] is False  # +15125550123 is a privileged number
        # Nobody holds an account for it: the called party accepted a Single Call with 3.
        assert calls[0]["product"] == "single_call"
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/calls/{calls[0]['call_id']}/hang-up",
            data=json.dumps({"reason": "ended by staff"}).encode(), method="POST",
            headers={"Authorization": "Bearer demo-admin-token",
                     "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read())["hung_up"] is True
        assert facility.wait(timeout=20) == 0  # the BYE came over its TCP connection
        assert carrier.wait(timeout=20) == 0
        _wait_for(lambda: _live_calls(http_port) == [], 10, "the call to be gone")
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=30) == 0
    finally:
        for proc in (facility, carrier, serve):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    log = serve.stderr.read() if serve.stderr else ""
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert len(lines) == 1, log
    assert lines[0]["reason"] == "ended by staff" and lines[0]["side"] == "controller"
    assert lines[0]["recording"] is None  # privileged: never recorded
    assert not list((tmp_path / "configs" / "var" / "recordings").glob("*.wav"))
