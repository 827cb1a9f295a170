"""Calls that run until their money runs out, placed in the background on a service of their own.

They take over a minute, so the session starts them first (conftest.py) and
the limit tests in test_ivr_paths.py only wait for their outcome.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audio import RtpSink
from harness import Service, Sipp, SippResult

from rating import Product, max_affordable_seconds
from settings.config import load_config

#: name -> (number, account). ``+15125550142`` has $0.07: 72 s at the test tariff,
#: so the one-minute warning plays at 12 s and BYE comes at 72 s. ``+15125550143``
#: has $0.06: exactly the 60-second minimum, so no warning and BYE at 60 s.
CALLS = {"warning": ("+15125550142", "ac-e2e-warning"),
         "funds": ("+15125550143", "ac-e2e-funds")}


@dataclass
class LimitedCall:
    service: Service
    number: str
    account: str
    limit: int
    balance_before: int
    result: SippResult
    sink: RtpSink


def affordable(service: Service, account_id: str, number: str) -> int:
    facility = load_config(service.config_path).facility("tx-state-prison").rated
    return max_affordable_seconds(facility, number, Product.ADVANCE_CONNECT,
                                  service.balance(account_id), datetime.now(UTC))


def run_limited_calls(service: Service, workdir: Path) -> dict[str, LimitedCall]:
    """Both calls side by side, accepted with key 1 by SIP INFO, held until BYE."""
    from e2e_setup import Peers

    peers = Peers(service, workdir)
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1000}, calls=len(CALLS),
                            timeout_s=120)
    out: dict[str, LimitedCall] = {}
    running: list[tuple[str, Sipp, RtpSink, int, int]] = []
    try:
        for name, (number, account) in CALLS.items():
            limit = affordable(service, account, number)
            sink = RtpSink("127.0.0.11").__enter__()
            fac = peers.facility("facility_call_held", number,
                                 keys={"rtp_port": str(sink.port)}, timeout_s=120).start()
            running.append((name, fac, sink, limit, service.balance(account)))
        for name, fac, sink, limit, before in running:
            result = fac.wait()
            sink.__exit__()
            number, account = CALLS[name]
            out[name] = LimitedCall(service, number, account, limit, before, result, sink)
        carrier_result = carrier.wait()
    finally:
        carrier.kill()
        for _, fac, sink, _, _ in running:
            fac.kill()
            sink.__exit__()
    assert carrier_result.returncode == 0, carrier_result.describe()  # both legs got BYE
    return out


class BackgroundLimits:
    """Runs ``run_limited_calls`` on its own `ics serve` in a thread."""

    def __init__(self, service: Service, workdir: Path) -> None:
        self.service = service
        self.workdir = workdir
        self._result: dict[str, LimitedCall] | None = None
        self._error: BaseException | None = None
        self.exit_status: int | None = None
        self._thread = threading.Thread(target=self._run, name="limited-calls", daemon=True)

    def start(self) -> BackgroundLimits:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.service.start()
            try:
                self._result = run_limited_calls(self.service, self.workdir)
            finally:
                self.exit_status = self.service.stop()
        except BaseException as exc:
            self._error = exc

    def join(self, timeout: float = 240) -> None:
        self._thread.join(timeout)

    def result(self) -> dict[str, LimitedCall]:
        self.join()
        if self._thread.is_alive():
            raise TimeoutError("the limited calls did not finish")
        if self._error is not None:
            raise self._error
        assert self.exit_status == 0, self.service.log()[-3000:]
        assert self._result is not None
        return self._result
