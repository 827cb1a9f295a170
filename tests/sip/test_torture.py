"""RFC 4475 torture messages: each is parsed, and answered, as the RFC says it should be.

The corpus is in ``torture/`` (the RFC's own text notation). The endpoint here is
the controller's: a trunk policy that trusts the sender, so what a message gets
is what a facility PBX sending it would get.
"""

from __future__ import annotations

import ipaddress

import pytest

from callcontrol.sip import (
    Dialog,
    Endpoint,
    MessageRejected,
    NameAddress,
    ParseError,
    Request,
    RequestReceived,
    Response,
    Trunk,
    TrunkPolicy,
    parse_message,
)
from callcontrol.sip.endpoint import KNOWN_METHODS

from . import torture

SOURCE = ("192.0.2.10", 5060)

TU = "passed to the transaction user"
DROPPED = "dropped: a malformed response"
IGNORED = "ignored: a response no transaction asked for"

#: What the controller does with each message, and the RFC section saying why.
EXPECTED: dict[str, int | str] = {
    # 3.1.1 valid messages
    "wsinv": 481,      # 3.1.1.1: well formed; its To tag names a dialog we do not have
    "intmeth": 501,    # 3.1.1.2: "Endpoints will generate a 501"
    "esc01": TU,       # 3.1.1.3
    "escnull": 405,    # 3.1.1.4: REGISTER is known, we are no registrar
    "esc02": 501,      # 3.1.1.5: RE%47IST%45R is an unknown method
    "lwsdisp": 200,    # 3.1.1.6
    "longreq": TU,     # 3.1.1.7
    "dblreq": 405,     # 3.1.1.8: the trailing INVITE octets are ignored
    "semiuri": 200,    # 3.1.1.9
    "transports": 200,  # 3.1.1.10
    "mpart01": 405,    # 3.1.1.11: well formed MESSAGE, which we do not implement
    "unreason": IGNORED,  # 3.1.1.12
    "noreason": IGNORED,  # 3.1.1.13
    # 3.1.2 invalid messages
    "badinv01": 400, "clerr": 400, "scalar02": 400, "scalarlg": DROPPED, "quotbal": 400,
    "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400,
    "baddate": 400, "regbadct": 400, "badaspec": 400, "baddn": 400,
    "badvers": 505,    # 3.1.2.15: "respond ... with a 505 Version Not Supported"
    "mismatch01": 400, "mismatch02": 400,  # 3.1.2.17: 400 "is also acceptable"
    "bigcode": DROPPED, "ncl": 400,
    # 3.2 transaction layer
    "badbranch": 200,
    # 3.3 application layer
    "insuf": 400,      # 3.3.1: missing required headers
    "unkscm": 416,     # 3.3.2
    "novelsc": 416,    # 3.3.3
    "unksm2": 405,     # 3.3.4: a REGISTER
    "bext01": 420,     # 3.3.5
    "invut": 415,      # 3.3.6
    "regaut01": 405,   # 3.3.7
    "multi01": 400,    # 3.3.8
    "mcl01": 400,      # 3.3.9
    "bcast": IGNORED,  # 3.3.10
    "zeromf": 200,     # 3.3.11: we are the OPTIONS target, so we answer
    "cparam01": 405, "cparam02": 405, "regescrt": 405,  # 3.3.12-14: REGISTERs
    "sdp01": 406,      # 3.3.15: the Accept header leaves no way to answer an offer
    # 3.4 backward compatibility
    "inv2543": TU,
}


def test_the_corpus_is_the_whole_rfc() -> None:
    assert sorted(EXPECTED) == torture.names()
    assert len(EXPECTED) == 49


def controller_endpoint() -> Endpoint:
    trunk = Trunk("pbx", (ipaddress.ip_network("192.0.2.0/24"),))
    endpoint = Endpoint(screen=TrunkPolicy([trunk]))
    endpoint.set_local_address("udp", "192.0.2.200", 5060)
    return endpoint


def feed(endpoint: Endpoint, data: bytes) -> tuple[list[bytes], list[object]]:
    endpoint.receive_datagram(data, SOURCE, 0.0)
    sent = [t.data for t in endpoint.datagrams_to_send()]
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return sent, events


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_message_is_answered_as_the_rfc_says(name: str) -> None:
    endpoint = controller_endpoint()
    sent, events = feed(endpoint, torture.wire(name))
    expected = EXPECTED[name]
    passed = [e for e in events if isinstance(e, RequestReceived)]
    if expected == TU:
        assert sent == [] and len(passed) == 1
        return
    assert passed == []
    assert endpoint.dialog_count == 0
    if expected == DROPPED:
        assert sent == []
        assert [e.status for e in events if isinstance(e, MessageRejected)] == [None]
    elif expected == IGNORED:
        assert sent == [] and events == []
    else:
        assert len(sent) == 1, sent
        # The status line only: a 400 echoes the very header that was malformed.
        assert sent[0].startswith(f"SIP/2.0 {expected} ".encode()), sent[0][:80]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e == 400 or
                                        e == 505 or e == DROPPED))
def test_invalid_message_fails_to_parse(name: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(torture.wire(name))
    assert caught.value.status == (505 if name == "badvers" else 400)


def test_400_names_the_fault_and_carries_the_transaction_headers() -> None:
    sent, _ = feed(controller_endpoint(), torture.wire("ncl"))
    reply = parse_message(sent[0])
    assert "Content-Length '-999'" in reply.reason
    assert reply.call_id == "ncl.0ha0isndaksdj2193423r542w35"
    assert reply.top_via.branch == "z9hG4bKkdjuw"


def test_refusals_say_what_is_supported() -> None:
    replies = {}
    for name in ("intmeth", "escnull", "bext01", "invut"):
        sent, _ = feed(controller_endpoint(), torture.wire(name))
        replies[name] = parse_message(sent[0])
    assert replies["intmeth"].headers.get("allow") == replies["escnull"].headers.get("allow")
    assert "INVITE" in (replies["escnull"].headers.get("allow") or "")
    assert replies["bext01"].headers.get_list("unsupported") == [
        "nothingSupportsThis", "nothingSupportsThisEither"]
    assert replies["invut"].headers.get("accept") == "application/sdp"


def test_wsinv_folding_lws_and_compact_forms() -> None:
    m = parse_message(torture.wire("wsinv"))
    assert isinstance(m, Request)
    assert m.cseq == (9, "INVITE")
    assert m.headers.get("max-forwards") == "0068"
    assert m.to_tag == "1918181833n" and m.from_tag == "98asjd8"
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contact = NameAddress.parse(m.headers.get_list("contact")[0])
    assert contact.display == '"Quoted string \\"\\""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.headers.get("subject") == ""
    assert m.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.headers.get("unknownheaderwithunusualvalue") == ";;,,;;,;"
    assert len(m.body) == 150


def test_intmeth_wide_character_ranges() -> None:
    m = parse_message(torture.wire("intmeth"))
    assert isinstance(m, Request)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.from_tag == "_token~1'+`*%!-."
    sender = NameAddress.parse(m.headers.get("from") or "")
    assert sender.display == "token1~` token2'+_ token3*%!.-"
    assert sender.params["fromparam''~+*_!.-%"] == '"работающий"'
    to = NameAddress.parse(m.headers.get("to") or "")
    assert to.display == '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"'
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionheader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_not_escapes_outside_uris() -> None:
    m = parse_message(torture.wire("esc02"))
    assert isinstance(m, Request) and m.method == "RE%47IST%45R"
    assert m.headers.get_list("contact") == [
        "<sip:alias1@host1.example.com>", "<sip:alias3@host3.example.com>"]
    assert m.headers.get("c%6fntact") == "<sip:alias2@host2.example.com>"


def test_long_request_and_many_vias() -> None:
    m = parse_message(torture.wire("longreq"))
    vias = m.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{i}.example.com" for i in range(33, 0, -1)]
    assert vias[33].params["received"] == "192.0.2.5"
    assert m.from_tag == "12" + "982" * 50 + "424"


def test_datagram_octets_past_content_length_are_ignored() -> None:
    m = parse_message(torture.wire("dblreq"))
    assert isinstance(m, Request) and m.method == "REGISTER" and m.body == b""


def test_binary_multipart_body_is_framed_by_content_length() -> None:
    m = parse_message(torture.wire("mpart01"))
    assert len(m.body) == 467 and b"\x00" in m.body
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_reason_phrases() -> None:
    unreason = parse_message(torture.wire("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_message(torture.wire("noreason"))
    assert isinstance(noreason, Response) and (noreason.status, noreason.reason) == (100, "")


def test_list_headers_split_on_commas_only_between_values() -> None:
    m = parse_message(torture.wire("semiuri"))
    assert isinstance(m, Request) and m.uri == "sip:user;par=u%40example.net@example.com"
    assert len(m.headers.get_list("accept")) == 6
    transports = parse_message(torture.wire("transports"))
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items()
                                        if e not in (400, 505, DROPPED)))
def test_valid_messages_survive_a_round_trip(name: str) -> None:
    first = parse_message(torture.wire(name))
    again = parse_message(first.serialize())
    assert again.serialize() == first.serialize()
    assert again.cseq == first.cseq and again.call_id == first.call_id


def test_the_whole_corpus_leaves_a_call_in_progress_untouched() -> None:
    """A confirmed call's dialog is there, unchanged, after every message of the corpus."""
    endpoint = controller_endpoint()
    invite = parse_message(torture.wire("esc01"))
    assert isinstance(invite, Request)
    answer = Response(200, headers=invite.headers.copy())
    answer.headers.set("to", (invite.headers.get("to") or "") + ";tag=ourtag")
    answer.headers.set("contact", "<sip:ics@192.0.2.200>")
    dialog = Dialog.from_uas(invite, answer)
    endpoint.add_dialog(dialog)
    before = (dialog.state, dialog.remote_cseq, dialog.remote_target, dialog.local_cseq)
    passed = []
    for name in torture.names():
        _, events = feed(endpoint, torture.wire(name))
        passed += [e.request.call_id for e in events if isinstance(e, RequestReceived)]
    assert endpoint.find_dialog(dialog.call_id, "ourtag", dialog.remote_tag) is dialog
    assert (dialog.state, dialog.remote_cseq, dialog.remote_target, dialog.local_cseq) == before
    assert endpoint.dialog_count == 1
    assert sorted(passed) == sorted(
        parse_message(torture.wire(n)).call_id for n, e in EXPECTED.items() if e == TU)


def test_options_answer_lists_what_is_implemented() -> None:
    """Allow names exactly the methods the endpoint does not refuse with 405/501."""
    endpoint = controller_endpoint()
    sent, _ = feed(endpoint, torture.wire("lwsdisp"))
    reply = parse_message(sent[0])
    assert reply.status == 200
    allow = reply.headers.get_list("allow")
    assert "application/sdp" in reply.headers.get_list("accept")
    assert "supported" in reply.headers
    assert reply.headers.get_list("supported") == list(endpoint.supported)
    served = []
    for i, method in enumerate(sorted(KNOWN_METHODS - {"ACK", "CANCEL"})):
        data = torture.wire("lwsdisp").replace(b"OPTIONS", method.encode()).replace(
            b"z9hG4bKkdjuw", f"z9hG4bKm{i}".encode())
        answers, _ = feed(endpoint, data)
        if not any(a[8:11] in (b"405", b"501") for a in answers):
            served.append(method)
    assert sorted(served) == sorted(set(allow) - {"ACK", "CANCEL"})
