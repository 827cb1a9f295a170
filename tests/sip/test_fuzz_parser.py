"""Coverage-guided fuzzing of the SIP parser, on a fixed budget.

Hypothesis mutates the RFC 4475 corpus; each input's new parser lines (traced with
`sys.settrace`) are fed to `hypothesis.target`, which steers generation toward
inputs reaching code no earlier input reached. Whatever the bytes, the parser
either returns a message or raises `ParseError`, and the endpoint answers a
broken request with one 4xx/5xx or drops a broken response.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

import callcontrol.sip.message as message_module
from callcontrol.sip import Endpoint, ParseError, RequestReceived, parse_message

from . import torture

SEEDS = [torture.wire(name) for name in torture.names()]
PARSER_FILE = message_module.__file__
#: Parser lines reached so far, starting from what the corpus itself reaches.
SEEN: set[int] = set()
#: Lines the fuzzing reached that no corpus message does.
BEYOND_CORPUS: set[int] = set()


def _lines_run(data: bytes) -> tuple[set[int], BaseException | None]:
    lines: set[int] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != PARSER_FILE:
            return None
        if event == "line":
            lines.add(frame.f_lineno)
        return tracer

    error: BaseException | None = None
    sys.settrace(tracer)
    try:
        parse_message(data)
    except BaseException as exc:  # judged by the caller, outside the trace
        error = exc
    finally:
        sys.settrace(None)
    return lines, error


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "splice", "crlf"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(other) - 1))
            data[pos:pos] = other[start : start + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.sampled_from([b"\r\n", b"\r\n ", b";", b",", b"\"", b"<"]))
    return bytes(data)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_parser_never_fails_any_other_way(data: bytes) -> None:
    if not SEEN:
        for seed in SEEDS:
            SEEN.update(_lines_run(seed)[0])
    lines, error = _lines_run(data)
    new = lines - SEEN
    SEEN.update(lines)
    BEYOND_CORPUS.update(new)
    target(float(len(new)), label="new parser lines")
    assert error is None or isinstance(error, ParseError), repr(error)
    if isinstance(error, ParseError):
        assert 400 <= error.status < 600

    endpoint = Endpoint()
    endpoint.receive_datagram(data, ("192.0.2.10", 5060), 0.0)
    replies = [t.data for t in endpoint.datagrams_to_send()]
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    if error is not None:
        assert not any(isinstance(e, RequestReceived) for e in events)
        if data.startswith(b"SIP/2.0 "):
            assert replies == []
        elif data.strip(b"\r\n\x00 "):
            assert len(replies) == 1 and replies[0][8:9] in (b"4", b"5")


def test_the_fuzz_run_reaches_parser_code_the_corpus_does_not() -> None:
    test_parser_never_fails_any_other_way()
    assert BEYOND_CORPUS, "the guided run found no parser line beyond the corpus"
