"""A minimal user agent on the endpoint: answers calls and places calls (interop and load)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .dialog import Dialog, initial_request, new_tag
from .endpoint import Endpoint
from .errors import SipError, TransactionStateError
from .events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    Event,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from .message import Request, make_response
from .sdp import SessionDescription, answer_offer
from .transport import SipTransport


@dataclass
class AgentCounters:
    invites: int = 0
    answered: int = 0
    acked: int = 0
    byes: int = 0
    cancelled: int = 0
    rejected: int = 0
    calls_placed: int = 0
    calls_completed: int = 0
    calls_failed: int = 0


class AnsweringAgent:
    """Answers every INVITE with 200 (SDP answer from ``answer_sdp``), BYE/INFO/UPDATE/OPTIONS
    with 200, and can place calls (INVITE, ACK, BYE after ``hold`` seconds) as a UAC.

    It is the transaction user: feed it the endpoint's events through `handle`.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        contact: str,
        answer_sdp: Callable[[bytes], bytes] | None = None,
        ring: bool = False,
        answer_after: float = 0.0,
    ) -> None:
        self.endpoint = endpoint
        self.answer_after = answer_after
        self.contact = contact
        self.answer_sdp = answer_sdp
        self.ring = ring
        self.counters = AgentCounters()
        self.now: Callable[[], float] = lambda: 0.0
        self.flush: Callable[[], None] = lambda: None
        self._hold = 0.0
        self._outgoing: dict[str, tuple[Request, tuple[str, int], str]] = {}
        self._done: dict[str, asyncio.Future[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- UAS side
    def handle(self, event: Event) -> None:
        now = self.now()
        ep = self.endpoint
        c = self.counters
        if isinstance(event, RequestReceived):
            request = event.request
            method = request.method
            if method == "INVITE":
                if event.dialog is None:
                    c.invites += 1
                    self._answer_invite(request, now)
                else:  # re-INVITE: answer the new offer
                    self._answer_in_dialog(request, now)
            elif method == "BYE":
                c.byes += 1
                ep.respond(request, 200, now)
                if event.dialog is not None:
                    ep.remove_dialog(event.dialog)
            elif method == "UPDATE":
                self._answer_in_dialog(request, now)
            else:  # OPTIONS, INFO
                ep.respond(request, 200, now, headers=[("Allow", ", ".join(ep.allow))])
        elif isinstance(event, AckReceived):
            c.acked += 1
        elif isinstance(event, CancelReceived):
            c.cancelled += 1
        elif isinstance(event, AckTimedOut):
            pass
        elif isinstance(event, MessageRejected):
            c.rejected += 1
        elif isinstance(event, ResponseReceived):
            self._uac_response(event, now)
        elif isinstance(event, (TransactionTimedOut, TransportError)):
            self._finish(event.transaction_id, 408 if isinstance(event, TransactionTimedOut)
                         else 503)

    def _answer_in_dialog(self, request: Request, now: float) -> None:
        """re-INVITE or UPDATE: 200 with an answer to any offer, 488 to a bad one."""
        try:
            body = self._sdp(request)
        except SipError as exc:
            self.endpoint.respond(request, exc.status, now, f"{exc.reason} ({exc})")
            return
        headers = [("Contact", f"<{self.contact}>")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.endpoint.respond(request, 200, now, headers=headers, body=body)

    def _sdp(self, request: Request) -> bytes:
        if self.answer_sdp is None or not request.body:
            return b""
        return self.answer_sdp(request.body)

    def _answer_invite(self, request: Request, now: float) -> None:
        ep = self.endpoint
        tag = new_tag()
        try:
            body = self._sdp(request)
        except SipError as exc:
            ep.respond(request, exc.status, now, to_tag=tag)
            return
        if self.ring or self.answer_after > 0:
            ep.respond(request, 180, now, to_tag=tag)
        if self.answer_after > 0:
            asyncio.get_running_loop().call_later(
                self.answer_after, self._later, lambda: self._send_answer(request, tag, body))
            return
        self._send_answer(request, tag, body)

    def _send_answer(self, request: Request, tag: str, body: bytes) -> None:
        ep = self.endpoint
        now = self.now()
        headers = [("Contact", f"<{self.contact}>")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(request, 200, to_tag=tag, headers=headers, body=body)
        try:
            dialog = Dialog.from_uas(request, response, local_contact=self.contact)
        except SipError as exc:
            ep.respond(request, exc.status, now, f"{exc.reason} ({exc})", to_tag=tag)
            return
        try:
            ep.send_response(response, now)
        except TransactionStateError:
            return  # cancelled meanwhile: the endpoint already answered 487
        ep.add_dialog(dialog)
        self.counters.answered += 1

    # ----------------------------------------------------------------- UAC side
    def place_call(
        self, request_uri: str, address: tuple[str, int], *, transport: str = "udp",
        from_uri: str | None = None, body: bytes = b"", hold: float = 0.0,
    ) -> asyncio.Future[int]:
        """Send an INVITE; the future resolves to the final status once the call ended."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = self.now()
        invite = initial_request("INVITE", request_uri, from_uri=from_uri or self.contact,
                                 contact=self.contact, body=body,
                                 content_type="application/sdp")
        tx_id = self.endpoint.send_request(invite, address, now, transport=transport)
        self._outgoing[tx_id] = (invite, address, transport)
        future: asyncio.Future[int] = loop.create_future()
        self._done[tx_id] = future
        self._hold = hold
        self.counters.calls_placed += 1
        return future

    def _uac_response(self, event: ResponseReceived, now: float) -> None:
        response = event.response
        request = event.request
        ep = self.endpoint
        if request.method == "INVITE":
            if response.status < 200:
                return
            if response.status >= 300:
                self._finish(event.transaction_id, response.status)
                return
            entry = self._outgoing.get(event.transaction_id)
            if entry is None:
                return
            _, address, transport = entry
            dialog = Dialog.from_uac(request, response)
            ep.add_dialog(dialog)
            ep.send_ack(dialog.create_ack(request.cseq[0]), address, now, transport=transport)
            bye = dialog.create_request("BYE")
            ep.remove_dialog(dialog)

            def send_bye() -> None:
                bye_tx = ep.send_request(bye, address, self.now(), transport=transport)
                self._done[bye_tx] = self._done.pop(event.transaction_id)
                self._outgoing.pop(event.transaction_id, None)

            if self._hold > 0 and self._loop is not None:
                self._loop.call_later(self._hold, self._later, send_bye)
            else:
                send_bye()
        elif request.method == "BYE" and response.status >= 200:
            self._finish(event.transaction_id, response.status)

    def _later(self, action: Callable[[], None]) -> None:
        action()
        self.flush()

    def _finish(self, tx_id: str, status: int) -> None:
        self._outgoing.pop(tx_id, None)
        future = self._done.pop(tx_id, None)
        if future is not None and not future.done():
            future.set_result(status)
            if 200 <= status < 300:
                self.counters.calls_completed += 1
            else:
                self.counters.calls_failed += 1


async def start_agent(
    host: str, *, udp_port: int | None = 0, tcp_port: int | None = None,
    answer_sdp: Callable[[bytes], bytes] | None = None, endpoint: Endpoint | None = None,
    ring: bool = False, media_port: int = 40000, answer_after: float = 0.0,
) -> tuple[AnsweringAgent, SipTransport]:
    """Listen on ``host`` (UDP and/or TCP) with an `AnsweringAgent` as transaction user."""
    endpoint = endpoint or Endpoint()
    if answer_sdp is None:
        answer_sdp = audio_answerer(host, media_port)
    agent = AnsweringAgent(endpoint, contact="sip:agent@127.0.0.1", answer_sdp=answer_sdp,
                           ring=ring, answer_after=answer_after)
    transport = SipTransport(endpoint, agent.handle)
    agent.now = transport.now
    agent.flush = transport.flush
    bound: tuple[str, int] | None = None
    if udp_port is not None:
        bound = await transport.listen_udp(host, udp_port)
    if tcp_port is not None:
        bound = await transport.listen_tcp(host, tcp_port)
    if bound is not None:
        h = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        agent.contact = f"sip:agent@{h}:{bound[1]}"
    return agent, transport


def audio_answerer(address: str, media_port: int) -> Callable[[bytes], bytes]:
    """An SDP answerer for `AnsweringAgent`: accepts PCMU/PCMA offers, else `SdpError` (488)."""

    def answer(offer: bytes) -> bytes:
        sdp, _ = answer_offer(SessionDescription.parse(offer), address, media_port)
        return sdp.serialize()

    return answer
