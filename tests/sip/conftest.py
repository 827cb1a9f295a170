"""Shared helpers for SIP core tests: canned messages and an in-memory network."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from callcontrol.sip import Endpoint, Event, Transmission

UAS_ADDR = ("127.0.0.1", 5060)
UAC_ADDR = ("127.0.0.11", 5070)


def invite_bytes(
    *, branch: str = "z9hG4bKinv1", call_id: str = "call-1@test", cseq: int = 1,
    method: str = "INVITE", to_tag: str | None = None, from_tag: str = "ft1",
    body: bytes = b"", extra: Iterable[str] = (), via_host: str = "127.0.0.11:5070",
    transport: str = "UDP",
) -> bytes:
    to = "<sip:+15125550100@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:+15125550100@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/{transport} {via_host};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: \"Facility\" <sip:100001@127.0.0.11>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:100001@127.0.0.11:5070>",
        *extra,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def drain(endpoint: Endpoint) -> list[Event]:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


def sent(endpoint: Endpoint) -> list[Transmission]:
    return endpoint.datagrams_to_send()


def first_lines(transmissions: Iterable[Transmission]) -> list[str]:
    return [t.data.split(b"\r\n", 1)[0].decode() for t in transmissions]


def endpoint_at(address: tuple[str, int]) -> Endpoint:
    """An endpoint that answers on ``address`` over both UDP and TCP."""
    endpoint = Endpoint()
    endpoint.set_local_address("udp", *address)
    endpoint.set_local_address("tcp", *address)
    return endpoint


@pytest.fixture
def uas() -> Endpoint:
    return endpoint_at(UAS_ADDR)


@pytest.fixture
def uac() -> Endpoint:
    return endpoint_at(UAC_ADDR)


class Network:
    """Carries transmissions between two endpoints in memory, optionally losing some."""

    def __init__(self, a: Endpoint, a_addr: tuple[str, int], b: Endpoint,
                 b_addr: tuple[str, int]) -> None:
        self.ends = {a_addr: b, b_addr: a}
        self.addr_of = {id(a): a_addr, id(b): b_addr}
        self.a, self.b = a, b
        self.log: list[tuple[tuple[str, int], str]] = []
        self.drop_next: set[str] = set()

    def transfer(self, now: float) -> int:
        """Deliver everything queued on both sides until quiet; returns messages moved."""
        moved = 0
        while True:
            batch = [(self.a, t) for t in self.a.datagrams_to_send()]
            batch += [(self.b, t) for t in self.b.datagrams_to_send()]
            if not batch:
                return moved
            for sender, t in batch:
                first = t.data.split(b"\r\n", 1)[0].decode()
                self.log.append((self.addr_of[id(sender)], first))
                if first in self.drop_next:
                    self.drop_next.discard(first)
                    continue
                receiver = self.ends[self.addr_of[id(sender)]]
                receiver.receive_datagram(t.data, self.addr_of[id(sender)], now)
                moved += 1
