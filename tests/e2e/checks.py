"""Assertions shared by the end-to-end tests: what SIPp saw, what the store recorded."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from harness import Service, SippResult

from rating import Product, quote


def only_final(result: SippResult) -> dict[str, str]:
    """The one final response a facility_refused/facility_cancel run logged; SIPp passed."""
    assert result.returncode == 0, result.describe()
    finals = result.finals()
    assert len(finals) == 1, result.describe()
    return finals[0]


def assert_final(result: SippResult, status: int, cause: int | None = None,
                 text: str | None = None) -> str:
    """SIPp got ``status`` with ``Reason: Q.850;cause=<cause>``; returns the call's Call-ID."""
    final = only_final(result)
    assert final["status"] == str(status), result.describe()
    if cause is not None:
        assert final["cause"] == str(cause), result.describe()
    if text is not None:
        assert final["text"] == text, result.describe()
    return final["callid"]


def connected_call_id(result: SippResult) -> str:
    """The Call-ID of the one call SIPp saw answered (facility_call, facility_call_held)."""
    assert result.returncode == 0, result.describe()
    answered = result.log_lines("answered ")
    assert len(answered) == 1, result.describe()
    return answered[0].split("callid=")[1].split()[0]


def assert_carrier_ok(result: SippResult | None) -> None:
    """The called party's SIPp ran its whole scenario (e.g. it got the controller's BYE)."""
    assert result is not None, "no carrier side ran"
    assert result.returncode == 0, result.describe()


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None, (start, end)
    return (end - start).total_seconds()


def assert_cdr(record: Any, *, outcome: str, facility: str = "tx-state-prison",
               pin: str = "100001", number: str | None = None, product: str | None = None,
               side: str | None = None) -> None:
    assert record.outcome == outcome, record
    assert record.facility_id == facility, record
    assert record.pin == pin, record
    if number is not None:
        assert record.number_e164 == number, record
    if product is not None:
        assert record.product == product, record
    if side is not None:
        assert record.disconnect_side == side, record
    assert record.setup_at is not None and record.end_at is not None, record
    assert record.end_at >= record.setup_at, record


def assert_not_billed(record: Any) -> None:
    """A call never accepted: no talk time, no charge."""
    assert record.accept_at is None, record
    assert record.talked_seconds == 0, record
    assert record.billed_seconds == 0, record
    assert record.total_units == 0, record


def assert_billed(service: Service, record: Any, *, talked_about: float,
                  tolerance: float = 2.0) -> None:
    """Billed from acceptance for about ``talked_about`` seconds, priced by the rating engine."""
    assert record.accept_at is not None and record.answer_at is not None, record
    assert record.setup_at <= record.answer_at <= record.accept_at <= record.end_at, record
    assert abs(record.talked_seconds - talked_about) <= tolerance, record
    from settings.config import load_config

    facility = load_config(service.config_path).facility(record.facility_id)
    expected = quote(facility.rated, record.number_e164, Product(record.product),
                     record.talked_seconds, record.setup_at.astimezone(UTC))
    assert record.billed_seconds == expected.billed_seconds, (record, expected)
    assert record.charge_units == expected.charge_units, (record, expected)
    assert record.total_units == expected.total_units, (record, expected)
    assert record.total_units > 0, record


class Balances:
    """Balances and holds of some accounts before a call, to compare after it."""

    def __init__(self, service: Service, *account_ids: str) -> None:
        self.service = service
        self.before = {a: (service.balance(a), service.held(a)) for a in account_ids}

    def delta(self, account_id: str) -> int:
        """How much the spendable balance fell (positive = charged)."""
        return self.before[account_id][0] - self.service.balance(account_id)

    def assert_unchanged(self) -> None:
        for account_id, (balance, held) in self.before.items():
            assert self.service.balance(account_id) == balance, account_id
            assert self.service.held(account_id) == held, account_id


@contextlib.contextmanager
def carrier_sink(service: Service) -> Iterator[list[bytes]]:
    """Whatever reaches the carrier gateway while the block runs; nothing answers it."""
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", service.ports.carrier))
        s.setblocking(False)
        try:
            yield received
        finally:
            while True:
                try:
                    received.append(s.recv(65535))
                except BlockingIOError:
                    break


def now_utc() -> datetime:
    return datetime.now(UTC)
