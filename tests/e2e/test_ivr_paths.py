"""Every way through the acceptance prompt, end to end: SIPp facility, real `ics serve`, SIPp
called party pressing keys by SIP INFO or RFC 4733, then the CDR and the money in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audio import RtpSink, write_wav
from checks import (
    Balances,
    assert_billed,
    assert_cdr,
    assert_final,
    assert_not_billed,
    carrier_sink,
    connected_call_id,
    seconds_between,
)
from e2e_setup import Peers
from harness import Service, SippResult
from limits import BackgroundLimits, LimitedCall

pytestmark = pytest.mark.e2e

AC_TX = "ac-15125550100"
RING = {"ring_ms": 200}


def press(*digits: str, first_ms: int = 1000, gap_ms: int = 1500) -> dict[str, object]:
    """Carrier scenario and its parameters for a called party pressing keys by SIP INFO."""
    if len(digits) == 1:
        return {"carrier_scenario": "carrier_info", "carrier_keys": {"digit": digits[0]},
                "carrier_sets": {**RING, "dtmf_ms": first_ms}}
    return {"carrier_scenario": "carrier_info_two",
            "carrier_keys": {"digit": digits[0], "digit2": digits[1]},
            "carrier_sets": {**RING, "dtmf_ms": first_ms, "gap_ms": gap_ms}}


def call(peers: Peers, facility_scenario: str, number: str, **kwargs: Any
         ) -> tuple[SippResult, SippResult]:
    """One call with a called party; both sides' results."""
    fac, car = peers.call(facility_scenario, number, **kwargs)
    assert car is not None
    return fac, car


# -- accepted -------------------------------------------------------------------------


def test_accept_by_sip_info_bridges_bills_from_acceptance_and_records(
    service: Service, peers: Peers
) -> None:
    balances = Balances(service, AC_TX)
    fac, car = call(peers, "facility_call", "+15125550100", sets={"talk_ms": 3000},
                    timeout_s=40, **press("1"))
    call_id = connected_call_id(fac)
    assert fac.log_lines("hungup "), fac.describe()
    assert car.returncode == 0, car.describe()  # the called party got the BYE
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", product="advance_connect",
               side="caller")
    assert record.payer_account_id == AC_TX
    assert record.jurisdiction == "intrastate"
    # A header call names its station too (the From user), and spent no time in a menu.
    assert record.station == "trunk" and record.menu_seconds == 0, record
    assert_billed(service, record, talked_about=3)
    assert balances.delta(AC_TX) == record.total_units
    assert service.held(AC_TX) == 0
    assert record.privileged is False
    assert record.recording_path and Path(record.recording_path).is_file()


def test_accept_by_rfc4733_events(service: Service, peers: Peers) -> None:
    account = "ac-e2e-rfc4733"
    balances = Balances(service, account)
    fac, car = call(peers, "facility_call", "+15125550146", sets={"talk_ms": 2000},
                    carrier_scenario="carrier_rfc4733", carrier_sets={**RING, "dtmf_ms": 1000},
                    timeout_s=40)
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550146", side="caller")
    assert_billed(service, record, talked_about=2)
    assert balances.delta(account) == record.total_units


def test_hear_the_rate_then_accept(service: Service, peers: Peers) -> None:
    # 5 asks for the rate; the announcement plays, and 1 during it still accepts.
    account = "ac-e2e-rate"
    balances = Balances(service, account)
    fac, car = call(peers, "facility_call", "+15125550147", sets={"talk_ms": 2000},
                    timeout_s=40, **press("5", "1", first_ms=1000, gap_ms=4000))
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550147")
    # Key 5 neither accepted nor ended the call: acceptance came with the second key.
    assert seconds_between(record.answer_at, record.accept_at) >= 4.5, record
    assert_billed(service, record, talked_about=2)
    assert balances.delta(account) == record.total_units


def test_single_call_accepted_with_key_3_charges_the_called_party(
    service: Service, peers: Peers
) -> None:
    # +12125550100 has no account and person 100001 does not ask for Debit: Single Call.
    number = "+12125550100"
    debit = "debit-tx-100001"
    balances = Balances(service, debit, AC_TX)
    fac, car = call(peers, "facility_call", number, sets={"talk_ms": 2000}, timeout_s=40,
                    **press("3"))
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=number, product="single_call")
    assert record.jurisdiction == "interstate"
    assert_billed(service, record, talked_about=2)
    receivables = service._query(lambda s: s.list_receivables(number_e164=number))
    mine = [r for r in receivables if r.call_id == call_id]
    assert len(mine) == 1
    assert mine[0].amount_units == record.total_units
    balances.assert_unchanged()  # nobody else paid


def test_privileged_number_is_never_recorded(service: Service, peers: Peers) -> None:
    # +15125550123 is an attorney's number with no account: a Single Call, accepted with 3.
    number = "+15125550123"
    fac, car = call(peers, "facility_call", number, sets={"talk_ms": 2000}, timeout_s=40,
                    **press("3"))
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=number, product="single_call")
    assert record.privileged is True
    assert record.recording_path is None
    assert_billed(service, record, talked_about=2)
    recordings = service.root / "configs" / "var" / "recordings"
    assert not any(call_id in p.name for p in recordings.glob("*")), "privileged call recorded"


def test_called_party_hangs_up_after_accepting(service: Service, peers: Peers) -> None:
    account = "ac-e2e-hangup"
    balances = Balances(service, account)
    with RtpSink("127.0.0.11") as sink:
        fac, car = call(peers, "facility_call_held", "+15125550148",
                        keys={"rtp_port": str(sink.port)}, timeout_s=40,
                        carrier_scenario="carrier_hangup", carrier_keys={"digit": "1"},
                        carrier_sets={**RING, "dtmf_ms": 1000, "hangup_ms": 3000})
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe()
    byes = fac.log_lines("bye ")
    assert len(byes) == 1 and "text=called party hung up" in byes[0], fac.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550148", side="called")
    assert_billed(service, record, talked_about=3)
    assert balances.delta(account) == record.total_units


# -- not accepted -----------------------------------------------------------------------


def test_decline_with_key_2_is_603(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    fac, car = call(peers, "facility_refused", "+15125550100", timeout_s=40, **press("2"))
    call_id = assert_final(fac, 603, 21, "called party declined")
    assert car.returncode == 0, car.describe()  # BYE after the farewell
    record = service.cdr(call_id)
    assert_cdr(record, outcome="declined", number="+15125550100", side="called")
    assert record.answer_at is not None
    assert_not_billed(record)
    balances.assert_unchanged()


def test_block_with_9_confirmed_is_603_and_refuses_the_next_call(
    service: Service, peers: Peers
) -> None:
    number, account = "+15125550144", "ac-e2e-block"
    balances = Balances(service, account)
    fac, car = call(peers, "facility_refused", number, timeout_s=40,
                    **press("9", "9", first_ms=1000, gap_ms=1500))
    call_id = assert_final(fac, 603, 21, "called party blocked calls from this facility")
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="blocked_by_called_party", number=number, side="called")
    assert_not_billed(record)
    balances.assert_unchanged()
    # The block is recorded: the next call from this facility is refused at screening.
    with carrier_sink(service) as reached:
        again = peers.facility("facility_refused", number, timeout_s=20).run()
    assert_final(again, 403, 21, "called party blocked calls from this facility")
    assert reached == []


def test_called_party_hangs_up_during_the_prompt_is_603(
    service: Service, peers: Peers
) -> None:
    balances = Balances(service, AC_TX)
    fac, car = call(peers, "facility_refused", "+15125550100", timeout_s=40,
                    carrier_scenario="carrier_hangup", carrier_keys={"digit": "none"},
                    carrier_sets={**RING, "dtmf_ms": 0, "hangup_ms": 2000})
    call_id = assert_final(fac, 603, 21, "called party hung up during the prompt")
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="declined", number="+15125550100", side="called")
    assert_not_billed(record)
    balances.assert_unchanged()


def test_caller_cancels_during_the_prompt(service: Service, peers: Peers) -> None:
    balances = Balances(service, AC_TX)
    fac, car = call(peers, "facility_cancel", "+15125550100", sets={"cancel_ms": 2500},
                    carrier_scenario="carrier_silent", carrier_sets=RING, timeout_s=40)
    call_id = assert_final(fac, 487)
    assert car.returncode == 0, car.describe()  # the called party got BYE
    record = service.cdr(call_id)
    assert_cdr(record, outcome="cancelled", number="+15125550100", side="caller")
    assert record.answer_at is not None  # it was cancelled during the prompt
    assert_not_billed(record)
    balances.assert_unchanged()
    assert service.open_reservations() == []


def test_prompt_timeout_after_the_repetitions_is_480(service: Service, peers: Peers) -> None:
    # The test config waits 2 s after the options and plays them twice in all.
    balances = Balances(service, AC_TX)
    fac, car = call(peers, "facility_refused", "+15125550100", timeout_s=90,
                    carrier_scenario="carrier_silent", carrier_sets=RING)
    call_id = assert_final(fac, 480, 19, "no choice made at the prompt")
    assert car.returncode == 0, car.describe()
    record = service.cdr(call_id)
    assert_cdr(record, outcome="no_answer", number="+15125550100", side="controller")
    assert_not_billed(record)
    # Greeting, a wait, the options again and a wait: well over 30 s of prompt.
    assert seconds_between(record.answer_at, record.end_at) > 30, record
    balances.assert_unchanged()


# -- limits ---------------------------------------------------------------------------------
# These two calls last a minute or more, so they run on a service of their own,
# started in the background when the session begins (see conftest.py); the
# tests below wait for them and check what they left behind.


@pytest.fixture(scope="module")
def limited_calls(background_limits: BackgroundLimits) -> dict[str, LimitedCall]:
    return background_limits.result()


def test_limit_reached_after_the_one_minute_warning(
    limited_calls: dict[str, LimitedCall], tmp_path: Path
) -> None:
    c = limited_calls["warning"]
    service = c.service
    assert 60 < c.limit <= 90
    call_id = connected_call_id(c.result)
    byes = c.result.log_lines("bye ")
    assert len(byes) == 1 and "text=call time limit reached" in byes[0], c.result.describe()
    score = c.sink.heard("one_minute_warning")
    if score < 0.8:
        write_wav(tmp_path / "facility-heard.wav", c.sink.samples())
    assert score >= 0.8, f"warning not heard by the caller (correlation {score:.2f})"
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=c.number, side="controller")
    assert record.disconnect_reason == "call time limit reached"
    assert abs(record.talked_seconds - c.limit) <= 1, record
    assert_billed(service, record, talked_about=c.limit, tolerance=1)
    assert c.balance_before - service.balance(c.account) == record.total_units
    assert service.balance(c.account) >= 0


def test_funds_limit_ends_the_call_when_the_money_does(
    limited_calls: dict[str, LimitedCall]
) -> None:
    c = limited_calls["funds"]
    service = c.service
    assert c.limit == 60  # the least a payer must afford
    call_id = connected_call_id(c.result)
    byes = c.result.log_lines("bye ")
    assert len(byes) == 1 and "text=call time limit reached" in byes[0], c.result.describe()
    # Under a minute and a bit: no warning was due.
    assert c.sink.heard("one_minute_warning") < 0.5
    record = service.cdr(call_id)
    assert_cdr(record, outcome="completed", number=c.number, side="controller")
    assert abs(record.talked_seconds - c.limit) <= 1, record
    assert_billed(service, record, talked_about=c.limit, tolerance=1)
    after = service.balance(c.account)
    assert c.balance_before - after == record.total_units
    assert 0 <= after < c.balance_before
    assert service.held(c.account) == 0
