"""The facility-side outcome table, row by row, against a real `ics serve` with SIPp peers.

Each test places a call from a demo trunk address with SIPp, checks the final
response and its Q.850 Reason as SIPp saw them, then the CDR and the balances
in the service's store. Calls refused before the carrier leg must not reach
the carrier gateway at all.
"""

from __future__ import annotations

import time

import pytest
from checks import (
    Balances,
    assert_carrier_ok,
    assert_cdr,
    assert_final,
    assert_not_billed,
    carrier_sink,
)
from e2e_setup import Peers
from harness import UNTRUSTED, Service, SippResult

pytestmark = pytest.mark.e2e

AC_TX = "ac-15125550100"


def refuse(peers: Peers, number: str, *, pin: str = "100001", facility: str = "tx-state-prison",
           source: str | None = None) -> tuple[SippResult, list[bytes]]:
    with carrier_sink(peers.service) as reached:
        result = peers.facility("facility_refused", number, pin=pin, facility=facility,
                                source=source, timeout_s=20).run()
    return result, reached


# -- 403 Forbidden ---------------------------------------------------------------------


def test_unknown_pin_is_403_and_recorded(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    result, reached = refuse(peers, "+15125550100", pin="999999")
    call_id = assert_final(result, 403, 21, "unknown PIN")
    assert reached == []
    record = service.cdr(call_id)
    assert_cdr(record, outcome="refused", pin="999999")
    assert_not_billed(record)
    balances.assert_unchanged()


def test_pin_of_another_facility_is_403(service: Service, peers: Peers) -> None:
    # 200001 is a person at al-county-jail; the call comes from tx-state-prison's trunk.
    result, reached = refuse(peers, "+15125550100", pin="200001")
    call_id = assert_final(result, 403, 21)
    assert reached == []
    assert_cdr(service.cdr(call_id), outcome="refused", pin="200001")


def test_number_blocked_by_the_facility_is_403(service: Service, peers: Peers) -> None:
    result, reached = refuse(peers, "+15125550199")
    call_id = assert_final(result, 403, 21, "number blocked by the facility")
    assert reached == []
    record = service.cdr(call_id)
    assert_cdr(record, outcome="refused", number="+15125550199")
    assert_not_billed(record)


def test_number_not_on_the_allowed_list_is_403(service: Service, peers: Peers) -> None:
    # ak-regional-jail requires an allowed list; +13105550100 is not on the person's.
    result, reached = refuse(peers, "+13105550100", pin="300001", facility="ak-regional-jail")
    call_id = assert_final(result, 403, 21, "number not on the allowed list")
    assert reached == []
    assert_cdr(service.cdr(call_id), outcome="refused", facility="ak-regional-jail",
               pin="300001")


def test_outside_calling_hours_is_403(service: Service, peers: Peers) -> None:
    # The test config opens al-county-jail for one hour, hours away from now.
    result, reached = refuse(peers, "+15125550100", pin="200001", facility="al-county-jail")
    call_id = assert_final(result, 403, 21, "outside calling hours")
    assert reached == []
    assert_cdr(service.cdr(call_id), outcome="refused", facility="al-county-jail",
               pin="200001")


def test_untrusted_source_is_403_and_never_reaches_the_carrier(
    service: Service, peers: Peers
) -> None:
    balances = Balances(service, AC_TX)
    result, reached = refuse(peers, "+15125550100", source=UNTRUSTED)
    call_id = assert_final(result, 403, 21)
    assert reached == []
    # No facility, no person: nothing for a CDR to name.
    time.sleep(0.5)
    assert [c for c in service.cdrs(number_e164="+15125550100") if c.call_id == call_id] == []
    balances.assert_unchanged()


# -- 404 / 484 -----------------------------------------------------------------------


def test_garbage_number_is_404(service: Service, peers: Peers) -> None:
    result, reached = refuse(peers, "call-me-maybe")
    assert_final(result, 404, 1)
    assert reached == []


def test_short_number_is_484(service: Service, peers: Peers) -> None:
    result, reached = refuse(peers, "5125550")
    assert_final(result, 484, 28)
    assert reached == []


def test_unroutable_number_is_404(service: Service, peers: Peers) -> None:
    # Ten digits, but area code 000 does not exist.
    result, reached = refuse(peers, "0005550100")
    assert_final(result, 404, 1)
    assert reached == []


# -- 402 Payment Required ----------------------------------------------------------


def test_nobody_can_pay_and_no_single_call_is_402(service: Service, peers: Peers) -> None:
    # ak-regional-jail offers no Single Call; put the number on the person's allowed
    # list (through the store, as an administrator would) so screening passes.
    number = "+12125550100"

    async def allow(store: object) -> None:
        await store.set_allowed_number("ak-regional-jail", "300001", number, True)  # type: ignore[attr-defined]

    service._query(allow)
    result, reached = refuse(peers, number, pin="300001", facility="ak-regional-jail")
    call_id = assert_final(result, 402, 31, "nobody can pay for this call")
    assert reached == []
    record = service.cdr(call_id)
    assert_cdr(record, outcome="refused", facility="ak-regional-jail", pin="300001",
               number=number)
    assert_not_billed(record)
    assert record.payer_account_id is None


# -- carrier outcomes: 480, 486, 503 -------------------------------------------------


def test_busy_is_486_and_releases_the_reservation(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    fac, car = peers.call("facility_refused", "+15125550100", "carrier_busy", timeout_s=20)
    call_id = assert_final(fac, 486, 17)
    assert_carrier_ok(car)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="busy", number="+15125550100", product="advance_connect",
               side="called")
    assert_not_billed(record)
    balances.assert_unchanged()
    assert service.open_reservations() == []


def test_no_answer_is_480_after_the_ring_timeout(service: Service, peers: Peers) -> None:
    # The test config rings tx-state-prison calls for 5 s at most.
    balances = Balances(service, AC_TX)
    started = time.monotonic()
    fac, car = peers.call("facility_refused", "+15125550100", "carrier_noanswer", timeout_s=30)
    elapsed = time.monotonic() - started
    call_id = assert_final(fac, 480, 19)
    assert_carrier_ok(car)  # it got CANCEL, sent 487
    assert elapsed >= 5
    record = service.cdr(call_id)
    assert_cdr(record, outcome="no_answer", number="+15125550100")
    assert_not_billed(record)
    balances.assert_unchanged()


def test_carrier_failure_is_503(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    fac, car = peers.call("facility_refused", "+15125550100", "carrier_failure", timeout_s=20)
    call_id = assert_final(fac, 503, 41)
    assert_carrier_ok(car)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="failed", number="+15125550100")
    assert_not_billed(record)
    balances.assert_unchanged()


def test_carrier_that_never_answers_is_503(service: Service, peers: Peers) -> None:
    # Nothing answers at the gateway: after the carrier response timeout (3 s in the
    # test config) the facility gets 503 and the reservation is released.
    balances = Balances(service, AC_TX)
    with carrier_sink(service) as reached:
        result = peers.facility("facility_refused", "+15125550100", timeout_s=20).run()
    call_id = assert_final(result, 503, 102)
    assert any(p.startswith(b"INVITE ") for p in reached)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="failed", number="+15125550100")
    assert_not_billed(record)
    balances.assert_unchanged()


def test_carrier_answering_garbage_is_503(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    fac, car = peers.call("facility_refused", "+15125550100", "carrier_garbage", timeout_s=20)
    call_id = assert_final(fac, 503)
    # Nothing more was sent its way: no CANCEL without a provisional response.
    assert_carrier_ok(car)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="failed", number="+15125550100")
    assert_not_billed(record)
    balances.assert_unchanged()
