"""The sans-IO SIP endpoint: transactions, 2xx/ACK handling and dialog matching, no I/O.

Bytes and ``now`` go in (`receive_datagram`, `receive_stream_data`,
`handle_timer`); bytes to send (`datagrams_to_send`), the next timer
(`get_timer`) and events for the transaction user (`next_event`) come out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from .dialog import Dialog, DialogId, new_branch, new_tag
from .errors import LocalProtocolError, ParseError, PeerProtocolError, TransactionStateError
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
    Request,
    Response,
    Via,
    bad_request_response,
    looks_like_response,
    make_response,
    parse_message,
    split_header_values,
)
from .reliable import RAck, ReliableProvisional, first_rseq
from .session_timer import MIN_SE_FLOOR, OPTION_TAG, check_interval
from .transaction import (
    AcceptedInvite,
    ClientTransaction,
    ServerTransaction,
    Transaction,
    response_input,
)

DEFAULT_ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "PRACK")

#: Body types the controller reads: SDP offers/answers and DTMF in INFO.
DEFAULT_ACCEPT = ("application/sdp", "application/dtmf-relay", "application/dtmf")

#: Option tags (RFC 3261 20.37) a ``Require`` may name without a 420.
DEFAULT_SUPPORTED: tuple[str, ...] = (OPTION_TAG, "100rel")

#: Methods some RFC defines: one of these that we do not allow gets 405, any other 501
#: (RFC 3261 8.2.1).
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "PRACK", "UPDATE",
    "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
})

#: Request-URI schemes a UAS here can serve (others get 416, RFC 3261 8.2.2.1).
URI_SCHEMES = frozenset({"sip", "sips", "tel"})


def capability_headers(
    allow: Iterable[str] = DEFAULT_ALLOW, supported: Iterable[str] = DEFAULT_SUPPORTED,
    accept: Iterable[str] = DEFAULT_ACCEPT,
) -> list[tuple[str, str]]:
    """``Allow``, ``Accept`` and ``Supported`` of an OPTIONS answer (RFC 3261 11.2)."""
    return [("Allow", ", ".join(allow)), ("Accept", ", ".join(accept)),
            ("Supported", ", ".join(supported))]


class Transmission(NamedTuple):
    """Bytes for the transport: ``connection`` names a stream connection, None for new/UDP."""

    data: bytes
    address: Address
    transport: str
    connection: int | None


class Screening(Protocol):
    """What a request screen (e.g. `TrunkPolicy`) decides about one request."""

    @property
    def trunk_id(self) -> str | None: ...
    @property
    def response(self) -> Response | None: ...
    @property
    def drop(self) -> bool: ...
    @property
    def detail(self) -> str: ...


class RequestScreen(Protocol):
    def screen(self, request: Request, source: Address, now: float) -> Screening: ...


class Endpoint:
    """One SIP endpoint (UAS and UAC at once) over any number of transports.

    Timers follow RFC 3261 17 with ``t1``/``t2``/``t4``; on reliable transports
    (anything but ``"udp"``) retransmission timers are off and D/I/J/K are zero.
    An INVITE we sent that has had provisional responses but no final one for
    ``timer_c`` seconds (RFC 3261 16.6 step 11: over 3 minutes, restarted by each
    provisional; 0 turns it off) is
    CANCELled; unanswered, it is given up 64*T1 later (`TransactionTimedOut`).
    """

    def __init__(
        self,
        *,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        screen: RequestScreen | None = None,
        allow: Iterable[str] = DEFAULT_ALLOW,
        supported: Iterable[str] = DEFAULT_SUPPORTED,
        min_se: int = MIN_SE_FLOOR,
        session_interval: int = 0,
        auto_trying: bool = True,
        trying_delay: float = 0.2,
        match_dialogs: bool = True,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_transactions: int = 200_000,
        user_agent: str | None = "ics-controller",
        timer_c: float = 200.0,
    ) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.timer_c = timer_c
        self.screen = screen
        self.allow = tuple(allow)
        self._allow_set = frozenset(self.allow)
        self.supported = tuple(supported)
        self._supported_set = frozenset(tag.lower() for tag in self.supported)
        self.min_se = min_se
        #: Asked for in the Session-Expires of each dialog-creating INVITE (0: not asked).
        self.session_interval = session_interval
        self.auto_trying = auto_trying
        self.trying_delay = trying_delay
        self.match_dialogs = match_dialogs
        self.max_message_size = max_message_size
        self.max_transactions = max_transactions
        self.user_agent = user_agent
        self._local: dict[tuple[str, bool], Address] = {}
        self._servers: dict[tuple[str, str, str], ServerTransaction] = {}
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._invites_sent: dict[tuple[str, int], ClientTransaction] = {}
        self._accepted: dict[tuple[str, int], AcceptedInvite] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        #: Our reliable provisionals awaiting PRACK, and the next RSeq, by (Call-ID, To tag).
        self._reliable: dict[tuple[str, str], ReliableProvisional] = {}
        self._next_rseq: dict[tuple[str, str], int] = {}
        self._framers: dict[int, StreamFramer] = {}
        self._timers: list[tuple[float, int, object, str]] = []
        self._timer_seq = 0
        self._out: list[Transmission] = []
        self._events: deque[Event] = deque()

    # ----------------------------------------------------------------- set-up
    def set_local_address(self, transport: str, host: str, port: int) -> None:
        """Where we listen, used as the Via sent-by of our requests (per transport, family)."""
        self._local[(transport.lower(), ":" in host)] = (host, port)

    def add_dialog(self, dialog: Dialog) -> None:
        """Start matching in-dialog requests to ``dialog`` (others get 481)."""
        self._dialogs[dialog.id] = dialog

    def remove_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def find_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> Dialog | None:
        return self._dialogs.get((call_id, local_tag, remote_tag))

    @property
    def dialog_count(self) -> int:
        return len(self._dialogs)

    @property
    def transaction_count(self) -> int:
        return len(self._servers) + len(self._clients)

    # ------------------------------------------------------------------ output
    def datagrams_to_send(self) -> list[Transmission]:
        """Everything to send since the last call, in order (UDP datagrams and stream data)."""
        out = self._out
        self._out = []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called (None when nothing is pending)."""
        timers = self._timers
        while timers:
            when, _, owner, name = timers[0]
            if owner.timers.get(name) == when:  # type: ignore[attr-defined]
                return when
            heapq.heappop(timers)
        return None

    def handle_timer(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, owner, name = heapq.heappop(timers)
            owner_timers = owner.timers  # type: ignore[attr-defined]
            if owner_timers.get(name) != when:
                continue
            del owner_timers[name]
            if isinstance(owner, ClientTransaction):
                self._client_timer(owner, name, now)
            elif isinstance(owner, ServerTransaction):
                self._server_timer(owner, name, now)
            elif isinstance(owner, AcceptedInvite):
                self._accepted_timer(owner, name, now)
            elif isinstance(owner, ReliableProvisional):
                self._reliable_timer(owner, name, now)

    # ------------------------------------------------------------------- input
    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """One UDP datagram from ``address``."""
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive
        self._receive(data, address, "udp", None, now)

    def receive_stream_data(
        self, connection: int, data: bytes, address: Address, now: float, transport: str = "tcp"
    ) -> bool:
        """Bytes read from a stream connection; False means the connection must close."""
        framer = self._framers.get(connection)
        if framer is None:
            framer = self._framers[connection] = StreamFramer(self.max_message_size)
        try:
            messages = framer.feed(data)
        except ParseError as exc:
            self._reject_malformed(bytes(data), exc, address, transport, connection)
            self._framers.pop(connection, None)
            return False
        for message in messages:
            self._receive(message, address, transport, connection, now)
        return True

    def connection_closed(self, connection: int, now: float, reason: str = "connection closed") \
            -> None:
        """A stream connection went away: our pending requests on it fail."""
        self._framers.pop(connection, None)
        for tx in list(self._clients.values()):
            if tx.connection == connection and tx.can("transport_error"):
                self._client_transport_error(tx, reason)

    def transport_error(
        self, address: Address, transport: str, connection: int | None, reason: str, now: float
    ) -> None:
        """The adapter could not deliver to ``address``: requests waiting on it fail."""
        for tx in list(self._clients.values()):
            if tx.transport != transport or not tx.can("transport_error"):
                continue
            if (connection is not None and tx.connection == connection) or (
                connection is None and tx.address == address
            ):
                self._client_transport_error(tx, reason)

    def stream_connected(self, address: Address, transport: str, connection: int) -> None:
        """The adapter opened ``connection`` for requests sent to ``address`` without one."""
        for tx in self._clients.values():
            if tx.connection is None and tx.transport == transport and tx.address == address:
                tx.connection = connection

    # -------------------------------------------------------------- TU: UAS side
    def send_response(self, response: Response, now: float) -> None:
        """Send a response through the server transaction its Via/CSeq name."""
        try:
            via = response.parsed_via or Via.parse(
                split_header_values(response.headers.get("via") or "")[0])
            method = response.cseq[1]
        except (ParseError, IndexError):
            raise LocalProtocolError("response has no usable Via/CSeq") from None
        tx = self._servers.get((via.branch or "", via.sent_by, method))
        if tx is None:
            raise TransactionStateError(f"no server transaction for {response!r}")
        self._respond(tx, response, now)

    def respond(
        self, request: Request, status: int, now: float, reason: str | None = None, *,
        to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
    ) -> Response:
        """Build a response to ``request`` (see `make_response`), send it, return it."""
        response = make_response(request, status, reason, to_tag=to_tag, headers=headers,
                                 body=body)
        self.send_response(response, now)
        return response

    def respond_reliably(
        self, request: Request, status: int, now: float, *, to_tag: str,
        headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
    ) -> Response:
        """A reliable provisional response (RFC 3262) to an INVITE that offered 100rel:
        ``Require: 100rel`` and the next ``RSeq``, retransmitted until its PRACK comes
        (answered 200 here) or the INVITE gets its final response.

        While an earlier one awaits its PRACK, this one goes unreliably (RFC 3262 3
        allows one unacknowledged reliable provisional at a time).
        """
        if not 100 < status < 200:
            raise LocalProtocolError("only 101-199 responses are sent reliably")
        key = (request.call_id, to_tag)
        if key in self._reliable:
            return self.respond(request, status, now, to_tag=to_tag, headers=headers, body=body)
        rseq = self._next_rseq.get(key) or first_rseq()
        response = make_response(request, status, to_tag=to_tag, body=body, headers=[
            *headers, ("Require", "100rel"), ("RSeq", str(rseq))])
        self.send_response(response, now)
        sent = self._out[-1]
        entry = ReliableProvisional(key, rseq, request.cseq[0], sent.data, sent.address,
                                    sent.transport, sent.connection)
        self._reliable[key] = entry
        self._next_rseq[key] = rseq + 1
        if sent.transport == "udp":
            entry.interval = self.t1
            self._set_timer(entry, "retransmit", now + self.t1)
        self._set_timer(entry, "give_up", now + 64 * self.t1)
        return response

    # -------------------------------------------------------------- TU: UAC side
    def send_request(
        self, request: Request, address: Address, now: float, *, transport: str = "udp",
        connection: int | None = None,
    ) -> str:
        """Send a new request in its own client transaction; returns the transaction id.

        Adds our Via (with a new branch and ``rport``) and Max-Forwards if absent.
        Use `send_ack` for the ACK of a 2xx and `cancel` for CANCEL.
        """
        if request.method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{request.method} has its own call (send_ack / cancel)")
        transport = transport.lower()
        branch = new_branch()
        self._add_via(request, address, transport, branch)
        if "max-forwards" not in request.headers:
            request.headers.set("max-forwards", "70")
        if self.user_agent and "user-agent" not in request.headers:
            request.headers.set("user-agent", self.user_agent)
        if request.method == "INVITE" and request.to_tag is None:
            if self.supported and "supported" not in request.headers:
                request.headers.set("supported", ", ".join(self.supported))
            if self.session_interval and "session-expires" not in request.headers:
                request.headers.set("session-expires", str(max(self.session_interval,
                                                               self.min_se)))
                request.headers.set("min-se", str(self.min_se))
        self._start_client(request, branch, address, transport, connection, now)
        return branch

    def send_ack(
        self, ack: Request, address: Address, now: float, *, transport: str = "udp",
        connection: int | None = None,
    ) -> None:
        """Send the end-to-end ACK for a 2xx; it is re-sent on each 2xx retransmission."""
        if ack.method != "ACK":
            raise LocalProtocolError("send_ack sends ACK requests only")
        transport = transport.lower()
        self._add_via(ack, address, transport, new_branch())
        if "max-forwards" not in ack.headers:
            ack.headers.set("max-forwards", "70")
        data = ack.serialize()
        invite = self._invites_sent.get((ack.call_id, ack.cseq[0]))
        if invite is not None:
            invite.acks[ack.to_tag] = (data, address, transport, connection)
        self._out.append(Transmission(data, address, transport, connection))

    def cancel(self, transaction_id: str, now: float) -> bool:
        """Cancel our pending INVITE (sent once a provisional has arrived, RFC 3261 9.1).

        Returns False when it is too late (a final response already came).
        """
        tx = self._clients.get((transaction_id, "INVITE"))
        if tx is None or tx.state not in ("calling", "proceeding"):
            return False
        if tx.cancel_requested:
            return True
        tx.cancel_requested = True
        if tx.state == "proceeding":
            self._send_cancel(tx, now)
        return True

    # ================================================================ internals
    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _set_timer(self, owner: Transaction | AcceptedInvite | ReliableProvisional, name: str,
                   when: float) -> None:
        owner.timers[name] = when
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, owner, name))

    def _add_via(self, request: Request, address: Address, transport: str, branch: str) -> None:
        local = self._local.get((transport, ":" in address[0]))
        if local is None:
            raise LocalProtocolError(f"no local {transport} address set for {address[0]}")
        host = f"[{local[0]}]" if ":" in local[0] else local[0]
        request.headers.add(
            "via", f"SIP/2.0/{transport.upper()} {host}:{local[1]};branch={branch};rport",
            first=True,
        )

    def _receive(
        self, data: bytes, address: Address, transport: str, connection: int | None, now: float
    ) -> None:
        try:
            message = parse_message(data, max_size=self.max_message_size)
            via = message.parsed_via or message.top_via
        except ParseError as exc:
            self._reject_malformed(data, exc, address, transport, connection)
            return
        if isinstance(message, Request):
            self._receive_request(message, via, address, transport, connection, now)
        else:
            self._receive_response(message, via, now)

    def _reject_malformed(
        self, data: bytes, exc: ParseError, address: Address, transport: str,
        connection: int | None,
    ) -> None:
        if looks_like_response(data):
            self._emit(MessageRejected(address, transport, None, f"malformed response: {exc}"))
            return
        response = bad_request_response(data, exc.status, f"{exc.reason} ({exc})")
        self._out.append(Transmission(response.serialize(), address, transport, connection))
        self._emit(MessageRejected(address, transport, exc.status, str(exc)))

    # ----------------------------------------------------------------- requests
    def _receive_request(
        self, request: Request, via: Via, address: Address, transport: str,
        connection: int | None, now: float,
    ) -> None:
        # RFC 3261 18.2.1 / RFC 3581: note where the request really came from.
        changed = False
        if via.host != address[0]:
            via.params["received"] = address[0]
            changed = True
        if "rport" in via.params:
            via.params["rport"] = str(address[1])
            changed = True
        if changed:
            vias = request.headers._values["via"]
            rest = split_header_values(vias[0])[1:]
            vias[0] = ", ".join([str(via), *rest])
        method = request.method
        branch = via.branch or ""
        if branch.startswith("z9hG4bK"):
            key = (branch, via.sent_by, "INVITE" if method == "ACK" else method)
        else:  # RFC 2543 peers: match on the dialog-ish fields instead
            key = (
                f"2543|{request.call_id}|{request.cseq[0]}|{request.from_tag}|{request.uri}",
                via.sent_by,
                "INVITE" if method == "ACK" else method,
            )
        tx = self._servers.get(key)
        if method == "ACK":
            if tx is not None and tx.state == "completed":
                tx.advance("ack")
                tx.timers.clear()
                self._set_timer(tx, "I", now + (0.0 if tx.reliable else self.t4))
                return
            if tx is not None and tx.state == "confirmed":
                return
            if self.screen is not None and self.screen.screen(request, address, now).drop:
                self._emit(MessageRejected(address, transport, None, "ACK from untrusted source"))
                return
            self._receive_2xx_ack(request, address, transport)
            return
        if tx is not None:
            # A retransmission: repeat our last response, never bother the TU.
            if tx.last_response is not None and tx.state in ("proceeding", "completed"):
                self._out.append(
                    Transmission(tx.last_response, tx.address, tx.transport, tx.connection)
                )
            return

        trunk_id: str | None = None
        verdict = None
        if self.screen is not None:
            verdict = self.screen.screen(request, address, now)
            if verdict.drop:
                self._emit(MessageRejected(address, transport, None, verdict.detail))
                return
            trunk_id = verdict.trunk_id
            if verdict.response is not None and trunk_id is None and \
                    verdict.response.status >= 300:
                # Untrusted: answer statelessly. A transaction would hold memory and
                # retransmit the error to a possibly spoofed address (amplification).
                self._out.append(Transmission(verdict.response.serialize(), address,
                                              transport, connection))
                self._emit(MessageRejected(address, transport, verdict.response.status,
                                           verdict.detail))
                return
        refusal = self._refusal(request) if method != "CANCEL" else None
        if refusal is not None:
            self._respond(self._new_server(key, request, address, transport, connection),
                          refusal, now)
            return
        if verdict is not None and verdict.response is not None:
            stx = self._new_server(key, request, address, transport, connection)
            self._respond(stx, verdict.response, now)
            if verdict.response.status >= 300:
                self._emit(MessageRejected(address, transport, verdict.response.status,
                                           verdict.detail, trunk_id))
            return

        if len(self._servers) >= self.max_transactions:
            stx = self._new_server(key, request, address, transport, connection)
            busy = make_response(request, 503, to_tag=new_tag(), headers=[("Retry-After", "5")])
            self._respond(stx, busy, now)
            self._emit(MessageRejected(address, transport, 503, "transaction table full"))
            return

        if method == "CANCEL":
            self._receive_cancel(request, key, address, transport, connection, now)
            return

        stx = self._new_server(key, request, address, transport, connection)
        max_forwards = request.headers.get("max-forwards")
        if max_forwards is not None and int(max_forwards) <= 0 and method != "OPTIONS":
            self._respond(stx, make_response(request, 483, to_tag=new_tag()), now)
            return

        if method == "PRACK":
            self._receive_prack(stx, request, now)
            return

        dialog: Dialog | None = None
        to_tag = request.to_tag
        if to_tag is not None and self.match_dialogs:
            dialog = self._dialogs.get((request.call_id, to_tag, request.from_tag or ""))
            if dialog is None:
                self._respond(stx, make_response(request, 481, to_tag=new_tag()), now)
                return
            try:
                dialog.receive_request(request)
            except PeerProtocolError as exc:
                self._respond(stx, make_response(request, exc.status, f"{exc.reason} ({exc})",
                                                   to_tag=new_tag()),
                              now)
                return
        if method == "INVITE" and self.auto_trying:
            # RFC 3261 17.2.1: 100 Trying unless the TU answers within 200 ms. A
            # B2BUA whose far leg takes longer than that answers it at once
            # (``trying_delay=0``) so the facility never retransmits.
            if self.trying_delay <= 0:
                self._respond(stx, make_response(request, 100), now)
            else:
                self._set_timer(stx, "trying", now + self.trying_delay)
        self._emit(RequestReceived(request, stx.id, address, transport, connection, trunk_id,
                                   dialog))

    def _refusal(self, request: Request) -> Response | None:
        """The error answer RFC 3261 8.2.1-8.2.3 gives a request we cannot serve, if any:
        an unknown Request-URI scheme (416), a method we do not implement (405/501),
        an extension we lack (420), a body or answer type we cannot handle (415/406)."""
        method = request.method
        scheme = request.uri.partition(":")[0].lower()
        if scheme not in URI_SCHEMES:
            return make_response(request, 416, to_tag=new_tag())
        if method not in self._allow_set:
            status = 405 if method in KNOWN_METHODS else 501
            return make_response(request, status, to_tag=new_tag(),
                                 headers=[("Allow", ", ".join(self.allow))])
        if method == "ACK":
            return None
        unsupported = [tag for tag in request.headers.get_list("require")
                       if tag.lower() not in self._supported_set]
        if unsupported:
            return make_response(request, 420, to_tag=new_tag(),
                                 headers=[("Unsupported", ", ".join(unsupported))])
        if method in ("INVITE", "UPDATE"):
            content_type = request.headers.get("content-type")
            if request.body and content_type is not None and \
                    content_type.partition(";")[0].strip().lower() != "application/sdp":
                return make_response(request, 415, to_tag=new_tag(),
                                     headers=[("Accept", "application/sdp")])
            if OPTION_TAG in self._supported_set:
                try:
                    check_interval(request, self.min_se)
                except PeerProtocolError as exc:
                    headers = [("Min-SE", str(self.min_se))] if exc.status == 422 else []
                    return make_response(request, exc.status, f"{exc.reason} ({exc})",
                                         to_tag=new_tag(), headers=headers)
            accept = request.headers.get_list("accept")
            if accept and not any(kind.partition(";")[0].strip().lower() in (
                    "application/sdp", "application/*", "*/*") for kind in accept):
                return make_response(request, 406, to_tag=new_tag(), headers=[
                    ("Warning", '399 ics "answers are application/sdp only"')])
        return None

    def _new_server(
        self, key: tuple[str, str, str], request: Request, address: Address, transport: str,
        connection: int | None,
    ) -> ServerTransaction:
        kind = "ist" if request.method == "INVITE" else "nist"
        stx = ServerTransaction(kind, "|".join(key), request, address, transport, connection)
        self._servers[key] = stx
        return stx

    def _respond(self, tx: ServerTransaction, response: Response, now: float) -> None:
        status = response.status
        event = response_input(status)
        if not tx.can(event):
            raise TransactionStateError(
                f"cannot send {status} on a {tx.request.method} transaction in state {tx.state}"
            )
        if self.user_agent and status >= 200 and "server" not in response.headers:
            response.headers.set("server", self.user_agent)
        data = response.serialize()
        tx.advance(event)
        tx.last_response = data
        tx.status = status
        if tx.local_tag is None and status > 100:
            tx.local_tag = response.to_tag
        self._out.append(Transmission(data, tx.address, tx.transport, tx.connection))
        if status < 200:
            return
        if tx.kind == "ist":
            # Reliable provisionals stop with the final response (RFC 3262 3).
            key = (tx.request.call_id, response.to_tag or "")
            self._next_rseq.pop(key, None)
            reliable = self._reliable.pop(key, None)
            if reliable is not None:
                reliable.timers.clear()
            if status < 300:
                self._set_timer(tx, "L", now + 64 * self.t1)
                self._start_accepted(tx, response, data, now)
            else:
                if not tx.reliable:
                    tx.interval = self.t1
                    self._set_timer(tx, "G", now + self.t1)
                self._set_timer(tx, "H", now + 64 * self.t1)
        else:
            self._set_timer(tx, "J", now + (0.0 if tx.reliable else 64 * self.t1))

    def _start_accepted(
        self, tx: ServerTransaction, response: Response, data: bytes, now: float
    ) -> None:
        entry = AcceptedInvite(tx.request, response, data, tx.address, tx.transport,
                               tx.connection)
        self._accepted[(tx.request.call_id, tx.request.cseq[0])] = entry
        entry.interval = self.t1
        self._set_timer(entry, "2xx", now + self.t1)
        self._set_timer(entry, "ack", now + 64 * self.t1)

    def _receive_2xx_ack(self, request: Request, address: Address, transport: str) -> None:
        entry = self._accepted.pop((request.call_id, request.cseq[0]), None)
        if entry is None:
            return  # a duplicate or stray ACK: nothing to answer, nothing to tell
        entry.timers.clear()
        dialog = None
        to_tag = request.to_tag
        if to_tag is not None:
            dialog = self._dialogs.get((request.call_id, to_tag, request.from_tag or ""))
        self._emit(AckReceived(request, address, dialog))

    def _receive_cancel(
        self, request: Request, key: tuple[str, str, str], address: Address, transport: str,
        connection: int | None, now: float,
    ) -> None:
        ctx = self._new_server(key, request, address, transport, connection)
        invite_tx = self._servers.get((key[0], key[1], "INVITE"))
        if invite_tx is None:
            self._respond(ctx, make_response(request, 481, to_tag=new_tag()), now)
            return
        # The To tag of both answers is the one the INVITE's answers carry (RFC 3261 9.2).
        tag = invite_tx.local_tag or new_tag()
        self._respond(ctx, make_response(request, 200, to_tag=tag), now)
        if invite_tx.state == "proceeding":
            # RFC 3261 9.2: the INVITE ends with 487 before the TU hears of it.
            self._respond(invite_tx, make_response(invite_tx.request, 487, to_tag=tag), now)
            self._emit(CancelReceived(request, invite_tx.request, invite_tx.id, address))

    def _receive_prack(self, stx: ServerTransaction, request: Request, now: float) -> None:
        """PRACK for one of our reliable provisionals: 200 and no more retransmissions;
        481 when it names none awaiting one (RFC 3262 3)."""
        entry = self._reliable.get((request.call_id, request.to_tag or ""))
        try:
            rack = RAck.parse(request.headers.get("rack") or "")
        except PeerProtocolError as exc:
            self._respond(stx, make_response(request, 400, f"Bad Request ({exc})",
                                             to_tag=new_tag()), now)
            return
        if entry is None or not entry.acknowledged_by(rack):
            self._respond(stx, make_response(request, 481, to_tag=new_tag()), now)
            return
        del self._reliable[entry.key]
        entry.timers.clear()
        self._respond(stx, make_response(request, 200), now)

    def _reliable_timer(self, entry: ReliableProvisional, name: str, now: float) -> None:
        if self._reliable.get(entry.key) is not entry:
            return
        if name == "retransmit":
            self._out.append(Transmission(entry.data, entry.address, entry.transport,
                                          entry.connection))
            entry.interval *= 2  # RFC 3262 3: T1, doubling (no T2 cap)
            self._set_timer(entry, "retransmit", now + entry.interval)
        else:
            # Never PRACKed: the provisional is given up, and the TU rejects the INVITE.
            del self._reliable[entry.key]
            entry.timers.clear()
            self._emit(ProvisionalUnacknowledged(*entry.key))

    def _server_timer(self, tx: ServerTransaction, name: str, now: float) -> None:
        if name == "trying":
            if tx.state == "proceeding" and tx.last_response is None:
                self._respond(tx, make_response(tx.request, 100), now)
            return
        if name == "G":
            if tx.state == "completed" and tx.last_response is not None:
                self._out.append(
                    Transmission(tx.last_response, tx.address, tx.transport, tx.connection)
                )
                tx.interval = min(2 * tx.interval, self.t2)
                self._set_timer(tx, "G", now + tx.interval)
            return
        if tx.can(name):
            tx.advance(name)
        if tx.state == "terminated":
            tx.timers.clear()
            for key in self._keys_of_server(tx):
                self._servers.pop(key, None)

    def _keys_of_server(self, tx: ServerTransaction) -> list[tuple[str, str, str]]:
        branch, sent_by, method = tx.id.rsplit("|", 2)
        return [(branch, sent_by, method)]

    def _accepted_timer(self, entry: AcceptedInvite, name: str, now: float) -> None:
        key = (entry.request.call_id, entry.request.cseq[0])
        if self._accepted.get(key) is not entry:
            return
        if name == "2xx":
            self._out.append(
                Transmission(entry.data, entry.address, entry.transport, entry.connection)
            )
            entry.interval = min(2 * entry.interval, self.t2)
            self._set_timer(entry, "2xx", now + entry.interval)
        else:
            del self._accepted[key]
            entry.timers.clear()
            self._emit(AckTimedOut(entry.request, entry.response))  # type: ignore[arg-type]

    # ---------------------------------------------------------------- responses
    def _start_client(
        self, request: Request, branch: str, address: Address, transport: str,
        connection: int | None, now: float,
    ) -> ClientTransaction:
        data = request.serialize()
        kind = "ict" if request.method == "INVITE" else "nict"
        tx = ClientTransaction(kind, branch, request, data, address, transport, connection)
        self._clients[(branch, request.method)] = tx
        if kind == "ict":
            self._invites_sent[(request.call_id, request.cseq[0])] = tx
        if not tx.reliable:
            tx.interval = self.t1
            self._set_timer(tx, "A" if kind == "ict" else "E", now + self.t1)
        self._set_timer(tx, "B" if kind == "ict" else "F", now + 64 * self.t1)
        self._out.append(Transmission(data, address, transport, connection))
        return tx

    def _receive_response(self, response: Response, via: Via, now: float) -> None:
        try:
            method = response.cseq[1]
        except ParseError:
            return
        tx = self._clients.get((via.branch or "", method))
        if tx is None:
            return  # stray or late response: no transaction wants it
        status = response.status
        event = response_input(status)
        if tx.kind == "ict":
            self._ict_response(tx, response, event, now)
            return
        if not tx.can(event):
            return  # retransmitted final in Completed: absorbed
        tx.advance(event)
        if tx.state == "completed":
            tx.timers.clear()
            self._set_timer(tx, "K", now + (0.0 if tx.reliable else self.t4))
        elif not tx.reliable:
            # Proceeding: keep retransmitting, at T2 (RFC 3261 17.1.2.2).
            tx.interval = self.t2
            self._set_timer(tx, "E", now + self.t2)
        self._emit(ResponseReceived(response, tx.request, tx.id))

    def _ict_response(
        self, tx: ClientTransaction, response: Response, event: str, now: float
    ) -> None:
        state = tx.state
        if event == "2xx":
            to_tag = response.to_tag
            if state == "accepted":
                if to_tag in tx.tags_2xx:
                    ack = tx.acks.get(to_tag)
                    if ack is not None:
                        self._out.append(Transmission(*ack))
                    return
            elif state == "completed":
                return
            else:
                tx.advance("2xx")
                tx.timers.clear()
                self._set_timer(tx, "M", now + 64 * self.t1)
            tx.tags_2xx.add(to_tag)
            self._emit(ResponseReceived(response, tx.request, tx.id))
            return
        if event == "1xx":
            if not tx.can("1xx"):
                return
            tx.advance("1xx")
            tx.timers.pop("A", None)
            if state == "calling":
                tx.timers.pop("B", None)
            if self.timer_c and not tx.cancel_sent:
                self._set_timer(tx, "C", now + self.timer_c)
            self._emit(ResponseReceived(response, tx.request, tx.id))
            if tx.cancel_requested and not tx.cancel_sent:
                self._send_cancel(tx, now)
            return
        # 300-699
        if state == "completed":
            # The ACK the INVITE client transaction itself sends (RFC 3261 17.1.1.3).
            non2xx_ack = _same_branch_request("ACK", tx.request, response.headers.get("to") or "")
            self._out.append(Transmission(non2xx_ack.serialize(), tx.address, tx.transport,
                                          tx.connection))
            return
        if not tx.can("final"):
            return
        tx.advance("final")
        tx.timers.clear()
        non2xx_ack = _same_branch_request("ACK", tx.request, response.headers.get("to") or "")
        self._out.append(Transmission(non2xx_ack.serialize(), tx.address, tx.transport,
                                      tx.connection))
        self._set_timer(tx, "D", now + (0.0 if tx.reliable else 32.0))
        self._emit(ResponseReceived(response, tx.request, tx.id))

    def _send_cancel(self, tx: ClientTransaction, now: float) -> None:
        invite = tx.request
        tx.cancel_sent = True
        self._start_client(_same_branch_request("CANCEL", invite, invite.headers.get("to") or ""),
                           tx.id, tx.address, tx.transport, tx.connection, now)
        # RFC 3261 9.1: with no final answer 64*T1 after CANCEL, the INVITE is given up.
        if "B" not in tx.timers:
            self._set_timer(tx, "B", now + 64 * self.t1)

    def _client_timer(self, tx: ClientTransaction, name: str, now: float) -> None:
        if name == "C":
            # Provisionals only, for too long: the far end will never answer.
            if tx.state == "proceeding" and not tx.cancel_sent:
                tx.cancel_requested = True
                self._send_cancel(tx, now)
            return
        if name in ("A", "E"):
            if tx.state in ("calling", "trying", "proceeding"):
                self._out.append(Transmission(tx.data, tx.address, tx.transport, tx.connection))
                if name == "E" and tx.state == "proceeding":
                    tx.interval = self.t2
                elif name == "E":
                    tx.interval = min(2 * tx.interval, self.t2)
                else:
                    tx.interval = 2 * tx.interval
                self._set_timer(tx, name, now + tx.interval)
            return
        if not tx.can(name):
            return
        tx.advance(name)
        tx.timers.clear()
        self._forget_client(tx)
        if name in ("B", "F"):
            self._emit(TransactionTimedOut(tx.request, tx.id))

    def _client_transport_error(self, tx: ClientTransaction, reason: str) -> None:
        tx.advance("transport_error")
        tx.timers.clear()
        self._forget_client(tx)
        self._emit(TransportError(tx.request, tx.id, reason))

    def _forget_client(self, tx: ClientTransaction) -> None:
        self._clients.pop((tx.id, tx.request.method), None)
        if tx.kind == "ict":
            key = (tx.request.call_id, tx.request.cseq[0])
            if self._invites_sent.get(key) is tx:
                del self._invites_sent[key]


def _same_branch_request(method: str, invite: Request, to: str) -> Request:
    """A CANCEL or non-2xx ACK for ``invite``: it carries the INVITE's top Via (so its
    branch), From, Call-ID, CSeq number and Route set, and ``to`` as its To
    (RFC 3261 9.1, 17.1.1.3)."""
    h = Headers()
    h.set("via", split_header_values(invite.headers.get("via") or "")[0])
    h.set("max-forwards", "70")
    h.set("from", invite.headers.get("from") or "")
    h.set("to", to)
    h.set("call-id", invite.call_id)
    h.set("cseq", f"{invite.cseq[0]} {method}")
    routes = invite.headers.get_all("route")
    if routes:
        h.set_all("route", routes)
    return Request(method, invite.uri, h)
