"""A real controller on UDP answers each INVITE it turns away with the same bytes as always.

The facility's INVITEs come from a plain socket; each final answer is
compared whole (status line and every header, the random To tag masked),
so a refactor of where these answers are decided cannot change the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from api.runner import open_account_service
from callcontrol.app import CallController, ControllerSettings, trunks_from_config
from settings.config import load_config

from .conftest import free_port

OFFER = (
    b"v=0\r\no=facility 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    b"m=audio 6070 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
VIDEO_ONLY = (
    b"v=0\r\no=facility 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    b"m=video 6072 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def _invite(sip_port: int, source: tuple[str, int], call_id: str, branch: str, *,
            user: str = "+15125550100", pin: str | None = "100001", contact: bool = True,
            uri: str | None = None, body: bytes = OFFER) -> bytes:
    host, port = source
    target = uri or f"sip:{user}@127.0.0.1:{sip_port}"
    lines = [
        f"INVITE {target} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:station-7@{host}>;tag=ft1",
        f"To: <sip:{user}@127.0.0.1:{sip_port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
    ]
    if contact:
        lines.append(f"Contact: <sip:trunk@{host}:{port}>")
    if pin is not None:
        lines.append(f"X-Inmate-PIN: {pin}")
    lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _masked(data: bytes) -> str:
    text = data.decode()
    return re.sub(r";tag=[^;\r\n]+", ";tag=*", text.split("\r\n\r\n", 1)[0])


@contextlib.asynccontextmanager
async def _controller(demo_config: Path, **settings: Any) -> AsyncIterator[Any]:
    """A real controller on UDP with a silent carrier socket and a facility (.11) socket."""
    config = load_config(demo_config)
    service = await open_account_service(config)
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier.bind(("127.0.0.1", 0))
    facility = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    facility.bind(("127.0.0.11", 0))
    facility.setblocking(False)
    sip_port = free_port()
    controller = CallController(dataclasses.replace(
        ControllerSettings.from_config(config),
        sip_listen=(("udp", "127.0.0.1", sip_port),), carrier=carrier.getsockname(),
        **settings,
    ), service, trunks_from_config(config))
    await controller.start()
    try:
        yield types.SimpleNamespace(controller=controller, service=service, facility=facility,
                                    sip_port=sip_port)
    finally:
        await controller.drain(0)
        await controller.close()
        await service.store.close()
        carrier.close()
        facility.close()


def test_every_admission_answer_on_the_wire(demo_config: Path) -> None:
    async def main() -> dict[str, str]:
        async with _controller(demo_config) as peers:
            return await answers_of(peers)

    async def answers_of(peers: Any) -> dict[str, str]:
        controller, facility, sip_port = peers.controller, peers.facility, peers.sip_port
        # The carrier gateway's own address: a trusted trunk, but not a facility.
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.1", 0))
        stranger.setblocking(False)
        loop = asyncio.get_running_loop()
        answers: dict[str, str] = {}

        async def final(sock: socket.socket, data: bytes) -> str:
            branch = re.search(rb"branch=([^;\r]+)", data)
            assert branch is not None
            sock.sendto(data, ("127.0.0.1", sip_port))
            while True:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                # Skip provisional answers and retransmissions of earlier (un-ACKed) ones.
                if not reply.startswith(b"SIP/2.0 1") and b"branch=" + branch[1] + b";" in reply:
                    return _masked(reply)

        fac = facility.getsockname()
        try:
            answers["no-pin"] = await final(facility, _invite(sip_port, fac, "a1", "b1", pin=None))
            answers["empty-pin"] = await final(facility, _invite(sip_port, fac, "a2", "b2", pin=""))
            answers["garbage"] = await final(facility, _invite(sip_port, fac, "a3", "b3",
                                                               user="abc"))
            answers["short"] = await final(facility, _invite(sip_port, fac, "a4", "b4",
                                                             user="512555"))
            answers["no-contact"] = await final(facility, _invite(sip_port, fac, "a5", "b5",
                                                                  contact=False))
            answers["video"] = await final(facility, _invite(sip_port, fac, "a6", "b6",
                                                             body=VIDEO_ONLY))
            answers["bad-sdp"] = await final(facility, _invite(sip_port, fac, "a7", "b7",
                                                               body=b"v=0\r\nnonsense\r\n"))
            answers["bad-uri"] = await final(facility, _invite(
                sip_port, fac, "a8", "b8", uri="sip:+15125550100@127.0.0.1:99999"))
            answers["not-a-facility"] = await final(stranger, _invite(
                sip_port, stranger.getsockname(), "a9", "b9"))
            # A call in progress (its carrier never answers), then a loop of it.
            facility.sendto(_invite(sip_port, fac, "a10", "b10"), ("127.0.0.1", sip_port))
            for _ in range(100):
                if "a10" in controller.calls:
                    break
                await asyncio.sleep(0.01)
            assert "a10" in controller.calls
            answers["loop"] = await final(facility, _invite(sip_port, fac, "a10", "b11"))
            controller.draining = True
            answers["draining"] = await final(facility, _invite(sip_port, fac, "a12", "b12"))
        finally:
            stranger.close()
        return answers

    answers = asyncio.run(main())

    def head(status: str, call_id: str, branch: str, *extra: str, user: str = "+15125550100",
             host: str = "127.0.0.11") -> list[str]:
        return [f"SIP/2.0 {status}", f"Via: SIP/2.0/UDP {host}:*;branch=z9hG4bK{branch};rport=*",
                f"From: <sip:station-7@{host}>;tag=*", f"To: <sip:{user}@127.0.0.1:*>;tag=*",
                f"Call-ID: {call_id}", "CSeq: 1 INVITE", *extra,
                "Server: ics-controller", "Content-Length: 0"]

    def lines(answer: str) -> list[str]:
        return [re.sub(r"(rport=|127\.0\.0\.1+:)\d+", r"\1*", line)
                for line in answer.split("\r\n")]

    assert lines(answers["no-pin"]) == head(
        "403 Forbidden", "a1", "b1", 'Reason: Q.850;cause=21;text="no PIN"')
    assert lines(answers["empty-pin"]) == head(
        "403 Forbidden", "a2", "b2", 'Reason: Q.850;cause=21;text="no PIN"')
    assert lines(answers["garbage"]) == head(
        "404 Not Found", "a3", "b3", 'Reason: Q.850;cause=1;text="number invalid or not routable"',
        user="abc")
    assert lines(answers["short"]) == head(
        "484 Address Incomplete", "a4", "b4", 'Reason: Q.850;cause=28;text="address incomplete"',
        user="512555")
    assert lines(answers["no-contact"]) == head("400 Bad Request (no Contact)", "a5", "b5")
    assert lines(answers["video"]) == head(
        "488 Not Acceptable Here (offer has no audio stream with PCMU or PCMA over RTP/AVP)",
        "a6", "b6", 'Reason: Q.850;cause=65;text="no usable audio offer"')
    assert lines(answers["bad-sdp"]) == head(
        "488 Not Acceptable Here (malformed SDP line 'nonsense')", "a7", "b7",
        'Reason: Q.850;cause=65;text="no usable audio offer"')
    assert lines(answers["bad-uri"]) == head(
        "400 Bad Request (invalid port in 'sip:+15125550100@127.0.0.1:*')", "a8", "b8")
    assert lines(answers["not-a-facility"]) == head(
        "403 Forbidden", "a9", "b9", 'Reason: Q.850;cause=21;text="facility not allowed"',
        host="127.0.0.1")
    assert lines(answers["loop"]) == head("482 Loop Detected", "a10", "b11")
    assert lines(answers["draining"]) == head(
        "503 Service Unavailable", "a12", "b12", "Retry-After: 30",
        'Reason: Q.850;cause=41;text="service shutting down"')


def test_a_facility_at_its_limit_of_calls_answers_503_and_holds_nothing(
    demo_config: Path,
) -> None:
    """With ``max_concurrent_calls = 1``, a second call while one is placed gets 503 (Q.850 34)."""

    async def main() -> tuple[str, int, int]:
        async with _controller(demo_config, max_calls={"tx-state-prison": 1}) as peers:
            controller, service = peers.controller, peers.service
            facility, sip_port = peers.facility, peers.sip_port
            loop = asyncio.get_running_loop()
            fac = facility.getsockname()
            # The first call is placed: its carrier never answers, so it stays ringing.
            facility.sendto(_invite(sip_port, fac, "c1", "d1"), ("127.0.0.1", sip_port))
            for _ in range(200):
                if "c1" in controller.calls and controller.calls["c1"].flow.state.value in (
                        "dialing", "ringing"):
                    break
                await asyncio.sleep(0.01)
            held_before = len(await service.store.open_reservations())
            facility.sendto(_invite(sip_port, fac, "c2", "d2"), ("127.0.0.1", sip_port))
            while True:
                reply = await asyncio.wait_for(loop.sock_recv(facility, 65535), 5)
                if b"Call-ID: c2" in reply and not reply.startswith(b"SIP/2.0 1"):
                    break
            held_after = len(await service.store.open_reservations())
        return _masked(reply), held_before, held_after

    answer, held_before, held_after = asyncio.run(main())
    first = answer.split("\r\n")
    assert first[0] == "SIP/2.0 503 Service Unavailable", answer
    assert 'Reason: Q.850;cause=34;text="facility at its concurrency limit"' in first, answer
    assert held_before == held_after == 1  # the refused call held no money
