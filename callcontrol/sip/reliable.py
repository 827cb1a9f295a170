"""Reliable provisional responses (RFC 3262): the 100rel option tag, RSeq, RAck and PRACK.

UAS side: `ReliableProvisional` is one 18x we sent with ``Require: 100rel`` and
an ``RSeq``, which the endpoint retransmits (T1, doubling, for 64*T1) until a
PRACK whose ``RAck`` names it arrives. UAC side: `rseq_of` says whether a
provisional response asks to be acknowledged, and `RAck` builds the header
value of the PRACK that does (sent in the early dialog the 18x created).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .errors import PeerProtocolError
from .events import Address
from .message import Request, Response, split_header_values

OPTION_TAG = "100rel"


def _tags(message: Request | Response, header: str) -> set[str]:
    out: set[str] = set()
    for value in message.headers.get_all(header):
        out.update(t.strip().lower() for t in split_header_values(value))
    return out


def offers_100rel(request: Request) -> bool:
    """The INVITE says ``Supported: 100rel`` or ``Require: 100rel``."""
    return OPTION_TAG in _tags(request, "supported") or OPTION_TAG in _tags(request, "require")


def rseq_of(response: Response) -> int | None:
    """The RSeq of a reliable provisional response (101-199 with ``Require: 100rel``);
    None for any other response. A reliable one without a valid RSeq is the peer's error."""
    if not 100 < response.status < 200 or OPTION_TAG not in _tags(response, "require"):
        return None
    value = (response.headers.get("rseq") or "").strip()
    if not value.isdigit() or not 1 <= int(value) <= 2**32 - 1:
        raise PeerProtocolError(f"reliable provisional response with RSeq {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: <rseq> <cseq> <method>`` (RFC 3262 7.2)."""

    rseq: int
    cseq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> RAck:
        parts = value.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise PeerProtocolError(f"malformed RAck {value!r}")
        return cls(int(parts[0]), int(parts[1]), parts[2].upper())

    def serialize(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def first_rseq() -> int:
    """A random first RSeq, as RFC 3262 3 asks (well below 2**31, room to count up)."""
    return 1 + secrets.randbelow(2**31 - 1)


class ReliableProvisional:
    """One reliable 18x of ours, retransmitted until PRACKed (or for 64*T1 at most)."""

    __slots__ = ("address", "connection", "cseq", "data", "interval", "key", "rseq", "timers",
                 "transport")

    def __init__(self, key: tuple[str, str], rseq: int, cseq: int, data: bytes,
                 address: Address, transport: str, connection: int | None) -> None:
        #: (Call-ID, our To tag): the early dialog the PRACK comes in.
        self.key = key
        self.rseq = rseq
        self.cseq = cseq
        self.data = data
        self.address = address
        self.transport = transport
        self.connection = connection
        self.interval = 0.0
        self.timers: dict[str, float] = {}

    def acknowledged_by(self, rack: RAck) -> bool:
        return rack == RAck(self.rseq, self.cseq, "INVITE")
