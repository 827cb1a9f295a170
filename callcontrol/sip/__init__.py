"""The SIP core: messages, sans-IO transactions and dialogs, transports, trunk security, SDP.

How a transaction user (the call controller) drives it::

    endpoint = Endpoint(screen=TrunkPolicy([Trunk.from_config("tx", ["127.0.0.11/32"])]))
    transport = SipTransport(endpoint, on_event)       # asyncio adapter, thin
    await transport.listen_udp("127.0.0.1", 5060)
    await transport.listen_tcp("127.0.0.1", 5060)

    def on_event(event):                               # called for every endpoint event
        now = transport.now()
        if isinstance(event, RequestReceived) and event.request.method == "INVITE":
            tag = new_tag()
            endpoint.respond(event.request, 180, now, to_tag=tag)
            ok = make_response(event.request, 200, to_tag=tag,
                               headers=[("Contact", "<sip:ics@127.0.0.1:5060>")], body=sdp)
            endpoint.add_dialog(Dialog.from_uas(event.request, ok))
            endpoint.send_response(ok, now)

Everything the endpoint sends goes out when ``on_event`` returns; code running
elsewhere (a task) calls the endpoint with ``transport.now()`` and then
``transport.flush()``.

UAS side: `RequestReceived` (new request; ``trunk_id`` set by the screen,
``dialog`` for in-dialog requests), `CancelReceived` (the INVITE was already
answered 487, so a later `send_response` on it raises `TransactionStateError`),
`AckReceived` (ACK for our 2xx; our 2xx retransmissions stop), `AckTimedOut`
(no ACK within 64*T1: send BYE). The endpoint itself answers retransmissions,
100 Trying when the TU has not answered an INVITE within 200 ms, CANCEL, 481
for requests outside any registered dialog (`add_dialog`), 500 for
out-of-order CSeq, 405 for methods not in ``allow``, 483 for Max-Forwards 0,
400 for malformed requests (513 when too large), and whatever the screen
decides (403 statelessly to untrusted sources, 401 challenges, 503 with
Retry-After over the INVITE rate, 200 to trunk OPTIONS pings). Malformed
responses are dropped. Each of these raises `MessageRejected` (logs, metrics).

UAC side: build the first request with `initial_request` (fresh Call-ID and
From tag), then `Endpoint.send_request` (adds Via/branch/rport, Max-Forwards)
returns a transaction id; `ResponseReceived` carries each response (each
forked 2xx once), `TransactionTimedOut` (timer B/F), `TransportError`. ACK a
2xx with ``endpoint.send_ack(dialog.create_ack(cseq), address, now)`` (the
endpoint re-sends it on 2xx retransmissions); cancel with
``endpoint.cancel(transaction_id, now)`` (sent once a provisional arrived).
In-dialog requests: ``dialog.create_request("BYE" | "INFO" | "INVITE" ...)``
and ``endpoint.send_request(request, dialog.next_hop()[:2], now)``.

SDP: `SessionDescription.parse`/`serialize`, `answer_offer` (UAS, raises
`SdpError` carrying 488), `create_offer` and `accept_answer` (UAC).
Security: `TrunkPolicy([Trunk.from_config(id, cidrs, users, realm)])` passed
as ``Endpoint(screen=...)``.

Errors: every error is a `SipError` carrying ``status``/``reason``;
`PeerProtocolError` (and `ParseError`, `SdpError`) when the peer is at fault,
`LocalProtocolError` (and `TransactionStateError`) when our code is.
"""

from .answering_agent import AnsweringAgent, start_agent
from .dialog import Dialog, DialogId, initial_request, new_branch, new_call_id, new_tag
from .digest import DigestAuthenticator, DigestOutcome, digest_response, parse_auth_params
from .endpoint import DEFAULT_ALLOW, Endpoint, Transmission, capability_headers
from .errors import (
    LocalProtocolError,
    ParseError,
    PeerProtocolError,
    SdpError,
    SipError,
    TransactionStateError,
    reason_phrase,
)
from .events import (
    AckReceived,
    AckTimedOut,
    Address,
    CancelReceived,
    Event,
    MessageRejected,
    ProvisionalUnacknowledged,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from .framing import StreamFramer
from .message import (
    MAX_MESSAGE_SIZE,
    Headers,
    Message,
    NameAddress,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    parse_message,
    tag_of,
    with_tag,
)
from .sdp import (
    MediaDescription,
    NegotiatedAudio,
    SessionDescription,
    accept_answer,
    answer_offer,
    answer_reoffer,
    create_offer,
)
from .security import Screening, Trunk, TrunkPolicy
from .session_timer import (
    RefreshDue,
    SessionExpired,
    SessionExpires,
    SessionIntervalTooSmall,
    SessionTimer,
)
from .transport import SipTransport

__all__ = [
    "DEFAULT_ALLOW",
    "MAX_MESSAGE_SIZE",
    "AckReceived",
    "AckTimedOut",
    "Address",
    "AnsweringAgent",
    "CancelReceived",
    "Dialog",
    "DialogId",
    "DigestAuthenticator",
    "DigestOutcome",
    "Endpoint",
    "Event",
    "Headers",
    "LocalProtocolError",
    "MediaDescription",
    "Message",
    "MessageRejected",
    "NameAddress",
    "NegotiatedAudio",
    "ParseError",
    "PeerProtocolError",
    "ProvisionalUnacknowledged",
    "RefreshDue",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "Screening",
    "SdpError",
    "SessionDescription",
    "SessionExpired",
    "SessionExpires",
    "SessionIntervalTooSmall",
    "SessionTimer",
    "SipError",
    "SipTransport",
    "SipUri",
    "StreamFramer",
    "TransactionStateError",
    "TransactionTimedOut",
    "Transmission",
    "TransportError",
    "Trunk",
    "TrunkPolicy",
    "Via",
    "accept_answer",
    "answer_offer",
    "answer_reoffer",
    "capability_headers",
    "create_offer",
    "digest_response",
    "initial_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_auth_params",
    "parse_message",
    "reason_phrase",
    "start_agent",
    "tag_of",
    "with_tag",
]
