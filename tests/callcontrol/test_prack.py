"""Reliable provisional responses (RFC 3262) with a fake clock: RSeq, retransmission, PRACK."""

from __future__ import annotations

import pytest

from callcontrol.sip import (
    Dialog,
    Endpoint,
    Headers,
    PeerProtocolError,
    ProvisionalUnacknowledged,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    make_response,
    new_tag,
    parse_message,
)
from callcontrol.sip.reliable import RAck, offers_100rel, rseq_of

UAS = ("127.0.0.1", 5060)
UAC = ("127.0.0.11", 5070)


def endpoint(address: tuple[str, int]) -> Endpoint:
    ep = Endpoint(trying_delay=0.0)
    ep.set_local_address("udp", *address)
    return ep


def events(ep: Endpoint) -> list[object]:
    out = []
    while (event := ep.next_event()) is not None:
        out.append(event)
    return out


def carry(src: Endpoint, src_addr: tuple[str, int], dst: Endpoint, now: float) -> list[bytes]:
    """Deliver what ``src`` has to send to ``dst``; returns the datagrams."""
    sent = [t.data for t in src.datagrams_to_send()]
    for data in sent:
        dst.receive_datagram(data, src_addr, now)
    return sent


def first_lines(datagrams: list[bytes]) -> list[str]:
    return [d.split(b"\r\n", 1)[0].decode() for d in datagrams]


def invite(supported: str | None = "100rel") -> Request:
    h = Headers()
    h.set("from", f"<sip:trunk@127.0.0.11>;tag={new_tag()}")
    h.set("to", "<sip:+15125550100@127.0.0.1>")
    h.set("call-id", new_tag())
    h.set("cseq", "1 INVITE")
    h.set("contact", "<sip:trunk@127.0.0.11:5070>")
    if supported is not None:
        h.set("supported", supported)
    return Request("INVITE", "sip:+15125550100@127.0.0.1:5060", h)


def setup() -> tuple[Endpoint, Endpoint, Request, str]:
    """The facility (UAC) INVITEs the controller (UAS); the controller has it, with 100."""
    uac, uas = endpoint(UAC), endpoint(UAS)
    uac.send_request(invite(), UAS, 0.0)
    carry(uac, UAC, uas, 0.0)
    (received,) = events(uas)
    assert isinstance(received, RequestReceived)
    carry(uas, UAS, uac, 0.0)  # 100 Trying
    events(uac)
    return uac, uas, received.request, new_tag()


def prack_for(uac: Endpoint, response: Response, invite_request: Request, now: float,
              rack: RAck | None = None) -> None:
    early = Dialog.from_uac(invite_request, response)
    rseq = rseq_of(response)
    assert rseq is not None
    prack = early.create_request("PRACK", headers=[
        ("RAck", (rack or RAck(rseq, invite_request.cseq[0], "INVITE")).serialize())])
    uac.send_request(prack, early.next_hop()[:2], now)


def ringing(uac: Endpoint) -> tuple[Response, Request]:
    got = [e for e in events(uac) if isinstance(e, ResponseReceived)]
    assert [e.response.status for e in got] == [180]
    return got[0].response, got[0].request


def test_a_reliable_180_is_retransmitted_until_its_prack() -> None:
    uac, uas, request, tag = setup()
    assert offers_100rel(request)
    sent = uas.respond_reliably(request, 180, 0.1, to_tag=tag,
                                headers=[("Contact", "<sip:ics@127.0.0.1:5060>")])
    assert sent.headers.get("require") == "100rel"
    rseq = int(sent.headers.get("rseq") or "")
    assert 1 <= rseq < 2**31
    carry(uas, UAS, uac, 0.1)
    response, invite_request = ringing(uac)
    # Unacknowledged: again at T1, 2*T1, 4*T1 after it (0.6, 1.6, 3.6).
    times = []
    while (when := uas.get_timer()) is not None and when < 3.7:
        uas.handle_timer(when)
        if first_lines([t.data for t in uas.datagrams_to_send()]) == ["SIP/2.0 180 Ringing"]:
            times.append(round(when, 2))
    assert times == [0.6, 1.6, 3.6]
    prack_for(uac, response, invite_request, 3.7)
    carry(uac, UAC, uas, 3.7)
    assert first_lines(carry(uas, UAS, uac, 3.7)) == ["SIP/2.0 200 OK"]
    assert events(uas) == []  # the endpoint answers PRACK itself
    assert [e.response.status for e in events(uac)] == [200]  # type: ignore[attr-defined]
    for t in (4.0, 8.0, 20.0, 40.0):
        uas.handle_timer(t)
        assert first_lines([d.data for d in uas.datagrams_to_send()]) == []


def test_a_prack_naming_another_provisional_is_481_and_the_180_goes_on() -> None:
    uac, uas, request, tag = setup()
    sent = uas.respond_reliably(request, 180, 0.1, to_tag=tag,
                                headers=[("Contact", "<sip:ics@127.0.0.1:5060>")])
    carry(uas, UAS, uac, 0.1)
    response, invite_request = ringing(uac)
    rseq = int(sent.headers.get("rseq") or "")
    prack_for(uac, response, invite_request, 0.2, rack=RAck(rseq + 1, 1, "INVITE"))
    carry(uac, UAC, uas, 0.2)
    assert first_lines(carry(uas, UAS, uac, 0.2)) == [
        "SIP/2.0 481 Call/Transaction Does Not Exist"]
    uas.handle_timer(0.6)
    assert first_lines([d.data for d in uas.datagrams_to_send()]) == ["SIP/2.0 180 Ringing"]


def test_the_final_response_stops_the_retransmissions() -> None:
    _, uas, request, tag = setup()
    uas.respond_reliably(request, 180, 0.1, to_tag=tag)
    uas.datagrams_to_send()
    uas.respond(request, 486, 0.3, to_tag=tag)
    uas.datagrams_to_send()
    uas.handle_timer(0.6)
    assert "SIP/2.0 180 Ringing" not in first_lines([d.data for d in uas.datagrams_to_send()])


def test_one_unacknowledged_reliable_provisional_at_a_time() -> None:
    _, uas, request, tag = setup()
    first = uas.respond_reliably(request, 180, 0.1, to_tag=tag)
    second = uas.respond_reliably(request, 183, 0.2, to_tag=tag)
    assert first.headers.get("rseq") is not None
    assert second.headers.get("rseq") is None and second.headers.get("require") is None


def test_an_unanswered_reliable_provisional_is_given_up_after_64_t1() -> None:
    _, uas, request, tag = setup()
    uas.respond_reliably(request, 180, 0.0, to_tag=tag)
    uas.datagrams_to_send()
    events(uas)
    while (when := uas.get_timer()) is not None and when < 31.9:
        uas.handle_timer(when)
    assert events(uas) == []  # still waiting for its PRACK
    while (when := uas.get_timer()) is not None and when <= 33.0:
        uas.handle_timer(when)
    # Given up at 64*T1: the TU is told, to reject the INVITE with a 5xx (RFC 3262 3).
    assert events(uas) == [ProvisionalUnacknowledged(request.call_id, tag)]
    uas.datagrams_to_send()
    uas.handle_timer(100.0)
    assert "SIP/2.0 180 Ringing" not in first_lines([d.data for d in uas.datagrams_to_send()])


def test_prack_with_a_bad_rack_is_400() -> None:
    uac, uas, request, tag = setup()
    uas.respond_reliably(request, 180, 0.1, to_tag=tag,
                         headers=[("Contact", "<sip:ics@127.0.0.1:5060>")])
    carry(uas, UAS, uac, 0.1)
    response, invite_request = ringing(uac)
    early = Dialog.from_uac(invite_request, response)
    uac.send_request(early.create_request("PRACK", headers=[("RAck", "one 1 INVITE")]),
                     UAS, 0.2)
    carry(uac, UAC, uas, 0.2)
    assert first_lines(carry(uas, UAS, uac, 0.2))[0].startswith("SIP/2.0 400 ")


def test_rseq_of_a_carriers_provisional() -> None:
    request = invite()
    request.headers.add("via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKc1", first=True)
    request = parse_message(request.serialize())
    assert isinstance(request, Request)
    plain = make_response(request, 180, to_tag="c")
    assert rseq_of(plain) is None
    reliable = make_response(request, 183, to_tag="c",
                             headers=[("Require", "100rel"), ("RSeq", "7")])
    assert rseq_of(reliable) == 7
    trying = make_response(request, 100, headers=[("Require", "100rel"), ("RSeq", "7")])
    assert rseq_of(trying) is None  # 100 is never reliable
    broken = make_response(request, 180, to_tag="c", headers=[("Require", "100rel")])
    with pytest.raises(PeerProtocolError):
        rseq_of(broken)
    assert not offers_100rel(invite(supported=None))
    assert offers_100rel(invite(supported="timer, 100rel"))
    assert RAck.parse("7 1 invite") == RAck(7, 1, "INVITE")
    assert RAck(7, 1, "INVITE").serialize() == "7 1 INVITE"
