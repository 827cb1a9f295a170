"""Admission of a facility's INVITE, judged in memory: every answer that leaves no call behind,
and the facts of an admitted call, at a given ``now``."""

from __future__ import annotations

import pytest

from callcontrol.admission import (
    DRAINING,
    LOOP,
    NO_CONTACT,
    NOT_A_FACILITY,
    Admission,
    Admitted,
    Turnaway,
    header_details,
)
from callcontrol.flow import CallDetails
from callcontrol.sip import Request, SipUri, parse_message

FACILITY = "tx-state-prison"
OFFER = (
    b"v=0\r\no=facility 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    b"m=audio 6070 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
VIDEO_ONLY = (
    b"v=0\r\no=facility 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    b"m=video 6072 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def invite(*, call_id: str = "c1@127.0.0.11", uri: str = "sip:+15125550100@127.0.0.1:5060",
           extra: tuple[str, ...] = ("X-Inmate-PIN: 100001",), contact: bool = True,
           body: bytes = OFFER) -> Request:
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.11:5070;branch=z9hG4bKadm1",
        "Max-Forwards: 70",
        "From: <sip:station-7@127.0.0.11>;tag=f1",
        "To: <sip:+15125550100@127.0.0.1>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        *(["Contact: <sip:trunk@127.0.0.11:5070>"] if contact else []),
        *extra,
        "Content-Type: application/sdp",
        f"Content-Length: {len(body)}",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(message, Request)
    return message


def admission(calls: tuple[str, ...] = ()) -> Admission:
    return Admission({FACILITY: 30.0, "al-county-jail": 30.0}, set(calls), "127.0.0.1")


def test_an_admitted_invite_carries_its_facility_offer_request_and_time() -> None:
    clock = Clock()
    verdict = admission().judge(invite(), FACILITY, clock.advance(0.25))
    assert isinstance(verdict, Admitted)
    assert verdict.facility_id == FACILITY
    assert verdict.at == 5000.25
    assert verdict.uri.user == "+15125550100"
    assert verdict.offer.media[0].port == 6070


def test_draining_answers_503_with_retry_after_before_anything_else() -> None:
    clock = Clock()
    gate = admission(calls=("c1@127.0.0.11",))
    gate.draining = True
    # Even an INVITE that every later check would turn away gets the 503.
    verdict = gate.judge(invite(contact=False, body=b"junk"), None, clock.now)
    assert verdict is DRAINING
    assert verdict == Turnaway(503, None, (
        ("Retry-After", "30"), ("Reason", 'Q.850;cause=41;text="service shutting down"')))
    gate.draining = False
    assert isinstance(gate.judge(invite(call_id="c2"), FACILITY, clock.advance(1)), Admitted)


@pytest.mark.parametrize("trunk", [None, "carrier", "unknown-jail"])
def test_a_trunk_that_is_not_a_facility_is_403(trunk: str | None) -> None:
    verdict = admission().judge(invite(), trunk, Clock().now)
    assert verdict is NOT_A_FACILITY
    assert verdict == Turnaway(403, None, (
        ("Reason", 'Q.850;cause=21;text="facility not allowed"'),))


def test_the_call_id_of_a_call_in_progress_is_a_loop_482() -> None:
    calls: set[str] = set()
    gate = Admission({FACILITY: 30.0}, calls, "127.0.0.1")
    clock = Clock()
    assert isinstance(gate.judge(invite(), FACILITY, clock.now), Admitted)
    calls.add("c1@127.0.0.11")  # the controller's own container, read live
    verdict = gate.judge(invite(), FACILITY, clock.advance(0.1))
    assert verdict is LOOP and verdict == Turnaway(482)


def test_no_contact_is_400_with_its_phrase() -> None:
    verdict = admission().judge(invite(contact=False), FACILITY, Clock().now)
    assert verdict is NO_CONTACT
    assert verdict == Turnaway(400, "Bad Request (no Contact)")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [(VIDEO_ONLY, "Not Acceptable Here (offer has no audio stream with PCMU or PCMA over "
                  "RTP/AVP)"),
     (b"v=0\r\nnonsense\r\n", "Not Acceptable Here (malformed SDP line 'nonsense')")],
)
def test_an_offer_we_could_not_answer_is_488_with_cause_65(body: bytes, phrase: str) -> None:
    verdict = admission().judge(invite(body=body), FACILITY, Clock().now)
    assert verdict == Turnaway(488, phrase, (
        ("Reason", 'Q.850;cause=65;text="no usable audio offer"'),))


def test_a_request_uri_that_does_not_parse_is_400_naming_the_fault() -> None:
    verdict = admission().judge(invite(uri="sip:+15125550100@127.0.0.1:99999"), FACILITY,
                                Clock().now)
    assert verdict == Turnaway(
        400, "Bad Request (invalid port in 'sip:+15125550100@127.0.0.1:99999')")


def test_checks_come_in_order_facility_loop_contact_offer() -> None:
    gate = admission(calls=("c1@127.0.0.11",))
    now = Clock().now
    broken = invite(contact=False, body=VIDEO_ONLY)
    assert gate.judge(broken, "carrier", now) is NOT_A_FACILITY
    assert gate.judge(broken, FACILITY, now) is LOOP
    assert gate.judge(invite(call_id="c2", contact=False, body=VIDEO_ONLY), FACILITY,
                      now) is NO_CONTACT


@pytest.mark.parametrize(
    ("extra", "expected"),
    [((), CallDetails("", "+15125550100", False)),
     (("X-Inmate-PIN: 200001",), CallDetails("200001", "+15125550100", False)),
     (("X-Inmate-PIN: 200001", "X-Payer: Debit "), CallDetails("200001", "+15125550100", True)),
     (("X-Payer: collect",), CallDetails("", "+15125550100", False))],
)
def test_header_details_read_pin_payer_and_the_dialled_user_part(
    extra: tuple[str, ...], expected: CallDetails
) -> None:
    request = invite(extra=extra)
    assert header_details(request, SipUri.parse(request.uri)) == expected


def test_a_missing_pin_or_odd_number_is_still_admitted_the_flow_refuses_it() -> None:
    # These leave a call record, so they are the flow's answers, not admission's.
    gate = admission()
    no_pin = invite(extra=())
    verdict = gate.judge(no_pin, FACILITY, 1.0)
    assert isinstance(verdict, Admitted)
    assert header_details(no_pin, verdict.uri).pin == ""
    odd = invite(call_id="c3", uri="sip:abc@127.0.0.1")
    verdict = gate.judge(odd, FACILITY, 2.0)
    assert isinstance(verdict, Admitted)
    assert header_details(odd, verdict.uri).dialled == "abc"
