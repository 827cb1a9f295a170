"""RFC 3261 17 transaction records and the one table of their legal state transitions."""

from __future__ import annotations

from .errors import LocalProtocolError
from .events import Address
from .message import Request

# Kinds: INVITE client (ict), non-INVITE client (nict), INVITE server (ist),
# non-INVITE server (nist). "accepted" is the RFC 6026 state after a 2xx.
# Inputs: "1xx", "2xx", "final" (300-699), "ack", and timer names.
TRANSITIONS: dict[tuple[str, str, str], str] = {
    ("ict", "calling", "1xx"): "proceeding",
    ("ict", "calling", "2xx"): "accepted",
    ("ict", "calling", "final"): "completed",
    ("ict", "calling", "B"): "terminated",
    ("ict", "calling", "transport_error"): "terminated",
    ("ict", "proceeding", "1xx"): "proceeding",
    ("ict", "proceeding", "2xx"): "accepted",
    ("ict", "proceeding", "final"): "completed",
    ("ict", "proceeding", "B"): "terminated",  # armed only after we sent CANCEL
    ("ict", "proceeding", "transport_error"): "terminated",
    ("ict", "accepted", "2xx"): "accepted",
    ("ict", "accepted", "M"): "terminated",
    ("ict", "completed", "final"): "completed",
    ("ict", "completed", "D"): "terminated",
    ("nict", "trying", "1xx"): "proceeding",
    ("nict", "trying", "final"): "completed",
    ("nict", "trying", "2xx"): "completed",
    ("nict", "trying", "F"): "terminated",
    ("nict", "trying", "transport_error"): "terminated",
    ("nict", "proceeding", "1xx"): "proceeding",
    ("nict", "proceeding", "final"): "completed",
    ("nict", "proceeding", "2xx"): "completed",
    ("nict", "proceeding", "F"): "terminated",
    ("nict", "proceeding", "transport_error"): "terminated",
    ("nict", "completed", "K"): "terminated",
    ("ist", "proceeding", "1xx"): "proceeding",
    ("ist", "proceeding", "2xx"): "accepted",
    ("ist", "proceeding", "final"): "completed",
    ("ist", "accepted", "L"): "terminated",
    ("ist", "completed", "ack"): "confirmed",
    ("ist", "completed", "H"): "terminated",
    ("ist", "confirmed", "I"): "terminated",
    ("nist", "trying", "1xx"): "proceeding",
    ("nist", "trying", "2xx"): "completed",
    ("nist", "trying", "final"): "completed",
    ("nist", "proceeding", "1xx"): "proceeding",
    ("nist", "proceeding", "2xx"): "completed",
    ("nist", "proceeding", "final"): "completed",
    ("nist", "completed", "J"): "terminated",
}


def response_input(status: int) -> str:
    """Table input for a response status."""
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "final"


class Transaction:
    """What client and server transactions share: state, timers and where to send."""

    __slots__ = (
        "address",
        "connection",
        "id",
        "kind",
        "reliable",
        "request",
        "state",
        "timers",
        "transport",
    )

    def __init__(
        self, kind: str, state: str, tx_id: str, request: Request, address: Address,
        transport: str, connection: int | None,
    ) -> None:
        self.kind = kind
        self.state = state
        self.id = tx_id
        self.request = request
        self.address = address
        self.transport = transport
        self.connection = connection
        self.reliable = transport != "udp"
        self.timers: dict[str, float] = {}

    def can(self, event: str) -> bool:
        return (self.kind, self.state, event) in TRANSITIONS

    def advance(self, event: str) -> str:
        """Move along the table; an input the state does not accept is our bug."""
        try:
            self.state = TRANSITIONS[(self.kind, self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{self.kind} transaction in state {self.state} cannot take {event}"
            ) from None
        return self.state


class ServerTransaction(Transaction):
    """A request we received: absorbs retransmissions and retransmits our last response."""

    __slots__ = ("interval", "last_response", "local_tag", "status")

    def __init__(
        self, kind: str, tx_id: str, request: Request, address: Address, transport: str,
        connection: int | None,
    ) -> None:
        super().__init__(
            kind, "proceeding" if kind == "ist" else "trying", tx_id, request, address,
            transport, connection,
        )
        self.last_response: bytes | None = None
        self.status: int | None = None
        self.local_tag: str | None = None
        self.interval = 0.0


class ClientTransaction(Transaction):
    """A request we sent: retransmits it, matches responses, times out."""

    __slots__ = ("acks", "cancel_requested", "cancel_sent", "data", "interval", "tags_2xx")

    def __init__(
        self, kind: str, tx_id: str, request: Request, data: bytes, address: Address,
        transport: str, connection: int | None,
    ) -> None:
        super().__init__(
            kind, "calling" if kind == "ict" else "trying", tx_id, request, address, transport,
            connection,
        )
        self.data = data
        self.interval = 0.0
        self.cancel_requested = False
        self.cancel_sent = False
        self.tags_2xx: set[str | None] = set()
        self.acks: dict[str | None, tuple[bytes, Address, str, int | None]] = {}


class AcceptedInvite:
    """Our 2xx to an INVITE, retransmitted until its end-to-end ACK (RFC 3261 13.3.1.4)."""

    __slots__ = (
        "address",
        "connection",
        "data",
        "interval",
        "request",
        "response",
        "timers",
        "transport",
    )

    def __init__(
        self, request: Request, response: object, data: bytes, address: Address,
        transport: str, connection: int | None,
    ) -> None:
        self.request = request
        self.response = response
        self.data = data
        self.address = address
        self.transport = transport
        self.connection = connection
        self.interval = 0.0
        self.timers: dict[str, float] = {}
