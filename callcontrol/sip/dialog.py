"""Dialog state (RFC 3261 12): identity, route set, CSeq counters and in-dialog requests."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .errors import LocalProtocolError, ParseError, PeerProtocolError
from .message import Headers, NameAddress, Request, Response, SipUri, tag_of

DialogId = tuple[str, str, str]
"""(Call-ID, local tag, remote tag)."""


def new_tag() -> str:
    """A fresh random From/To tag."""
    return os.urandom(6).hex()


def new_call_id(host: str = "") -> str:
    """A fresh random Call-ID (optionally ``@host``)."""
    value = os.urandom(12).hex()
    return f"{value}@{host}" if host else value


def new_branch() -> str:
    """A fresh RFC 3261 Via branch (with the magic cookie)."""
    return "z9hG4bK" + os.urandom(9).hex()


class Dialog:
    """One side of a dialog; create with `from_uas` or `from_uac`, build requests from it.

    ``state`` is ``"early"`` (from a 1xx with a To tag), ``"confirmed"`` (2xx) or
    ``"terminated"``. Out-of-order requests (CSeq below the last one) raise a
    `PeerProtocolError` carrying 500, as RFC 3261 12.2.2 requires.
    """

    __slots__ = (
        "call_id",
        "is_uas",
        "local_address",
        "local_contact",
        "local_cseq",
        "local_tag",
        "remote_address",
        "remote_cseq",
        "remote_tag",
        "remote_target",
        "route_set",
        "state",
        "transport",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local_address: str,
        remote_address: str,
        remote_target: str,
        route_set: list[str],
        local_cseq: int,
        remote_cseq: int | None,
        is_uas: bool,
        state: str,
        local_contact: str | None = None,
        transport: str = "udp",
    ) -> None:
        local_tag = tag_of(local_address)
        remote_tag = tag_of(remote_address)
        if not local_tag or not remote_tag:
            raise LocalProtocolError("a dialog needs both a local and a remote tag")
        self.call_id = call_id
        self.local_address = local_address
        self.remote_address = remote_address
        self.local_tag: str = local_tag
        self.remote_tag: str = remote_tag
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.is_uas = is_uas
        self.state = state
        self.local_contact = local_contact
        self.transport = transport

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uas(
        cls, request: Request, response: Response, *, local_contact: str | None = None
    ) -> Dialog:
        """The dialog a 1xx/2xx response (with a To tag) to ``request`` creates at the UAS."""
        contacts = request.headers.get_list("contact")
        if not contacts:
            raise PeerProtocolError("dialog-creating request has no Contact")
        remote_target = NameAddress.parse(contacts[0]).uri
        local_contact = local_contact or _contact_uri(response)
        return cls(
            call_id=request.call_id,
            local_address=response.headers.get("to") or "",
            remote_address=request.headers.get("from") or "",
            remote_target=remote_target,
            route_set=request.headers.get_list("record-route"),
            local_cseq=0,
            remote_cseq=request.cseq[0],
            is_uas=True,
            state="confirmed" if 200 <= response.status < 300 else "early",
            local_contact=local_contact,
            transport=request.top_via.transport.lower(),
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 1xx/2xx response with a To tag creates at the UAC."""
        contacts = response.headers.get_list("contact")
        if not contacts:
            raise PeerProtocolError("dialog-creating response has no Contact")
        return cls(
            call_id=request.call_id,
            local_address=request.headers.get("from") or "",
            remote_address=response.headers.get("to") or "",
            remote_target=NameAddress.parse(contacts[0]).uri,
            route_set=list(reversed(response.headers.get_list("record-route"))),
            local_cseq=request.cseq[0],
            remote_cseq=None,
            is_uas=False,
            state="confirmed" if 200 <= response.status < 300 else "early",
            local_contact=_contact_uri(request),
            transport=request.top_via.transport.lower() if "via" in request.headers else "udp",
        )

    def update_from_response(self, response: Response) -> None:
        """An early dialog becomes confirmed on 2xx; a 2xx refreshes the remote target."""
        if 200 <= response.status < 300:
            self.state = "confirmed"
            contacts = response.headers.get_list("contact")
            if contacts:
                self.remote_target = NameAddress.parse(contacts[0]).uri
            if not self.is_uas and response.cseq[1] == "INVITE":
                record_route = response.headers.get_list("record-route")
                if record_route and self.state == "early":
                    self.route_set = list(reversed(record_route))

    def receive_request(self, request: Request) -> None:
        """Check and record an in-dialog request from the peer (RFC 3261 12.2.2)."""
        seq, method = request.cseq
        if method != "ACK" and method != "CANCEL":
            if self.remote_cseq is not None and seq < self.remote_cseq:
                raise PeerProtocolError(
                    f"CSeq {seq} is below the dialog's last {self.remote_cseq}", status=500
                )
            if self.remote_cseq is None or seq > self.remote_cseq:
                self.remote_cseq = seq
        if method in ("INVITE", "UPDATE"):
            contacts = request.headers.get_list("contact")
            if contacts:
                try:
                    self.remote_target = NameAddress.parse(contacts[0]).uri
                except ParseError:
                    raise PeerProtocolError("target refresh with a malformed Contact") from None
        if method == "BYE":
            self.state = "terminated"

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A new in-dialog request (BYE, re-INVITE, INFO, UPDATE, OPTIONS...).

        The endpoint adds the Via when it sends it. ACK and CANCEL have their own
        builders (`create_ack`, `Endpoint.cancel`).
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not built with create_request")
        if self.state == "terminated" and method != "BYE":
            raise LocalProtocolError(f"dialog {self.call_id} is terminated")
        self.local_cseq += 1
        return self._build(method, self.local_cseq, headers, body, content_type)

    def create_ack(self, invite_cseq: int, *, body: bytes = b"", content_type: str | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> Request:
        """The end-to-end ACK for a 2xx to our INVITE with CSeq ``invite_cseq``."""
        return self._build("ACK", invite_cseq, headers, body, content_type)

    def _build(
        self, method: str, seq: int, headers: Iterable[tuple[str, str]], body: bytes,
        content_type: str | None,
    ) -> Request:
        uri, routes = self._request_target()
        h = Headers()
        h.set("max-forwards", "70")
        h.set("from", self.local_address)
        h.set("to", self.remote_address)
        h.set("call-id", self.call_id)
        h.set("cseq", f"{seq} {method}")
        if routes:
            h.set_all("route", routes)
        if self.local_contact and method in ("INVITE", "UPDATE"):
            h.set("contact", f"<{self.local_contact}>")
        if content_type and body:
            h.set("content-type", content_type)
        for name, value in headers:
            h.add(name, value)
        return Request(method, uri, h, body)

    def _request_target(self) -> tuple[str, list[str]]:
        """Request-URI and Route headers, loose or strict routing (RFC 3261 12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddress.parse(self.route_set[0]).uri
        if ";lr" in first.lower():
            return self.remote_target, list(self.route_set)
        return first, [*self.route_set[1:], f"<{self.remote_target}>"]

    def next_hop(self) -> tuple[str, int, str]:
        """(host, port, transport) where in-dialog requests go: first route, else target."""
        target = (
            NameAddress.parse(self.route_set[0]).uri if self.route_set else self.remote_target
        )
        uri = SipUri.parse(target)
        transport = (uri.params.get("transport") or self.transport or "udp").lower()
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        return uri.host, port, transport


def _contact_uri(message: Request | Response) -> str | None:
    contacts = message.headers.get_list("contact")
    if not contacts:
        return None
    try:
        return NameAddress.parse(contacts[0]).uri
    except ParseError:
        return None


def initial_request(
    method: str,
    uri: str,
    *,
    from_uri: str,
    to_uri: str | None = None,
    contact: str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    from_display: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A request outside any dialog (the first INVITE, an OPTIONS ping) with a fresh
    From tag and Call-ID; the endpoint adds the Via when it sends it."""
    h = Headers()
    display = f"{from_display} " if from_display else ""
    h.set("from", f"{display}<{from_uri}>;tag={new_tag()}")
    h.set("to", f"<{to_uri or uri}>")
    h.set("call-id", call_id or new_call_id())
    h.set("cseq", f"{cseq} {method}")
    h.set("max-forwards", "70")
    if contact:
        h.set("contact", f"<{contact}>")
    if content_type and body:
        h.set("content-type", content_type)
    for name, value in headers:
        h.add(name, value)
    return Request(method, uri, h, body)
