"""TCP stream framing: reassembly, several messages per segment, limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcontrol.sip import Endpoint, ParseError, RequestReceived, StreamFramer

from .conftest import UAC_ADDR, drain, invite_bytes

MESSAGES = [
    invite_bytes(branch="z9hG4bKa", transport="TCP", body=b"v=0\r\n"),
    invite_bytes(branch="z9hG4bKb", method="OPTIONS", transport="TCP"),
    invite_bytes(branch="z9hG4bKc", call_id="other", transport="TCP", body=b"x" * 300),
]
STREAM = b"".join(MESSAGES)


def test_several_messages_in_one_segment() -> None:
    assert StreamFramer().feed(STREAM) == MESSAGES


def test_partial_messages_wait_for_the_rest() -> None:
    framer = StreamFramer()
    out = []
    for i in range(0, len(STREAM), 7):
        out += framer.feed(STREAM[i : i + 7])
    assert out == MESSAGES and framer.pending == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, len(STREAM)), max_size=12))
def test_any_segmentation_gives_the_same_messages(cuts: list[int]) -> None:
    framer = StreamFramer()
    points = sorted({0, len(STREAM), *cuts})
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out += framer.feed(STREAM[a:b])
    assert out == MESSAGES


def test_compact_content_length_and_keepalives() -> None:
    message = MESSAGES[0].replace(b"Content-Length:", b"l:")
    assert StreamFramer().feed(b"\r\n\r\n" + message + b"\r\n\r\n") == [message]


def test_missing_content_length_is_an_error() -> None:
    message = MESSAGES[1].replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(ParseError, match="no Content-Length"):
        StreamFramer().feed(message)


def test_size_limits() -> None:
    with pytest.raises(ParseError) as caught:
        StreamFramer(max_size=1000).feed(MESSAGES[2].replace(b"Content-Length: 300",
                                                            b"Content-Length: 5000"))
    assert caught.value.status == 513
    with pytest.raises(ParseError):
        StreamFramer(max_size=100).feed(b"INVITE " + b"a" * 200)


def test_endpoint_stream_answers_and_closes_on_framing_error() -> None:
    endpoint = Endpoint()
    endpoint.set_local_address("tcp", "127.0.0.1", 5060)
    assert endpoint.receive_stream_data(7, STREAM[:100], UAC_ADDR, 0.0)
    assert drain(endpoint) == []
    assert endpoint.receive_stream_data(7, STREAM[100:], UAC_ADDR, 0.0)
    received = [e for e in drain(endpoint) if isinstance(e, RequestReceived)]
    assert [e.request.top_via.branch for e in received] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]
    assert all(e.connection == 7 for e in received)
    endpoint.datagrams_to_send()
    bad = MESSAGES[1].replace(b"Content-Length: 0", b"Content-Length: zero")
    assert endpoint.receive_stream_data(7, bad, UAC_ADDR, 1.0) is False
    reply = endpoint.datagrams_to_send()
    assert len(reply) == 1 and reply[0].data.startswith(b"SIP/2.0 400 ")
    assert reply[0].connection == 7


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200) | st.sampled_from(MESSAGES), max_size=6),
       st.integers(1, 64))
def test_stream_fuzz_never_escapes(chunks: list[bytes], step: int) -> None:
    endpoint = Endpoint()
    endpoint.set_local_address("tcp", "127.0.0.1", 5060)
    data = b"".join(chunks)
    for i in range(0, len(data), step):
        if not endpoint.receive_stream_data(3, data[i : i + step], UAC_ADDR, 0.0):
            break  # framing error: the connection would close here
    for reply in endpoint.datagrams_to_send():
        assert reply.data.startswith(b"SIP/2.0 ") and reply.connection == 3
