"""RFC 3261 transactions driven by a fake clock: every timer, retransmissions, CANCEL races."""

from __future__ import annotations

import itertools

import pytest

from callcontrol.sip import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    Dialog,
    Endpoint,
    Headers,
    LocalProtocolError,
    Request,
    RequestReceived,
    ResponseReceived,
    TransactionStateError,
    TransactionTimedOut,
    TransportError,
    make_response,
    new_tag,
    parse_message,
)

from .conftest import UAC_ADDR, UAS_ADDR, Network, drain, first_lines, invite_bytes, sent


def statuses(endpoint: Endpoint) -> list[str]:
    return first_lines(sent(endpoint))


def receive_invite(uas: Endpoint, now: float = 0.0, **kw: object) -> RequestReceived:
    uas.receive_datagram(invite_bytes(**kw), UAC_ADDR, now)  # type: ignore[arg-type]
    events = drain(uas)
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    return events[0]


def new_invite(to: str = "sip:+15125550100@127.0.0.1:5060") -> Request:
    h = Headers()
    h.set("from", f"<sip:ics@127.0.0.11>;tag={new_tag()}")
    h.set("to", f"<{to}>")
    h.set("call-id", new_tag())
    h.set("cseq", "1 INVITE")
    h.set("contact", "<sip:ics@127.0.0.11:5070>")
    return Request("INVITE", to, h)


def fire_until(endpoint: Endpoint, end: float) -> list[float]:
    """Run timers up to ``end``; returns the times at which something was sent."""
    times = []
    while (when := endpoint.get_timer()) is not None and when <= end:
        endpoint.handle_timer(when)
        if sent(endpoint):
            times.append(round(when, 3))
    return times


# ----------------------------------------------------------------- INVITE server
def test_invite_server_sends_trying_and_absorbs_retransmissions(uas: Endpoint) -> None:
    event = receive_invite(uas)
    assert statuses(uas) == []  # the TU has 200 ms to answer before 100 Trying goes out
    assert event.source == UAC_ADDR and event.transport == "udp"
    via = event.request.top_via
    assert via.host == "127.0.0.11" and "received" not in via.params
    assert via.params["rport"] == "5070"
    assert uas.get_timer() == pytest.approx(0.2)
    uas.handle_timer(0.2)
    assert statuses(uas) == ["SIP/2.0 100 Trying"]
    uas.receive_datagram(invite_bytes(), UAC_ADDR, 0.5)
    assert drain(uas) == []
    assert statuses(uas) == ["SIP/2.0 100 Trying"]


def test_trying_at_once_when_asked() -> None:
    uas = Endpoint(trying_delay=0.0)
    uas.set_local_address("udp", *UAS_ADDR)
    receive_invite(uas)
    assert statuses(uas) == ["SIP/2.0 100 Trying"]
    uas.handle_timer(0.2)
    assert statuses(uas) == []


def test_no_trying_when_the_tu_answers_quickly(uas: Endpoint) -> None:
    event = receive_invite(uas)
    uas.respond(event.request, 180, 0.1, to_tag="t")
    uas.handle_timer(0.2)
    assert statuses(uas) == ["SIP/2.0 180 Ringing"]


def test_received_is_added_when_source_differs(uas: Endpoint) -> None:
    uas.receive_datagram(invite_bytes(via_host="10.9.9.9:5070"), ("127.0.0.11", 6000), 0.0)
    event = drain(uas)[0]
    assert isinstance(event, RequestReceived)
    via = event.request.top_via
    assert via.params == {"branch": "z9hG4bKinv1", "rport": "6000", "received": "127.0.0.11"}
    uas.handle_timer(0.2)
    assert sent(uas)[0].address == ("127.0.0.11", 6000)


def test_timer_g_retransmits_error_until_timer_h(uas: Endpoint) -> None:
    event = receive_invite(uas)
    sent(uas)
    uas.respond(event.request, 486, 0.0, to_tag="t")
    assert statuses(uas) == ["SIP/2.0 486 Busy Here"]
    # G doubles from T1 up to T2 (0.5, 1, 2, 4, 4...), H ends it at 64*T1.
    times = fire_until(uas, 40.0)
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(b - a == pytest.approx(4.0) for a, b in itertools.pairwise(times[3:]))
    assert times[-1] < 32.0
    assert uas.transaction_count == 0
    assert drain(uas) == []


def test_ack_stops_g_and_timer_i_ends_transaction(uas: Endpoint) -> None:
    event = receive_invite(uas)
    uas.respond(event.request, 603, 0.0, to_tag="t")
    sent(uas)
    ack = invite_bytes(method="ACK", to_tag="t")
    uas.receive_datagram(ack, UAC_ADDR, 0.3)
    assert drain(uas) == [] and sent(uas) == []
    uas.receive_datagram(invite_bytes(), UAC_ADDR, 0.4)  # late INVITE retransmission
    assert sent(uas) == []  # confirmed: absorbed silently
    assert uas.get_timer() == pytest.approx(5.3)  # timer I = T4
    assert fire_until(uas, 10.0) == []
    assert uas.transaction_count == 0


def test_2xx_is_retransmitted_until_ack(uas: Endpoint) -> None:
    event = receive_invite(uas)
    sent(uas)
    ok = make_response(event.request, 200, to_tag="t", headers=[("Contact", "<sip:u@h>")])
    dialog = Dialog.from_uas(event.request, ok)
    uas.add_dialog(dialog)
    uas.send_response(ok, 0.0)
    assert statuses(uas) == ["SIP/2.0 200 OK"]
    assert fire_until(uas, 1.6) == [0.5, 1.5]
    uas.receive_datagram(invite_bytes(), UAC_ADDR, 1.7)  # INVITE retransmission: absorbed
    assert sent(uas) == [] and drain(uas) == []
    uas.receive_datagram(invite_bytes(method="ACK", to_tag="t", branch="z9hG4bKack"),
                         UAC_ADDR, 1.8)
    events = drain(uas)
    assert len(events) == 1 and isinstance(events[0], AckReceived)
    assert events[0].dialog is dialog
    assert fire_until(uas, 40.0) == []  # no more 2xx; timer L cleans up
    assert uas.transaction_count == 0
    uas.receive_datagram(invite_bytes(method="ACK", to_tag="t", branch="z9hG4bKack"),
                         UAC_ADDR, 41.0)
    assert drain(uas) == []  # duplicate ACK: nothing


def test_missing_ack_raises_ack_timed_out(uas: Endpoint) -> None:
    event = receive_invite(uas)
    uas.respond(event.request, 200, 0.0, to_tag="t")
    sent(uas)
    times = fire_until(uas, 40.0)
    assert times[:4] == [0.5, 1.5, 3.5, 7.5]
    events = drain(uas)
    assert len(events) == 1 and isinstance(events[0], AckTimedOut)
    assert events[0].response.status == 200


def test_response_after_final_is_refused(uas: Endpoint) -> None:
    event = receive_invite(uas)
    uas.respond(event.request, 486, 0.0, to_tag="t")
    with pytest.raises(TransactionStateError):
        uas.respond(event.request, 200, 0.1, to_tag="t")


# ------------------------------------------------------------- non-INVITE server
def test_non_invite_server_timer_j(uas: Endpoint) -> None:
    uas.receive_datagram(invite_bytes(method="OPTIONS"), UAC_ADDR, 0.0)
    event = drain(uas)[0]
    assert isinstance(event, RequestReceived)
    uas.respond(event.request, 200, 0.0)
    assert statuses(uas) == ["SIP/2.0 200 OK"]
    uas.receive_datagram(invite_bytes(method="OPTIONS"), UAC_ADDR, 5.0)
    assert statuses(uas) == ["SIP/2.0 200 OK"] and drain(uas) == []
    assert uas.get_timer() == pytest.approx(32.0)
    uas.handle_timer(32.0)
    assert uas.transaction_count == 0


def test_reliable_transport_has_no_retransmissions_and_zero_j(uas: Endpoint) -> None:
    data = invite_bytes(method="OPTIONS", transport="TCP")
    assert uas.receive_stream_data(1, data, UAC_ADDR, 0.0)
    event = drain(uas)[0]
    assert isinstance(event, RequestReceived) and event.connection == 1
    uas.respond(event.request, 200, 0.0)
    assert sent(uas)[0].connection == 1
    assert uas.get_timer() == 0.0
    uas.handle_timer(0.0)
    assert uas.transaction_count == 0
    # An INVITE over TCP answered with an error: no timer G, H still bounds the wait.
    uas.receive_stream_data(1, invite_bytes(transport="TCP"), UAC_ADDR, 1.0)
    invite = drain(uas)[0]
    assert isinstance(invite, RequestReceived)
    uas.respond(invite.request, 480, 1.0, to_tag="x")
    sent(uas)
    assert fire_until(uas, 40.0) == []
    assert uas.transaction_count == 0


# ------------------------------------------------------------------- clients
def test_invite_client_timer_a_and_b(uac: Endpoint) -> None:
    tx = uac.send_request(new_invite(), UAS_ADDR, 0.0)
    first = sent(uac)[0]
    assert first.address == UAS_ADDR
    message = parse_message(first.data)
    assert message.top_via.branch == tx and "rport" in message.top_via.params
    times = fire_until(uac, 40.0)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    events = drain(uac)
    assert len(events) == 1 and isinstance(events[0], TransactionTimedOut)
    assert events[0].transaction_id == tx


def test_non_invite_client_timers_e_f_k(uac: Endpoint) -> None:
    request = new_invite()
    request.method = "OPTIONS"
    request.headers.set("cseq", "1 OPTIONS")
    uac.send_request(request, UAS_ADDR, 0.0)
    sent(uac)
    assert fire_until(uac, 8.0) == [0.5, 1.5, 3.5, 7.5]
    events = drain(uac)
    assert events == []
    times = fire_until(uac, 40.0)
    assert times[0] == 11.5 and times[-1] < 32.0
    timed_out = drain(uac)
    assert len(timed_out) == 1 and isinstance(timed_out[0], TransactionTimedOut)

    # Final response: Completed, retransmissions absorbed, timer K = T4.
    request2 = new_invite()
    request2.method = "BYE"
    request2.headers.set("cseq", "2 BYE")
    uac.send_request(request2, UAS_ADDR, 100.0)
    wire = parse_message(sent(uac)[0].data)
    assert isinstance(wire, Request)
    provisional = make_response(wire, 100).serialize()
    uac.receive_datagram(provisional, UAS_ADDR, 100.1)
    assert isinstance(drain(uac)[0], ResponseReceived)
    assert fire_until(uac, 104.2) == [104.1]  # proceeding: E at T2
    final = make_response(wire, 200).serialize()
    uac.receive_datagram(final, UAS_ADDR, 104.3)
    uac.receive_datagram(final, UAS_ADDR, 104.4)
    events = drain(uac)
    assert len(events) == 1 and isinstance(events[0], ResponseReceived)
    assert uac.get_timer() == pytest.approx(109.3)
    uac.handle_timer(109.3)
    assert uac.transaction_count == 0


def test_invite_client_non_2xx_ack_and_timer_d(uac: Endpoint) -> None:
    tx = uac.send_request(new_invite(), UAS_ADDR, 0.0)
    wire = parse_message(sent(uac)[0].data)
    assert isinstance(wire, Request)
    uac.receive_datagram(make_response(wire, 180, to_tag="r").serialize(), UAS_ADDR, 0.1)
    assert fire_until(uac, 10.0) == []  # a provisional stops timer A (and B)
    busy = make_response(wire, 486, to_tag="r").serialize()
    uac.receive_datagram(busy, UAS_ADDR, 10.0)
    ack = parse_message(sent(uac)[0].data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.top_via.branch == tx and ack.cseq == (1, "ACK") and ack.to_tag == "r"
    assert ack.uri == wire.uri
    uac.receive_datagram(busy, UAS_ADDR, 10.5)
    assert first_lines(sent(uac))[0].startswith("ACK ")
    statuses_seen = [e.response.status for e in drain(uac) if isinstance(e, ResponseReceived)]
    assert statuses_seen == [180, 486]
    assert uac.get_timer() == pytest.approx(42.0)  # timer D = 32 s on UDP
    uac.handle_timer(42.0)
    assert uac.transaction_count == 0


def test_forked_2xx_each_reported_once_and_ack_repeated(uac: Endpoint) -> None:
    uac.send_request(new_invite(), UAS_ADDR, 0.0)
    wire = parse_message(sent(uac)[0].data)
    assert isinstance(wire, Request)
    ok_a = make_response(wire, 200, to_tag="a", headers=[("Contact", "<sip:a@127.0.0.1>")])
    ok_b = make_response(wire, 200, to_tag="b", headers=[("Contact", "<sip:b@127.0.0.1>")])
    uac.receive_datagram(ok_a.serialize(), UAS_ADDR, 0.1)
    (event,) = drain(uac)
    assert isinstance(event, ResponseReceived)
    dialog = Dialog.from_uac(event.request, event.response)
    uac.send_ack(dialog.create_ack(1), UAS_ADDR, 0.1)
    ack_bytes = sent(uac)[0].data
    uac.receive_datagram(ok_a.serialize(), UAS_ADDR, 0.6)  # retransmitted 2xx
    assert drain(uac) == []
    assert [t.data for t in sent(uac)] == [ack_bytes]
    uac.receive_datagram(ok_b.serialize(), UAS_ADDR, 0.7)  # a second fork answers
    (forked,) = drain(uac)
    assert isinstance(forked, ResponseReceived) and forked.response.to_tag == "b"
    uac.receive_datagram(ok_b.serialize(), UAS_ADDR, 0.8)
    assert drain(uac) == []
    assert uac.get_timer() == pytest.approx(32.1)  # timer M
    uac.handle_timer(32.1)
    assert uac.transaction_count == 0


def test_ack_and_cancel_have_their_own_calls(uac: Endpoint) -> None:
    request = new_invite()
    request.method = "ACK"
    with pytest.raises(LocalProtocolError):
        uac.send_request(request, UAS_ADDR, 0.0)


def test_transport_error_fails_pending_request(uac: Endpoint) -> None:
    tx = uac.send_request(new_invite(), UAS_ADDR, 0.0, transport="tcp")
    sent(uac)
    uac.transport_error(UAS_ADDR, "tcp", None, "connection refused", 0.1)
    (event,) = drain(uac)
    assert isinstance(event, TransportError) and event.transaction_id == tx
    assert uac.transaction_count == 0


# ------------------------------------------------------------------ CANCEL races
def call_setup(uac: Endpoint, uas: Endpoint) -> tuple[Network, str, RequestReceived]:
    net = Network(uac, UAC_ADDR, uas, UAS_ADDR)
    tx = uac.send_request(new_invite(), UAS_ADDR, 0.0)
    net.transfer(0.0)
    (incoming,) = drain(uas)
    assert isinstance(incoming, RequestReceived)
    return net, tx, incoming


def test_cancel_before_final_response(uac: Endpoint, uas: Endpoint) -> None:
    net, tx, incoming = call_setup(uac, uas)
    uas.respond(incoming.request, 180, 0.1, to_tag="s")
    net.transfer(0.1)
    assert [e.response.status for e in drain(uac)] == [180]  # type: ignore[attr-defined]
    assert uac.cancel(tx, 0.2)
    net.transfer(0.2)
    (cancelled,) = drain(uas)
    assert isinstance(cancelled, CancelReceived)
    assert cancelled.invite_transaction_id == incoming.transaction_id
    got = [e for e in drain(uac) if isinstance(e, ResponseReceived)]
    assert sorted((e.request.method, e.response.status) for e in got) == [
        ("CANCEL", 200), ("INVITE", 487)]
    assert {e.response.to_tag for e in got} == {"s"}  # the tag of the 180
    assert ("127.0.0.11", 5070) in [a for a, line in net.log if line.startswith("ACK ")]
    with pytest.raises(TransactionStateError):
        uas.respond(incoming.request, 200, 0.3, to_tag="s")
    assert not uac.cancel(tx, 0.4)  # too late now


def test_cancel_after_final_response_has_no_effect(uac: Endpoint, uas: Endpoint) -> None:
    net, tx, incoming = call_setup(uac, uas)
    uas.respond(incoming.request, 180, 0.05, to_tag="s")
    net.transfer(0.05)
    uas.respond(incoming.request, 200, 0.1, to_tag="s",
                headers=[("Contact", "<sip:uas@127.0.0.1:5060>")])
    # The CANCEL crosses the 200 on the wire: the UAS sees it after answering.
    net.drop_next.add("SIP/2.0 200 OK")
    net.transfer(0.1)
    assert uac.cancel(tx, 0.2)
    net.transfer(0.2)
    assert drain(uas) == []  # no CancelReceived: the call stands
    statuses_seen = [(e.request.method, e.response.status) for e in drain(uac)]  # type: ignore
    assert ("CANCEL", 200) in statuses_seen
    assert ("INVITE", 487) not in statuses_seen
    uas.handle_timer(0.6)  # 2xx retransmission reaches the UAC
    net.transfer(0.6)
    assert ("INVITE", 200) in [(e.request.method, e.response.status)  # type: ignore
                               for e in drain(uac)]


def test_cancel_before_any_provisional_waits_for_one(uac: Endpoint, uas: Endpoint) -> None:
    uas.auto_trying = False
    net, tx, incoming = call_setup(uac, uas)
    assert uac.cancel(tx, 0.1)
    net.transfer(0.1)
    assert [line for _, line in net.log if line.startswith("CANCEL")] == []
    uas.respond(incoming.request, 183, 0.2, to_tag="s")
    net.transfer(0.2)
    assert any(line.startswith("CANCEL") for _, line in net.log)
    assert any(isinstance(e, CancelReceived) for e in drain(uas))


def test_cancel_matching_nothing_gets_481(uas: Endpoint) -> None:
    uas.receive_datagram(invite_bytes(method="CANCEL", branch="z9hG4bKnothing"), UAC_ADDR, 0.0)
    assert statuses(uas) == ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    assert drain(uas) == []


# ------------------------------------------------------------------ dialogs
def test_in_dialog_request_without_dialog_gets_481(uas: Endpoint) -> None:
    uas.receive_datagram(invite_bytes(method="BYE", to_tag="unknown"), UAC_ADDR, 0.0)
    assert statuses(uas) == ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    assert drain(uas) == []


def test_out_of_order_cseq_gets_500(uas: Endpoint) -> None:
    event = receive_invite(uas, cseq=10)
    ok = make_response(event.request, 200, to_tag="t", headers=[("Contact", "<sip:u@h>")])
    uas.add_dialog(Dialog.from_uas(event.request, ok))
    uas.send_response(ok, 0.0)
    sent(uas)
    uas.receive_datagram(invite_bytes(method="INFO", to_tag="t", cseq=12, branch="z9hG4bKi2"),
                         UAC_ADDR, 1.0)
    (info,) = drain(uas)
    assert isinstance(info, RequestReceived) and info.dialog is not None
    uas.receive_datagram(invite_bytes(method="INFO", to_tag="t", cseq=11, branch="z9hG4bKi1"),
                         UAC_ADDR, 1.1)
    assert drain(uas) == []
    assert first_lines(sent(uas))[-1].startswith("SIP/2.0 500 ")


def test_unknown_method_gets_405_and_max_forwards_zero_483(uas: Endpoint) -> None:
    uas.receive_datagram(invite_bytes(method="SUBSCRIBE"), UAC_ADDR, 0.0)
    reply = sent(uas)[0].data
    assert reply.startswith(b"SIP/2.0 405 ") and b"Allow: INVITE, ACK" in reply
    uas.receive_datagram(invite_bytes(branch="z9hG4bKmf").replace(b"Max-Forwards: 70",
                                                                   b"Max-Forwards: 0"),
                         UAC_ADDR, 0.0)
    assert statuses(uas) == ["SIP/2.0 483 Too Many Hops"]
    assert drain(uas) == []


def test_whole_call_between_two_endpoints(uac: Endpoint, uas: Endpoint) -> None:
    net, _tx, incoming = call_setup(uac, uas)
    ok = make_response(incoming.request, 200, to_tag=new_tag(),
                       headers=[("Contact", "<sip:uas@127.0.0.1:5060>")])
    uas_dialog = Dialog.from_uas(incoming.request, ok, local_contact="sip:uas@127.0.0.1:5060")
    uas.add_dialog(uas_dialog)
    uas.send_response(ok, 0.1)
    net.transfer(0.1)
    answered = [e for e in drain(uac) if isinstance(e, ResponseReceived)
                and e.response.status == 200]
    assert len(answered) == 1
    uac_dialog = Dialog.from_uac(answered[0].request, answered[0].response)
    uac.add_dialog(uac_dialog)
    uac.send_ack(uac_dialog.create_ack(1), uac_dialog.next_hop()[:2], 0.2)
    net.transfer(0.2)
    assert [type(e) for e in drain(uas)] == [AckReceived]
    # INFO from the UAS side, answered by the UAC side within the dialog.
    info = uas_dialog.create_request("INFO", body=b"Signal=5\r\nDuration=160\r\n",
                                     content_type="application/dtmf-relay")
    uas.send_request(info, uas_dialog.next_hop()[:2], 0.3)
    net.transfer(0.3)
    (got_info,) = drain(uac)
    assert isinstance(got_info, RequestReceived) and got_info.dialog is uac_dialog
    assert got_info.request.body.startswith(b"Signal=5")
    uac.respond(got_info.request, 200, 0.3)
    net.transfer(0.3)
    assert [e.response.status for e in drain(uas)] == [200]  # type: ignore[attr-defined]
    # BYE from the UAC ends it; CSeq of the UAC side keeps counting from the INVITE.
    bye = uac_dialog.create_request("BYE")
    assert bye.cseq == (2, "BYE")
    uac.send_request(bye, UAS_ADDR, 0.4)
    net.transfer(0.4)
    (got_bye,) = drain(uas)
    assert isinstance(got_bye, RequestReceived) and got_bye.dialog is uas_dialog
    assert uas_dialog.state == "terminated"
    uas.respond(got_bye.request, 200, 0.4)
    uas.remove_dialog(uas_dialog)
    net.transfer(0.4)
    assert [e.response.status for e in drain(uac)] == [200]  # type: ignore[attr-defined]
    assert uas.dialog_count == 0
