"""Events the SIP endpoint hands to its transaction user, named as facts that happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .message import Request, Response

if TYPE_CHECKING:
    from .dialog import Dialog

#: (host, port) of a peer or a local socket.
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every endpoint event."""


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """A new request (not ACK, not CANCEL) passed every check; answer it with `send_response`.

    ``trunk_id`` is the trusted trunk it came from when a security policy is in
    force; ``dialog`` is the dialog an in-dialog request belongs to.
    """

    request: Request
    transaction_id: str
    source: Address
    transport: str
    connection: int | None = None
    trunk_id: str | None = None
    dialog: Dialog | None = None


@dataclass(frozen=True, slots=True)
class AckReceived(Event):
    """The ACK for a 2xx we sent arrived (our 2xx retransmissions stop)."""

    request: Request
    source: Address
    dialog: Dialog | None = None


@dataclass(frozen=True, slots=True)
class CancelReceived(Event):
    """The peer cancelled a pending INVITE; the endpoint already answered it 487."""

    request: Request
    invite: Request
    invite_transaction_id: str
    source: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """A response to a request we sent (each 2xx of a forked INVITE arrives once)."""

    response: Response
    request: Request
    transaction_id: str


@dataclass(frozen=True, slots=True)
class TransactionTimedOut(Event):
    """Timer B or F fired: no final response to our request; treat it as 408."""

    request: Request
    transaction_id: str


@dataclass(frozen=True, slots=True)
class AckTimedOut(Event):
    """No ACK for our 2xx within 64*T1 (RFC 3261 13.3.1.4): the TU should send BYE."""

    request: Request
    response: Response


@dataclass(frozen=True, slots=True)
class ProvisionalUnacknowledged(Event):
    """A reliable provisional response of ours got no PRACK within 64*T1 (RFC 3262 3):
    the TU should reject the INVITE (``call_id``) with a 5xx."""

    call_id: str
    to_tag: str


@dataclass(frozen=True, slots=True)
class TransportError(Event):
    """A request of ours could not be sent (connection refused or lost)."""

    request: Request
    transaction_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MessageRejected(Event):
    """The endpoint answered or dropped a message itself: malformed, untrusted, over rate...

    ``status`` is the response sent (None when the message was only dropped).
    """

    source: Address
    transport: str
    status: int | None
    detail: str
    trunk_id: str | None = None
