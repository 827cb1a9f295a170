"""Message model: parse/serialize round trips, header forms, helpers."""

from __future__ import annotations

import pytest

from callcontrol.sip import (
    Headers,
    NameAddress,
    ParseError,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    parse_message,
    tag_of,
    with_tag,
)

from .conftest import invite_bytes

CANONICAL = (
    b"INVITE sip:+15125550100@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.11:5070;branch=z9hG4bK1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:100001@127.0.0.11>;tag=abc\r\n"
    b"To: <sip:+15125550100@127.0.0.1>\r\n"
    b"Call-ID: c1@h\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"X-Inmate-PIN: 100001\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


def test_round_trip_is_byte_exact() -> None:
    message = parse_message(CANONICAL)
    assert isinstance(message, Request)
    assert message.serialize() == CANONICAL
    assert message.headers.get("x-inmate-pin") == "100001"
    assert message.cseq == (7, "INVITE")
    assert message.from_tag == "abc" and message.to_tag is None
    assert message.body == b"v=0\n"


def test_response_round_trip() -> None:
    data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP [::1]:5060;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(data)
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.top_via.host == "::1" and message.top_via.transport == "TCP"
    assert message.serialize() == data


def test_compact_forms_map_to_full_names() -> None:
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h:1;branch=z9hG4bKc\r\n"
            b"f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: cid\r\nCSeq: 1 OPTIONS\r\n"
            b"m: <sip:x@h:1>\r\nl: 0\r\n\r\n")
    message = parse_message(data)
    assert message.call_id == "cid"
    assert message.headers.get("Contact") == "<sip:x@h:1>"
    assert message.headers.get("m") == "<sip:x@h:1>"
    assert message.top_via.branch == "z9hG4bKc"
    assert b"\r\nCall-ID: cid\r\n" in message.serialize()


def test_folded_lines_are_joined() -> None:
    data = invite_bytes(extra=["Subject: a long\r\n  folded\r\n\tsubject"])
    message = parse_message(data)
    assert message.headers.get("subject") == "a long folded subject"


def test_multiple_values_per_header() -> None:
    data = invite_bytes(extra=[
        "Record-Route: <sip:p1;lr>, <sip:p2;lr>", "Record-Route: <sip:p3;lr>",
        'Contact: "A, B" <sip:x@y>',
    ])
    message = parse_message(data)
    assert message.headers.get_list("record-route") == [
        "<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert message.headers.get_list("contact")[1] == '"A, B" <sip:x@y>'


def test_multiple_vias_in_one_line() -> None:
    data = invite_bytes().replace(
        b"rport\r\n", b"rport, SIP/2.0/UDP proxy:5060;branch=z9hG4bKp\r\n", 1)
    message = parse_message(data)
    assert [v.host for v in message.vias] == ["127.0.0.11", "proxy"]


def test_udp_body_longer_than_content_length_is_cut() -> None:
    data = invite_bytes(body=b"abcd").replace(b"Content-Length: 4", b"Content-Length: 2")
    assert parse_message(data).body == b"ab"


def test_make_response_copies_and_tags() -> None:
    request = parse_message(invite_bytes(extra=["Record-Route: <sip:p;lr>"]))
    assert isinstance(request, Request)
    response = make_response(request, 200, to_tag="t9", headers=[("Contact", "<sip:u@h>")])
    assert response.to_tag == "t9"
    for name in ("via", "from", "call-id", "cseq", "record-route"):
        assert response.headers.get_all(name) == request.headers.get_all(name)
    trying = make_response(request, 100, to_tag="t9")
    assert trying.to_tag is None and "record-route" not in trying.headers
    again = parse_message(response.serialize())
    assert isinstance(again, Response) and again.status == 200 and again.to_tag == "t9"


def test_make_response_keeps_existing_to_tag() -> None:
    request = parse_message(invite_bytes(method="BYE", to_tag="mine"))
    assert isinstance(request, Request)
    assert make_response(request, 200, to_tag="other").to_tag == "mine"


def test_headers_api() -> None:
    headers = Headers([("Via", "a"), ("v", "b")])
    assert headers.get_all("VIA") == ["a", "b"]
    headers.add("via", "z", first=True)
    assert headers.get("via") == "z"
    headers.set("Via", "only")
    assert headers.get_all("v") == ["only"]
    headers.remove("via")
    assert "via" not in headers and headers.get("via") is None


def test_uri_name_address_via_parsing() -> None:
    uri = SipUri.parse("sip:+15125550100@[2001:db8::1]:5080;transport=tcp;lr")
    assert (uri.user, uri.host, uri.port) == ("+15125550100", "2001:db8::1", 5080)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert str(uri) == "sip:+15125550100@[2001:db8::1]:5080;transport=tcp;lr"
    addr = NameAddress.parse('"Jail" <sip:100@10.0.0.1;user=phone>;tag=xyz')
    assert (addr.display, addr.uri, addr.tag) == ('"Jail"', "sip:100@10.0.0.1;user=phone", "xyz")
    assert NameAddress.parse("sip:a@b;tag=q").tag == "q"
    via = Via.parse("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq;received=1.2.3.4")
    assert via.port is None and via.params["received"] == "1.2.3.4"
    assert tag_of("<sip:a@b;tag=no>;tag=yes") == "yes"
    assert tag_of("<sip:a@b;tag=no>") is None
    assert tag_of(with_tag("<sip:a@b>", "n1")) == "n1"


@pytest.mark.parametrize("text", ["nocolon", "sip:@", "sip:a@[::1", "sip:a@h:99999"])
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        SipUri.parse(text)
