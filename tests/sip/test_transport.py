"""The asyncio adapters over real loopback sockets: framing, limits, bad input, idle timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from callcontrol.sip import (
    Endpoint,
    Event,
    Request,
    RequestReceived,
    SipTransport,
    TransportError,
    parse_message,
)

from .conftest import invite_bytes


class Recorder:
    """A transaction user answering OPTIONS 200 and remembering events."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.transport: SipTransport | None = None
        self.explode = False

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self.explode:
            raise RuntimeError("handler bug")
        if isinstance(event, RequestReceived) and self.transport is not None:
            self.transport.endpoint.respond(event.request, 200, self.transport.now())


@pytest.fixture
async def server() -> AsyncIterator[tuple[SipTransport, Recorder, int]]:
    recorder = Recorder()
    transport = SipTransport(Endpoint(), recorder, max_connections=3, idle_timeout=0.4)
    recorder.transport = transport
    _, _port = await transport.listen_udp("127.0.0.1", 0)
    await transport.listen_tcp("127.0.0.1", 0)
    # TCP listens on its own free port.
    tcp_port = transport._servers[0].sockets[0].getsockname()[1]
    yield transport, recorder, tcp_port
    await transport.close()


def options(branch: str, transport: str = "TCP") -> bytes:
    return invite_bytes(method="OPTIONS", branch=branch, transport=transport)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


async def udp_exchange(port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, data, ("127.0.0.1", port))
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
        return reply


async def test_udp_bad_request_gets_400_and_server_keeps_going(
        server: tuple[SipTransport, Recorder, int]) -> None:
    transport, _recorder, _ = server
    udp_port = transport.endpoint._local[("udp", False)][1]
    reply = await udp_exchange(udp_port, b"NOT SIP AT ALL\r\n\r\n")
    assert reply.startswith(b"SIP/2.0 400 ")
    reply = await udp_exchange(udp_port, options("z9hG4bKu1", "UDP"))
    assert reply.startswith(b"SIP/2.0 200 ")
    assert b";rport=" in reply  # rport filled with our source port


async def test_tcp_segments_are_reassembled(server: tuple[SipTransport, Recorder, int]) -> None:
    _, _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = options("z9hG4bKt1")
    for i in range(0, len(data), 40):
        writer.write(data[i : i + 40])
        await writer.drain()
        await asyncio.sleep(0.005)
    assert (await read_message(reader)).startswith(b"SIP/2.0 200 ")
    writer.write(options("z9hG4bKt2") + options("z9hG4bKt3"))  # two in one segment
    first, second = await read_message(reader), await read_message(reader)
    assert b"z9hG4bKt2" in first and b"z9hG4bKt3" in second
    writer.close()


async def test_tcp_framing_error_answers_400_and_closes(
        server: tuple[SipTransport, Recorder, int]) -> None:
    _, _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(options("z9hG4bKbad").replace(b"Content-Length: 0", b"Content-Length: x"))
    reply = await read_message(reader)
    assert reply.startswith(b"SIP/2.0 400 ")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()


async def test_tcp_oversize_gets_513_and_close(
        server: tuple[SipTransport, Recorder, int]) -> None:
    _, _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"INVITE sip:a@b SIP/2.0\r\nX-Pad: " + b"a" * 70_000)
    reply = await read_message(reader)
    assert reply.startswith(b"SIP/2.0 513 ")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_connection_cap_and_idle_timeout(
        server: tuple[SipTransport, Recorder, int]) -> None:
    transport, _, port = server
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
    # Over the cap: the server drops the connection at once.
    assert await asyncio.wait_for(extra_reader.read(), 5) == b""
    assert transport.dropped_connections == 1
    # The others are idle: the sweep closes them (idle_timeout=0.4 s).
    for reader, _ in conns:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    assert transport.connection_count == 0
    for _, writer in [*conns, (extra_reader, extra_writer)]:
        writer.close()


async def test_handler_exception_does_not_escape(
        server: tuple[SipTransport, Recorder, int]) -> None:
    transport, recorder, _ = server
    udp_port = transport.endpoint._local[("udp", False)][1]
    recorder.explode = True
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, options("z9hG4bKx1", "UDP"), ("127.0.0.1", udp_port))
        await asyncio.sleep(0.2)
    assert any(isinstance(e, RequestReceived) for e in recorder.events)
    recorder.explode = False
    reply = await udp_exchange(udp_port, options("z9hG4bKx2", "UDP"))
    assert reply.startswith(b"SIP/2.0 200 ")


async def test_tcp_request_to_closed_port_raises_transport_error() -> None:
    recorder = Recorder()
    transport = SipTransport(Endpoint(), recorder)
    await transport.listen_tcp("127.0.0.1", 0)
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead_port = probe.getsockname()[1]
        request = invite_bytes(method="OPTIONS")
        message = parse_message(request)
        assert isinstance(message, Request)
        message.headers.remove("via")
        transport.endpoint.send_request(message, ("127.0.0.1", dead_port), transport.now(),
                                        transport="tcp")
        transport.flush()
        for _ in range(50):
            if any(isinstance(e, TransportError) for e in recorder.events):
                break
            await asyncio.sleep(0.05)
        assert any(isinstance(e, TransportError) for e in recorder.events)
    finally:
        await transport.close()


def test_tcp_and_udp_under_uvloop() -> None:
    import uvloop  # a dependency of the project (pyproject.toml)

    async def scenario() -> tuple[bytes, bytes]:
        recorder = Recorder()
        transport = SipTransport(Endpoint(), recorder)
        recorder.transport = transport
        _, udp_port = await transport.listen_udp("127.0.0.1", 0)
        _, tcp_port = await transport.listen_tcp("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
            writer.write(options("z9hG4bKuv1"))
            tcp_reply = await read_message(reader)
            writer.close()
            udp_reply = await asyncio.to_thread(blocking_udp_exchange, udp_port,
                                                options("z9hG4bKuv2", "UDP"))
        finally:
            await transport.close()
        return tcp_reply, udp_reply

    tcp_reply, udp_reply = uvloop.run(scenario())
    assert tcp_reply.startswith(b"SIP/2.0 200 ") and udp_reply.startswith(b"SIP/2.0 200 ")


def blocking_udp_exchange(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


async def _burst_read_in_one_turn() -> int:
    """How many of 100 queued UDP requests are handled within two turns of the loop."""
    recorder = Recorder()
    transport = SipTransport(Endpoint(), recorder)
    recorder.transport = transport
    _, port = await transport.listen_udp("127.0.0.1", 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for i in range(100):  # all queued before the loop runs again
                sock.sendto(options(f"z9hG4bKburst{i}", "UDP"), ("127.0.0.1", port))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return sum(isinstance(e, RequestReceived) for e in recorder.events)
    finally:
        await transport.close()


async def test_queued_udp_requests_are_all_read_at_once() -> None:
    # The standard loop reads one datagram per turn, uvloop 32: signalling must not
    # wait behind a busy loop's other sockets.
    assert await _burst_read_in_one_turn() == 100


def test_queued_udp_requests_are_all_read_at_once_under_uvloop() -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_burst_read_in_one_turn()) == 100
