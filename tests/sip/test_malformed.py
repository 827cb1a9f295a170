"""Malformed input: a corpus and a fuzz run; nothing escapes, every bad request gets 400."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.sip import (
    Endpoint,
    MessageRejected,
    ParseError,
    RequestReceived,
    parse_message,
)

from .conftest import drain, invite_bytes

SOURCE = ("127.0.0.11", 5070)
VALID = invite_bytes(body=b"v=0\r\n")


def feed(endpoint: Endpoint, data: bytes) -> tuple[list[bytes], list[object]]:
    endpoint.receive_datagram(data, SOURCE, 0.0)
    return [t.data for t in endpoint.datagrams_to_send()], drain(endpoint)


def status_of(data: bytes) -> int:
    assert data.startswith(b"SIP/2.0 ")
    return int(data[8:11])


CORPUS: dict[str, bytes] = {
    "garbage start line": b"HELLO WORLD\r\n\r\n",
    "double space in request line": VALID.replace(b"INVITE sip", b"INVITE  sip", 1),
    "no request URI scheme": VALID.replace(b"sip:+15125550100@127.0.0.1:5060", b"nowhere", 1),
    "bad method characters": VALID.replace(b"INVITE sip", b"INV(TE sip", 1),
    "content-length not a number": VALID.replace(b"Content-Length: 5", b"Content-Length: abc"),
    "content-length negative": VALID.replace(b"Content-Length: 5", b"Content-Length: -1"),
    "content-length beyond body": VALID.replace(b"Content-Length: 5", b"Content-Length: 50"),
    "duplicate Call-ID": VALID.replace(b"Call-ID: call-1@test", b"Call-ID: a\r\nCall-ID: b"),
    "duplicate CSeq": VALID.replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE\r\nCSeq: 2 INVITE"),
    "duplicate From": VALID.replace(b"Max-Forwards: 70",
                                    b"Max-Forwards: 70\r\nf: <sip:x@y>;tag=2"),
    "duplicate Content-Length": VALID.replace(b"Content-Length: 5",
                                              b"Content-Length: 5\r\nl: 5"),
    "non-UTF-8 header": VALID.replace(b"Facility", b"Fac\xff\xfeity"),
    "missing Via": b"\r\n".join(line for line in VALID.split(b"\r\n")
                                if not line.startswith(b"Via")),
    "missing Call-ID": b"\r\n".join(line for line in VALID.split(b"\r\n")
                                    if not line.startswith(b"Call-ID")),
    "CSeq method differs": VALID.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
    "CSeq not a number": VALID.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"),
    "CSeq too large": VALID.replace(b"CSeq: 1 INVITE", b"CSeq: 4294967296 INVITE"),
    "header without colon": VALID.replace(b"Max-Forwards: 70", b"Max-Forwards 70"),
    "bad Via protocol": VALID.replace(b"SIP/2.0/UDP", b"HTTP/1.1/UDP"),
    "bad Via port": VALID.replace(b"127.0.0.11:5070", b"127.0.0.11:70000", 1),
    "bad Max-Forwards": VALID.replace(b"Max-Forwards: 70", b"Max-Forwards: lots"),
    "no blank line": VALID.split(b"\r\n\r\n")[0],
    "bare LF line ends": VALID.replace(b"\r\n", b"\n"),
    "NUL in header name": VALID.replace(b"Max-Forwards", b"Max\x00Forwards"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_request_gets_400(name: str) -> None:
    endpoint = Endpoint()
    replies, events = feed(endpoint, CORPUS[name])
    assert len(replies) == 1, name
    assert status_of(replies[0]) == 400
    assert not any(isinstance(e, RequestReceived) for e in events)
    assert any(isinstance(e, MessageRejected) and e.status == 400 for e in events)
    with pytest.raises(ParseError):
        parse_message(CORPUS[name])


def test_400_carries_the_salvaged_transaction_headers() -> None:
    replies, _ = feed(Endpoint(), CORPUS["content-length beyond body"])
    reply = replies[0]
    assert b"branch=z9hG4bKinv1" in reply and b"Call-ID: call-1@test" in reply
    assert b"Content-Length" in reply.split(b"\r\n", 1)[0] or b"400 Bad Request (" in reply


def test_oversize_request_gets_513() -> None:
    big = invite_bytes(extra=["X-Pad: " + "a" * 70_000])
    replies, events = feed(Endpoint(), big)
    assert [status_of(r) for r in replies] == [513]
    assert isinstance(events[0], MessageRejected) and events[0].status == 513


def test_every_truncation_of_a_request_is_rejected_with_400() -> None:
    endpoint = Endpoint()
    for length in range(1, len(VALID)):
        replies, events = feed(endpoint, VALID[:length])
        if not VALID[:length].strip(b"\r\n\x00 "):
            continue
        assert [status_of(r) for r in replies] == [400], length
        assert not any(isinstance(e, RequestReceived) for e in events), length


def test_malformed_responses_are_dropped() -> None:
    endpoint = Endpoint()
    for data in (b"SIP/2.0 999 Nope\r\n\r\n", b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
                 b"SIP/2.0 200 OK\r\nCall-ID: \xff\r\n\r\n"):
        replies, events = feed(endpoint, data)
        assert replies == []
        assert isinstance(events[0], MessageRejected) and events[0].status is None


def test_stray_valid_response_is_ignored() -> None:
    data = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h:1;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1"
            b"\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert feed(Endpoint(), data) == ([], [])


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, pos, chunk in edits:
        pos %= max(len(out), 1)
        if kind == 0:
            out[pos : pos + 1] = chunk[:1]
        elif kind == 1:
            out[pos:pos] = chunk
        else:
            del out[pos : pos + len(chunk) + 1]
    return bytes(out)


edits = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10_000),
              st.binary(min_size=1, max_size=8) | st.sampled_from(
                  [b"\r\n", b":", b" ", b",", b";", b"\r\n ", b"<", b">", b"\"", b"\xff"])),
    min_size=1, max_size=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=edits, base=st.sampled_from([VALID, invite_bytes(method="BYE", to_tag="x"),
                                          invite_bytes(method="OPTIONS")]))
def test_fuzzed_requests_never_escape(edits: list[tuple[int, int, bytes]], base: bytes) -> None:
    data = _mutate(base, edits)
    endpoint = Endpoint()
    endpoint.set_local_address("udp", "127.0.0.1", 5060)
    replies, _events = feed(endpoint, data)  # must not raise
    try:
        parse_message(data)
    except ParseError:
        if not data.strip(b"\r\n\x00 ") or data.startswith(b"SIP/2.0 "):
            assert replies == []
        else:
            assert [status_of(r) for r in replies] == [400]
        return
    # It still parses: the endpoint handled it one way or another, with a real answer.
    for reply in replies:
        assert 100 <= status_of(reply) < 700


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape(data: bytes) -> None:
    endpoint = Endpoint()
    replies, _ = feed(endpoint, data)
    for reply in replies:
        assert status_of(reply) in (400, 513)
