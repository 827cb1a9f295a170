"""Calls through the caller's voice menu, end to end: SIPp as a menu-trunk phone keying
language, PIN and number (SIP INFO or RFC 4733), a real `ics serve`, SIPp as the called party;
then what the phone heard (correlated against the prompts), the CDR and the money."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from audio import RtpSink, best_match, prompt_samples, write_wav
from baresip import BaresipPhone
from checks import (
    Balances,
    assert_billed,
    assert_cdr,
    assert_not_billed,
    carrier_sink,
    now_utc,
)
from e2e_setup import MENU_TRUNKS, NO_PAYER_AK, Peers
from harness import Service, SippResult
from menu import menu_phone
from menu_phone import MenuCall

pytestmark = pytest.mark.e2e

DEBIT_TX = "debit-tx-100001"


def call_id_of(result: SippResult) -> str:
    answered = result.log_lines("answered ")
    assert len(answered) == 1, result.describe()
    return answered[0].split("callid=")[1].split()[0]


def assert_heard(sink: RtpSink, prompt: str, workdir: Path, lang: str = "en") -> None:
    score = sink.heard(prompt, lang)
    if score < 0.8:
        write_wav(workdir / f"heard-{prompt}.wav", sink.samples())
    assert score >= 0.8, f"{prompt} ({lang}) not heard by the caller (correlation {score:.2f})"


def test_menu_call_by_sip_info_is_accepted_settled_from_acceptance(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    balances = Balances(service, DEBIT_TX)
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1500}, timeout_s=60)
    try:
        phone = menu_phone(service, tmp_path, "phone-info", MenuCall(
            keys=("1", "100001#", "5125550100#"), wait_ms=1200, talk_ms=9000),
            station="tx-phone-1").run()
        car = carrier.wait()
    finally:
        carrier.kill()
    assert phone.returncode == 0, phone.describe()
    assert car.returncode == 0, car.describe()
    call_id = call_id_of(phone)
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", product="debit",
               side="caller")
    # Acceptance came about 2 s after the number: menu, hold and ringing are never billed.
    assert_billed(service, record, talked_about=6.5, tolerance=2.5)
    assert record.station == "tx-phone-1", record
    # Three groups of keys, each after 1.2 s, at 0.15 s a key: about 6 s in the menu.
    assert 4 <= record.menu_seconds <= 9, record
    assert balances.delta(DEBIT_TX) == record.total_units
    assert service.held(DEBIT_TX) == 0


#: Calls refused after the menu, each heard by the phone: (facility, station, keys, the
#: prompt it must hear, its language, the CDR's pin).
SPOKEN = {
    "blocked": ("tx-state-prison", "tx-spoken-1", ("1", "100001#", "5125550199#"),
                "refused_blocked", "en", "100001"),
    "not-allowed": ("ak-regional-jail", "ak-spoken-1", ("1", "300001#", "3105550100#"),
                    "refused_not_allowed", "en", "300001"),
    "no-payer": ("ak-regional-jail", "ak-spoken-2", ("1", "300001#", NO_PAYER_AK[2:] + "#"),
                 "refused_no_payer", "en", "300001"),
    "wrong-pin": ("tx-state-prison", "tx-spoken-2", ("1", "999991#", "999992#", "999993#"),
                  "pin_invalid", "en", ""),
    # al-county-jail is closed now: the refusal says today's calling hours.
    "hours": ("al-county-jail", "al-spoken-1", ("1", "200001#", "5125550100#"),
              "hours_intro", "en", "200001"),
    # 100002's record says Spanish, and the caller chose it too.
    "spanish": ("tx-state-prison", "tx-spoken-3", ("2", "100002#", "5125550199#"),
                "refused_blocked", "es", "100002"),
}


def test_each_refusal_is_spoken_to_the_caller_then_bye(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    sinks = {name: RtpSink(MENU_TRUNKS[spec[0]]) for name, spec in SPOKEN.items()}
    with carrier_sink(service) as reached:
        for sink in sinks.values():
            sink.__enter__()
        try:
            phones = {
                name: menu_phone(service, tmp_path, f"phone-{name}", MenuCall(
                    keys=keys, wait_ms=1200, await_bye=True, bye_timeout_ms=40_000,
                    rtp_key=True), station=station, facility=facility,
                    rtp_port=sinks[name].port, timeout_s=60).start()
                for name, (facility, station, keys, *_rest) in SPOKEN.items()}
            results = {name: phone.wait() for name, phone in phones.items()}
        finally:
            for sink in sinks.values():
                sink.__exit__(None, None, None)
    assert reached == [], "a refused menu call reached the carrier"
    for name, (facility, _station, _keys, prompt, lang, pin) in SPOKEN.items():
        result = results[name]
        assert result.returncode == 0, (name, result.describe())
        assert result.log_lines("bye "), (name, result.describe())  # the controller's BYE
        assert_heard(sinks[name], prompt, tmp_path, lang)
        if prompt == "hours_intro":
            assert_heard(sinks[name], "refused_hours", tmp_path, lang)
        assert_heard(sinks[name], "goodbye", tmp_path, lang)
        record = service.cdr(call_id_of(result))
        assert_cdr(record, outcome="refused", facility=facility, pin=pin)
        assert_not_billed(record)
        assert record.station == _station and record.menu_seconds > 0, record


def test_menu_call_by_rfc4733_is_accepted_and_a_hang_up_in_the_menu_leaves_no_hold(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    balances = Balances(service, DEBIT_TX)
    # Hangs up while keying the PIN: nothing held, nothing charged.
    quitter = menu_phone(service, tmp_path, "phone-quits", MenuCall(
        keys=("1", "1000"), dtmf="rfc4733", wait_ms=1000, talk_ms=500),
        station="tx-quits").start()
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1500}, timeout_s=60)
    try:
        phone = menu_phone(service, tmp_path, "phone-rfc4733", MenuCall(
            keys=("1", "100001#", "5125550100#"), dtmf="rfc4733", wait_ms=1200,
            talk_ms=9000), station="tx-phone-2").run()
        car = carrier.wait()
    finally:
        carrier.kill()
    quit_result = quitter.wait()
    assert phone.returncode == 0, phone.describe()
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id_of(phone))
    assert_cdr(record, outcome="completed", number="+15125550100", product="debit")
    assert_billed(service, record, talked_about=5.5, tolerance=3.0)
    assert quit_result.returncode == 0, quit_result.describe()
    quit_record = service.cdr(call_id_of(quit_result))
    assert_cdr(quit_record, outcome="cancelled", pin="", side="caller")
    assert_not_billed(quit_record)
    assert quit_record.station == "tx-quits" and quit_record.menu_seconds >= 1, quit_record
    assert quit_record.reservation_id is None, quit_record
    assert balances.delta(DEBIT_TX) == record.total_units
    assert service.held(DEBIT_TX) == 0


def test_baresip_phone_keys_by_rfc4733_and_its_call_is_accepted_and_settled(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    balances = Balances(service, DEBIT_TX)
    started = now_utc()
    phone = BaresipPhone(tmp_path / "baresip", MENU_TRUNKS["tx-state-prison"],
                         user="tx-baresip").start()
    carrier = peers.carrier("carrier_info", keys={"digit": "1"},
                            sets={"ring_ms": 200, "dtmf_ms": 1500}, timeout_s=60)
    try:
        phone.dial(f"sip:menu@127.0.0.1:{service.ports.sip}")
        phone.wait_event("CALL_ESTABLISHED", timeout=10)
        for keys in ("1", "100001#", "5125550100#"):
            time.sleep(1.2)
            phone.press(keys, gap=0.25)
        time.sleep(9.0)  # hold, ringing, the called party's prompt and acceptance, talk
        phone.hang_up()
        phone.wait_event("CALL_CLOSED", timeout=10)
        car = carrier.wait()
    finally:
        carrier.kill()
        phone.stop()
    assert car.returncode == 0, car.describe()
    deadline = time.monotonic() + 10
    records: list[Any] = []
    while not records and time.monotonic() < deadline:
        records = [r for r in service.cdrs(number_e164="+15125550100")
                   if r.setup_at >= started and r.product == "debit"]
        time.sleep(0.2)
    assert len(records) == 1, records
    record = records[0]
    assert_cdr(record, outcome="completed", number="+15125550100", product="debit",
               side="caller")
    assert_billed(service, record, talked_about=5.0, tolerance=3.0)
    assert balances.delta(DEBIT_TX) == record.total_units
    # The phone heard the menu's hold message (no key barges in on that one). What baresip
    # writes is after its jitter buffer, which may drop or repeat a frame: a lower bar than
    # for an RtpSink's exact copy (a wrong prompt or noise scores under 0.4).
    score = best_match(phone.heard(), prompt_samples("please_hold"))
    assert score >= 0.7, f"hold message not heard by baresip (correlation {score:.2f})"


def test_five_wrong_pins_from_one_station_lock_its_pin_entry(
    service: Service, peers: Peers, tmp_path: Path
) -> None:
    station = "tx-guesser"

    def phone(name: str, keys: tuple[str, ...], sink: RtpSink) -> SippResult:
        result = menu_phone(service, tmp_path, name, MenuCall(
            keys=keys, wait_ms=1200, await_bye=True, bye_timeout_ms=40_000, rtp_key=True),
            station=station, rtp_port=sink.port).run()
        assert result.returncode == 0, (name, result.describe())
        assert result.log_lines("bye "), (name, result.describe())
        return result

    with RtpSink(MENU_TRUNKS["tx-state-prison"]) as first:
        phone("guess-1", ("1", "900001#", "900002#", "900003#"), first)
    assert_heard(first, "pin_invalid", tmp_path)
    # The fifth failure, on the next call, locks the station: it hears so at once.
    with RtpSink(MENU_TRUNKS["tx-state-prison"]) as second:
        phone("guess-2", ("1", "900004#", "900005#"), second)
    assert_heard(second, "station_locked", tmp_path)
    # Locked: even the right PIN is refused before it is checked.
    with RtpSink(MENU_TRUNKS["tx-state-prison"]) as third:
        result = phone("guess-3", ("1", "100001#"), third)
    assert_heard(third, "station_locked", tmp_path)
    record = service.cdr(call_id_of(result))
    assert_cdr(record, outcome="refused", pin="100001")
    assert record.disconnect_reason == "caller's menu: station locked", record
    assert_not_billed(record)
    locks = service._query(lambda s: s.list_station_locks("tx-state-prison", now_utc()))
    assert [(lock.station, lock.failures) for lock in locks] == [(station, 5)]
