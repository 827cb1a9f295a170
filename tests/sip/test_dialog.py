"""Dialogs: creation on both sides, route sets, CSeq, request building."""

from __future__ import annotations

import pytest

from callcontrol.sip import (
    Dialog,
    LocalProtocolError,
    PeerProtocolError,
    Request,
    make_response,
    parse_message,
)

from .conftest import invite_bytes


def uas_dialog(extra: list[str] | None = None) -> tuple[Request, Dialog]:
    request = parse_message(invite_bytes(cseq=5, extra=extra or []))
    assert isinstance(request, Request)
    response = make_response(request, 200, to_tag="local",
                             headers=[("Contact", "<sip:ics@127.0.0.1:5060>")])
    return request, Dialog.from_uas(request, response)


def test_uas_dialog_identity_and_targets() -> None:
    _request, dialog = uas_dialog(["Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>"])
    assert dialog.id == ("call-1@test", "local", "ft1")
    assert dialog.remote_target == "sip:100001@127.0.0.11:5070"
    assert dialog.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert dialog.state == "confirmed" and dialog.remote_cseq == 5
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:100001@127.0.0.11:5070"
    assert bye.headers.get_all("route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert bye.to_tag == "ft1" and bye.from_tag == "local"
    assert bye.cseq == (1, "BYE")
    assert dialog.next_hop() == ("p1.example", 5060, "udp")
    assert dialog.local_contact == "sip:ics@127.0.0.1:5060"


def test_uac_dialog_reverses_record_route_and_continues_cseq() -> None:
    request = parse_message(invite_bytes(cseq=3))
    assert isinstance(request, Request)
    response = make_response(request, 200, to_tag="remote", headers=[
        ("Contact", "<sip:gw@127.0.0.1:5090;transport=tcp>"),
        ("Record-Route", "<sip:p2;lr>"), ("Record-Route", "<sip:p1;lr>")])
    dialog = Dialog.from_uac(request, response)
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert dialog.create_request("INFO").cseq == (4, "INFO")
    ack = dialog.create_ack(3)
    assert ack.cseq == (3, "ACK") and ack.method == "ACK"
    dialog.route_set = []
    assert dialog.next_hop() == ("127.0.0.1", 5090, "tcp")


def test_strict_route_puts_first_route_in_request_uri() -> None:
    _, dialog = uas_dialog(["Record-Route: <sip:strict.example>, <sip:p2;lr>"])
    request = dialog.create_request("BYE")
    assert request.uri == "sip:strict.example"
    assert request.headers.get_all("route") == ["<sip:p2;lr>", "<sip:100001@127.0.0.11:5070>"]


def test_out_of_order_cseq_raises_500_and_target_refresh() -> None:
    _, dialog = uas_dialog()
    reinvite = parse_message(invite_bytes(cseq=6, to_tag="local").replace(
        b"<sip:100001@127.0.0.11:5070>", b"<sip:100001@127.0.0.99:5070>"))
    assert isinstance(reinvite, Request)
    dialog.receive_request(reinvite)
    assert dialog.remote_target == "sip:100001@127.0.0.99:5070"
    old = parse_message(invite_bytes(method="INFO", cseq=4, to_tag="local"))
    assert isinstance(old, Request)
    with pytest.raises(PeerProtocolError) as caught:
        dialog.receive_request(old)
    assert caught.value.status == 500


def test_early_dialog_and_builder_guards() -> None:
    request = parse_message(invite_bytes())
    assert isinstance(request, Request)
    ringing = make_response(request, 180, to_tag="e", headers=[("Contact", "<sip:u@h>")])
    dialog = Dialog.from_uas(request, ringing)
    assert dialog.state == "early"
    dialog.update_from_response(make_response(request, 200, to_tag="e"))
    assert dialog.state == "confirmed"
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")
    bye = parse_message(invite_bytes(method="BYE", cseq=2, to_tag="e"))
    assert isinstance(bye, Request)
    dialog.receive_request(bye)
    assert dialog.state == "terminated"
    with pytest.raises(LocalProtocolError):
        dialog.create_request("INFO")


def test_dialog_needs_contact_and_tags() -> None:
    request = parse_message(invite_bytes().replace(b"Contact: <sip:100001@127.0.0.11:5070>\r\n",
                                                   b""))
    assert isinstance(request, Request)
    with pytest.raises(PeerProtocolError):
        Dialog.from_uas(request, make_response(request, 200, to_tag="x"))
    request2 = parse_message(invite_bytes())
    assert isinstance(request2, Request)
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(request2, make_response(request2, 200))


def test_initial_request_has_fresh_identity() -> None:
    from callcontrol.sip import initial_request

    a = initial_request("INVITE", "sip:+15125550100@127.0.0.1:5090", from_uri="sip:ics@127.0.0.1",
                        contact="sip:ics@127.0.0.1:5060", body=b"v=0\r\n",
                        content_type="application/sdp", headers=[("X-Inmate-PIN", "100001")])
    b = initial_request("INVITE", "sip:+15125550100@127.0.0.1:5090", from_uri="sip:ics@127.0.0.1")
    assert a.call_id != b.call_id and a.from_tag != b.from_tag and a.to_tag is None
    assert a.cseq == (1, "INVITE") and a.headers.get("content-type") == "application/sdp"
    assert a.headers.get("x-inmate-pin") == "100001"
    assert "content-type" not in b.headers and "contact" not in b.headers
    wire = parse_message(a.serialize().replace(
        b"\r\nFrom", b"\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom"))
    assert isinstance(wire, Request) and wire.body == b"v=0\r\n"
