"""Thin asyncio adapters feeding an `Endpoint` from UDP and TCP sockets (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from typing import cast

from .endpoint import Endpoint, Transmission
from .events import Address, Event

log = logging.getLogger(__name__)

EventHandler = Callable[[Event], None]


class SipTransport:
    """Owns the sockets of one endpoint, one re-armed timer, and the event dispatch.

    ``on_event`` runs synchronously for each endpoint event; whatever it sends
    through the endpoint goes out right after. Code that calls the endpoint from
    elsewhere (a task, a callback) passes ``transport.now()`` and then calls
    `flush`. An exception in ``on_event`` is logged, never propagated into the
    loop's socket callbacks.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        on_event: EventHandler,
        *,
        idle_timeout: float = 300.0,
        max_connections: int = 1024,
        connect_timeout: float = 5.0,
        udp_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        self.udp_buffer = udp_buffer
        self.endpoint = endpoint
        self.on_event = on_event
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._loop = asyncio.get_running_loop()
        self._udp: dict[bool, asyncio.DatagramTransport] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: dict[int, _StreamConnection] = {}
        self._by_address: dict[Address, int] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._delivering = False  # inside flush()'s event delivery
        self.dropped_connections = 0

    def now(self) -> float:
        return self._loop.time()

    # ---------------------------------------------------------------- listening
    async def listen_udp(self, host: str, port: int) -> Address:
        """Bind a UDP socket; returns the bound (host, port) (port 0 picks a free one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        infos = await self._loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host!r}")
        # The socket is ours (not the loop's) so that the protocol can drain it.
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # Bursts at high call rates overflow the default buffer; the kernel caps this.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.udp_buffer)
            sock.bind(infos[0][4])
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self, sock), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        bound = transport.get_extra_info("sockname")[:2]
        self._udp[":" in host] = transport
        self.endpoint.set_local_address("udp", bound[0], bound[1])
        return (bound[0], bound[1])

    async def listen_tcp(self, host: str, port: int) -> Address:
        """Listen for TCP connections; returns the bound (host, port)."""
        server = await self._loop.create_server(
            lambda: _StreamConnection(self, None), host=host, port=port, reuse_address=True
        )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[:2]
        self.endpoint.set_local_address("tcp", bound[0], bound[1])
        if self._sweeper is None and self.idle_timeout > 0:
            self._sweeper = self._loop.call_later(self.idle_timeout / 4, self._sweep_idle)
        return (bound[0], bound[1])

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for udp in self._udp.values():
            udp.close()
        for conn in list(self._connections.values()):
            conn.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ engine
    def flush(self) -> None:
        """Deliver pending events, send pending bytes, re-arm the timer.

        Called again from an event handler, it sends what that handler produced
        at once and leaves the remaining events to the delivery in progress, so
        events are delivered one at a time and in order.
        """
        endpoint = self.endpoint
        if not self._delivering:
            self._delivering = True
            try:
                while True:
                    event = endpoint.next_event()
                    if event is None:
                        break
                    try:
                        self.on_event(event)
                    except Exception:
                        log.exception("SIP event handler failed on %r", type(event).__name__)
            finally:
                self._delivering = False
        for transmission in endpoint.datagrams_to_send():
            self._send(transmission)
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.endpoint.get_timer()
        if when is None:
            return
        if self._timer is not None and self._timer_when is not None and self._timer_when <= when:
            return  # an earlier wake-up is pending; it will re-arm
        if self._timer is not None:
            self._timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        if self._closed:
            return
        try:
            self.endpoint.handle_timer(self._loop.time())
        except Exception:
            log.exception("SIP timer handling failed")
        self.flush()

    def _send(self, item: Transmission) -> None:
        if item.transport == "udp":
            udp = self._udp.get(":" in item.address[0])
            if udp is None:
                self.endpoint.transport_error(item.address, "udp", None, "no UDP socket for "
                                              "this address family", self.now())
                return
            try:
                udp.sendto(item.data, item.address)
            except OSError as exc:
                self.endpoint.transport_error(item.address, "udp", None, str(exc), self.now())
            return
        conn = self._connections.get(item.connection) if item.connection is not None else None
        if conn is None:
            conn_id = self._by_address.get(item.address)
            conn = self._connections.get(conn_id) if conn_id is not None else None
        if conn is not None:
            conn.write(item.data)
            return
        pending = self._connecting.get(item.address)
        if pending is not None:
            pending.append(item.data)
            return
        self._connecting[item.address] = [item.data]
        task = self._loop.create_task(self._connect(item.address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, address: Address) -> None:
        try:
            _, protocol = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: _StreamConnection(self, address), address[0], address[1]
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            self._connecting.pop(address, None)
            self.endpoint.transport_error(address, "tcp", None, f"connect failed: {exc!r}",
                                          self.now())
            self.flush()
            return
        for data in self._connecting.pop(address, []):
            protocol.write(data)
        self.flush()

    def _sweep_idle(self) -> None:
        now = self.now()
        for conn in list(self._connections.values()):
            if now - conn.last_activity > self.idle_timeout:
                conn.close()
        if not self._closed:
            self._sweeper = self._loop.call_later(self.idle_timeout / 4, self._sweep_idle)

    # Callbacks from the protocols
    def _datagram(self, data: bytes, address: Address) -> None:
        try:
            self.endpoint.receive_datagram(data, (address[0], address[1]), self._loop.time())
        except Exception:
            log.exception("SIP datagram handling failed")
        self.flush()

    def _register(self, conn: _StreamConnection) -> bool:
        if len(self._connections) >= self.max_connections:
            self.dropped_connections += 1
            return False
        conn.id = next(self._ids)
        self._connections[conn.id] = conn
        if conn.peer is not None:
            self._by_address[conn.peer] = conn.id
            self.endpoint.stream_connected(conn.peer, "tcp", conn.id)
        return True

    def _stream_data(self, conn: _StreamConnection, data: bytes) -> None:
        assert conn.peer is not None
        try:
            keep = self.endpoint.receive_stream_data(conn.id, data, conn.peer, self._loop.time())
        except Exception:
            log.exception("SIP stream handling failed")
            keep = False
        self.flush()
        if not keep:
            conn.close()

    def _stream_closed(self, conn: _StreamConnection) -> None:
        if self._connections.pop(conn.id, None) is None:
            return
        if conn.peer is not None and self._by_address.get(conn.peer) == conn.id:
            del self._by_address[conn.peer]
        self.endpoint.connection_closed(conn.id, self.now())
        if not self._closed:
            self.flush()


#: SIP datagrams read per wake-up of the socket, beyond the one the loop delivered.
DRAIN_LIMIT = 256


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        owner = self.owner
        owner._datagram(data, addr)
        # The loop reads a few dozen datagrams per wake-up of a socket (libuv: 32), one
        # socket among the thousand a node's media uses. At two hundred calls a second
        # that fell behind the SIP arriving whenever a turn of the loop took over 20 ms,
        # and INVITEs queued in the socket for hundreds of milliseconds: signalling is
        # read to the end here instead, ahead of media.
        sock = self.sock
        for _ in range(DRAIN_LIMIT):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an error for the loop's own read to report
            owner._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on an unconnected socket say little about which peer; ignore.
        log.debug("UDP error: %s", exc)


class _StreamConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransport, peer: Address | None) -> None:
        self.owner = owner
        self.peer = peer
        self.id = 0
        self.transport: asyncio.Transport | None = None
        self.last_activity = owner.now()
        self.registered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass; both work the same.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer is not None:
            self.peer = (peer[0], peer[1])
        if not self.owner._register(self):
            self.transport.abort()
            return
        self.registered = True

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.owner.now()
        if self.registered:
            self.owner._stream_data(self, data)

    def write(self, data: bytes) -> None:
        self.last_activity = self.owner.now()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.registered:
            self.registered = False
            self.owner._stream_closed(self)
