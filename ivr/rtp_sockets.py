"""The asyncio adapter for one call leg: an RTP/RTCP socket pair driving a ``MediaSession``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ivr.errors import MediaError, PortsExhausted
from ivr.events import Address, MediaEvent
from ivr.g711 import Codec
from ivr.playback import PTIME
from ivr.ports import PortAllocator
from ivr.session import MediaSession, analyse_inband

_log = logging.getLogger(__name__)

#: A relay handler takes over received datagrams while the leg is bridged.
RelayHandler = Callable[[bytes, Address], None]


def _ignore_datagram(data: bytes, addr: Address) -> None:
    """Where a closed leg's late datagrams go."""


#: Datagrams read from one socket per readiness callback: enough to empty a burst,
#: few enough that one busy leg cannot hold the loop from the others.
READ_BATCH = 32
#: Receive buffer per RTP socket: a few hundred packets queued through a loop stall.
RCVBUF = 1 << 18


class _Socket:
    """One bound, non-blocking UDP socket served by the loop's readiness callback.

    Attaching it is a plain call: a datagram transport's creation takes trips
    round the event loop, and while the loop carries a thousand calls each trip
    lasts milliseconds to tens of them, which fell between a caller's INVITE
    and the carrier's. One readiness callback reads every waiting datagram (up
    to ``READ_BATCH``). ``datagram_received`` is the handler of each datagram,
    replaced per leg and per state (session, relay, ignored when closed).
    """

    __slots__ = ("_fd", "_loop", "datagram_received", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.sock = sock
        self._loop = loop
        self._fd = sock.fileno()
        self.datagram_received: Callable[[bytes, Address], None] = _ignore_datagram
        loop.add_reader(self._fd, self._readable)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP port unreachable from a peer that went away, or the socket
                # closed by the handler of the last datagram: the inactivity
                # timeout handles a dead peer, one error must not end the leg.
                return
            self.datagram_received(data, addr)

    def sendto(self, data: bytes, address: Address) -> None:
        try:  # noqa: SIM105 - per packet: suppress() would build a context manager each time
            self.sock.sendto(data, address)
        except OSError:
            # A full send buffer (EAGAIN), an ICMP error or a closed socket: RTP
            # is never retransmitted, so the packet is lost like one on the wire.
            pass

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
            self.sock.close()
        self.datagram_received = _ignore_datagram


class MediaClock:
    """One timer per event loop that sends the due prompt frames of every playing leg.

    A 20 ms tick for all legs replaces one loop timer per packet per leg. Frame
    times still come from each prompt's start (``PromptPlayer``), so pacing does
    not drift; each tick sends the frames due by half a tick after its scheduled
    time, which is exactly one frame per leg per tick whatever the loop's
    lateness (a frame leaves at most half a tick from its nominal time).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._legs: dict[RtpEndpoint, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0

    @property
    def playing(self) -> int:
        """How many legs the clock is pacing."""
        return len(self._legs)

    def add(self, leg: RtpEndpoint) -> None:
        self._legs[leg] = None
        if self._handle is None:
            self._next = self.loop.time() + PTIME
            self._handle = self.loop.call_at(self._next, self._tick)

    def discard(self, leg: RtpEndpoint) -> None:
        self._legs.pop(leg, None)

    def _tick(self) -> None:
        now = self.loop.time()
        scheduled = self._next
        if now - scheduled >= PTIME:  # the loop stalled: rejoin the grid, the players skip
            scheduled += PTIME * int((now - scheduled) / PTIME)
        at = scheduled + PTIME / 2
        for leg in list(self._legs):
            leg._on_clock(at)
        if not self._legs:
            self._handle = None
            if _clocks.get(self.loop) is self:
                del _clocks[self.loop]
            return
        self._next = scheduled + PTIME
        self._handle = self.loop.call_at(self._next, self._tick)


_clocks: dict[asyncio.AbstractEventLoop, MediaClock] = {}


def media_clock(loop: asyncio.AbstractEventLoop) -> MediaClock | None:
    """The loop's media clock while any leg is playing, else None."""
    return _clocks.get(loop)


def _clock_of(loop: asyncio.AbstractEventLoop) -> MediaClock:
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = MediaClock(loop)
    return clock


class RtpEndpoint:
    """One leg's media on a local port pair.

    Events (DTMF, playback finished, peer learned, timed out, RTCP reports) go
    to ``on_event`` when given, else into the ``events`` queue.
    """

    def __init__(
        self,
        session: MediaSession,
        port: int,
        rtp: _Socket,
        rtcp: _Socket,
        loop: asyncio.AbstractEventLoop,
        allocator: PortAllocator | None,
        on_event: Callable[[MediaEvent], None] | None,
    ) -> None:
        self.session = session
        self.port = port
        self._rtp = rtp
        self._rtcp = rtcp
        self.loop = loop
        self._allocator = allocator
        self._on_event = on_event
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: The shared clock pacing this leg's prompt, while one plays.
        self._clock: MediaClock | None = None
        self.relay: RelayHandler | None = None
        self.relay_rtcp: RelayHandler | None = None
        self.closed = False
        rtp.datagram_received = self._on_rtp
        rtcp.datagram_received = self._on_rtcp
        self._rtp_sendto: Callable[[bytes, Address], None] = rtp.sendto
        session.inband_queue = self._queue_inband

    @classmethod
    async def open(
        cls,
        codec: Codec,
        *,
        host: str = "127.0.0.1",
        allocator: PortAllocator | None = None,
        port: int | None = None,
        spares: SparePairs | None = None,
        remote: Address | None = None,
        on_event: Callable[[MediaEvent], None] | None = None,
        **session_options: Any,
    ) -> RtpEndpoint:
        """Bind an RTP/RTCP pair on ``port`` or on the next free pair of ``allocator``,
        or take one ``spares`` bound ahead. On an address literal it never suspends; a
        host name is resolved first.

        Raises ``PortsExhausted`` (answer 503) when no pair can be bound; a
        port taken by another program is skipped, and nothing is left
        allocated on failure.
        """
        loop = asyncio.get_running_loop()
        if spares is not None:
            if allocator is not None and allocator is not spares.allocator:
                raise ValueError("spares come from their own allocator")
            allocator = spares.allocator
            if host == spares.host:
                leg = cls.take_spare(codec, spares, remote=remote, on_event=on_event,
                                     **session_options)
                if leg is not None:
                    return leg
        if (allocator is None) == (port is None):
            raise ValueError("give exactly one of allocator or port")
        address = host if _is_address(host) else await _address_of(loop, host)
        attempts = allocator.capacity if allocator is not None else 1
        last_error: OSError | None = None
        for _ in range(attempts):
            p = allocator.allocate() if allocator is not None else port
            assert p is not None
            try:
                rtp, rtcp = _bind_pair(loop, address, p)
            except OSError as exc:
                if allocator is not None:
                    allocator.release(p)
                if exc.errno != errno.EADDRINUSE:
                    raise MediaError(f"cannot bind RTP port {p} on {host}: {exc}") from exc
                last_error = exc
                continue
            return cls._opened(loop, codec, p, rtp, rtcp, allocator, remote, on_event,
                               session_options)
        raise PortsExhausted(f"no free RTP port pair could be bound on {host}: {last_error}")

    @classmethod
    def take_spare(
        cls,
        codec: Codec,
        spares: SparePairs,
        *,
        remote: Address | None = None,
        on_event: Callable[[MediaEvent], None] | None = None,
        **session_options: Any,
    ) -> RtpEndpoint | None:
        """A leg on a pair ``spares`` bound ahead (on ``spares.host``), at once, with no
        system call; None when none is ready (then ``open`` binds one)."""
        pair = spares.take()
        if pair is None:
            return None
        return cls._opened(asyncio.get_running_loop(), codec, *pair, spares.allocator, remote,
                           on_event, session_options)

    @classmethod
    def _opened(
        cls,
        loop: asyncio.AbstractEventLoop,
        codec: Codec,
        port: int,
        rtp: _Socket,
        rtcp: _Socket,
        allocator: PortAllocator | None,
        remote: Address | None,
        on_event: Callable[[MediaEvent], None] | None,
        session_options: dict[str, Any],
    ) -> RtpEndpoint:
        session = MediaSession(
            codec,
            ssrc=random.getrandbits(32),
            now=loop.time(),
            remote=remote,
            wall_clock_offset=time.time() - loop.time(),
            **session_options,
        )
        ep = cls(session, port, rtp, rtcp, loop, allocator, on_event)
        ep._service()
        return ep

    # -- control -----------------------------------------------------------

    def configure(
        self,
        *,
        codec: Codec,
        remote: Address,
        telephone_event_pt: int | None,
        remote_rtcp: Address | None = None,
    ) -> None:
        """Apply the SDP answer: codec, the peer's media address, telephone-event type."""
        self.session.configure(
            codec=codec, remote=remote, telephone_event_pt=telephone_event_pt,
            remote_rtcp=remote_rtcp,
        )
        self._service()

    def play(self, payload: bytes) -> None:
        """Play encoded audio (use ``PromptCatalogue.encoded(seq, codec)``)."""
        self.session.play(payload, self.loop.time())
        self._service()

    def stop_playback(self) -> None:
        self.session.stop_playback(self.loop.time())
        self._service()

    def send_digit(self, digit: str, duration_ms: int = 160) -> None:
        self.session.send_digit(digit, self.loop.time(), duration_ms)
        self._service()

    def dtmf_info(self, digit: str, duration_ms: int = 0) -> None:
        """Hand over a key press that arrived in a SIP INFO."""
        self.session.receive_dtmf_info(digit, duration_ms, self.loop.time())
        self._service()

    def send_raw(self, data: bytes, address: Address) -> None:
        if not self.closed:
            self._rtp.sendto(data, address)

    def send_raw_rtcp(self, data: bytes, address: Address) -> None:
        if not self.closed:
            self._rtcp.sendto(data, address)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._leave_clock()
        # Closing the sockets also drops their handlers, which cuts the endpoint <->
        # socket cycles: a finished leg is freed at once by reference counting
        # instead of piling up for a full garbage collection that stalls every call.
        _close_pair(self._rtp, self._rtcp)
        self.relay = None
        self.relay_rtcp = None
        self._on_event = None
        self._rtp_sendto = _ignore_datagram
        self.session.inband_queue = None  # the session <-> endpoint cycle
        if self._allocator is not None:
            self._allocator.release(self.port)

    # -- plumbing ------------------------------------------------------------

    def divert(self, rtp: RelayHandler, rtcp: RelayHandler) -> None:
        """Hand received datagrams straight to a relay (bridging) instead of the session."""
        self.relay = rtp
        self.relay_rtcp = rtcp
        # The relay is the sockets' handler itself: no call through the leg per packet.
        self._rtp.datagram_received = rtp
        self._rtcp.datagram_received = rtcp
        self.suspend_timer()
        self._leave_clock()

    def undivert(self) -> None:
        self.relay = None
        self.relay_rtcp = None
        self._rtp.datagram_received = self._on_rtp
        self._rtcp.datagram_received = self._on_rtcp
        self.resume()

    @property
    def sendto(self) -> Callable[[bytes, Address], None]:
        """The RTP socket's ``sendto``, for the relay's per-packet path."""
        if self.closed:
            return _ignore_datagram
        return self._rtp.sendto

    def _on_rtp(self, data: bytes, addr: Address) -> None:
        # Plain audio that raised no event needs no servicing: its only effect on
        # the timer is a later inactivity deadline, and the armed timer re-arms.
        if self.session.receive_rtp(data, addr, self.loop.time()):
            self._service()

    def _on_rtcp(self, data: bytes, addr: Address) -> None:
        self.session.receive_rtcp(data, addr, self.loop.time())
        self._service()

    def _service(self) -> None:
        """Send what the session produced, deliver its events, re-arm its one timer."""
        if self.closed:
            return
        now = self.loop.time()
        for out in self.session.datagrams_to_send(now):
            (self._rtcp if out.rtcp else self._rtp).sendto(out.data, out.address)
        while (ev := self.session.next_event()) is not None:
            if self._on_event is not None:
                self._on_event(ev)
            else:
                self.events.put_nowait(ev)
        if self.relay is not None:
            return  # bridged: the bridge owns timing
        if self.session.playing:
            if self._clock is None:
                self._clock = _clock_of(self.loop)
                self._clock.add(self)
        elif self._clock is not None:
            self._leave_clock()
        when = self.session.get_timer(playback=False)
        # Re-arm only to fire earlier: a timer that fires early finds nothing due
        # and re-arms, which is cheaper than re-arming on every packet (each one
        # moves the inactivity deadline).
        if when is not None and (self._timer_at is None or when < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def _on_clock(self, at: float) -> None:
        """A media clock tick: send the prompt frames due by ``at``."""
        if self.closed or self.relay is not None:
            self._leave_clock()
            return
        session = self.session
        data = session.prompt_packet(at)
        if data is not None:
            # prompt_packet gives a packet only when the peer's address is known.
            self._rtp_sendto(data, session.remote)  # type: ignore[arg-type]
            return
        for out in session.datagrams_to_send(at):
            (self._rtcp if out.rtcp else self._rtp).sendto(out.data, out.address)
        if not session.playing:
            self._service()  # the prompt ended: its event goes out, the leg leaves the clock
        else:
            while (ev := session.next_event()) is not None:
                if self._on_event is not None:
                    self._on_event(ev)
                else:
                    self.events.put_nowait(ev)

    def _queue_inband(self, session: MediaSession) -> None:
        # Every leg with audio to analyse in this turn of the loop is analysed at
        # its end, in one pass (the numpy calls cost more than their arithmetic).
        legs = _inband_waiting.get(self.loop)
        if legs is None:
            legs = _inband_waiting[self.loop] = []
            self.loop.call_soon(_analyse_waiting, self.loop)
        legs.append(self)

    def _leave_clock(self) -> None:
        if self._clock is not None:
            self._clock.discard(self)
            self._clock = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.session.handle_timer(self.loop.time())
        self._service()

    def suspend_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def resume(self) -> None:
        self._service()


_inband_waiting: dict[asyncio.AbstractEventLoop, list[RtpEndpoint]] = {}


def _analyse_waiting(loop: asyncio.AbstractEventLoop) -> None:
    legs = [leg for leg in _inband_waiting.pop(loop, ()) if not leg.closed]
    heard = analyse_inband([leg.session for leg in legs], loop.time())
    for leg, digit in zip(legs, heard, strict=True):
        if digit:
            leg._service()


#: Spare pairs bound per turn of the loop while refilling: a refill never holds
#: the loop for long.
BIND_BATCH = 16


class SparePairs:
    """RTP/RTCP socket pairs bound ahead of need, from an allocator's range.

    A leg opened from a spare costs no system call on the call's path; each
    one taken starts the binding of its replacement on the next turn of the
    loop, ``BIND_BATCH`` pairs at a time. Spares count as ports in use. A host
    name is resolved once, through the loop's resolver.
    """

    def __init__(self, allocator: PortAllocator, host: str, target: int = 128) -> None:
        self.allocator = allocator
        self.host = host
        # Spares are neither free nor in a call: a small range keeps few of them, so
        # a leg asking for a pair does not find the range exhausted by spares.
        self.target = max(0, min(target, max(1, allocator.capacity // 16)))
        self._ready: deque[tuple[int, _Socket, _Socket]] = deque()
        self._address: str | None = host if _is_address(host) else None
        self._pending: asyncio.Handle | asyncio.Task[None] | None = None
        self.closed = False

    @property
    def ready(self) -> int:
        """Pairs bound and waiting for a leg."""
        return len(self._ready)

    def take(self) -> tuple[int, _Socket, _Socket] | None:
        """A bound pair (port, RTP, RTCP) if one is ready; replacements start binding."""
        pair = self._ready.popleft() if self._ready else None
        self.fill()
        return pair

    def fill(self) -> None:
        """Start binding pairs until ``target`` are ready."""
        if self.closed or self._pending is not None or len(self._ready) >= self.target:
            return
        loop = asyncio.get_running_loop()
        if self._address is None:
            self._pending = loop.create_task(self._resolve(loop))
        else:
            self._pending = loop.call_soon(self._bind_some, loop, self._address)

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._address = await _address_of(loop, self.host)
        except (OSError, MediaError) as exc:
            _log.warning("cannot resolve the media host %s: %s", self.host, exc)
            return
        finally:
            self._pending = None
        self.fill()

    def _bind_some(self, loop: asyncio.AbstractEventLoop, address: str) -> None:
        self._pending = None
        if self.closed:
            return
        bound = 0
        for _ in range(min(BIND_BATCH, self.target - len(self._ready))):
            try:
                port = self.allocator.allocate()
            except PortsExhausted:
                return  # calls hold every port; the next leg taken tries again
            try:
                rtp, rtcp = _bind_pair(loop, address, port)
            except OSError as exc:
                # Taken by another program: the next pair is tried.
                self.allocator.release(port)
                if exc.errno != errno.EADDRINUSE:
                    _log.warning("cannot bind a spare RTP pair on %s:%d: %s", address, port, exc)
                continue
            self._ready.append((port, rtp, rtcp))
            bound += 1
        if bound:  # a batch that bound nothing waits for the next leg taken
            self.fill()

    def close(self) -> None:
        """Unbind every spare and stop binding more."""
        self.closed = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        while self._ready:
            port, rtp, rtcp = self._ready.popleft()
            _close_pair(rtp, rtcp)
            self.allocator.release(port)


def _close_pair(rtp: _Socket, rtcp: _Socket) -> None:
    rtp.close()
    rtcp.close()


async def _address_of(loop: asyncio.AbstractEventLoop, host: str) -> str:
    """An address literal to bind for ``host``; a name goes through the loop's resolver."""
    if _is_address(host):
        return host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise MediaError(f"media host {host!r} has no address")
    return str(infos[0][4][0])


def _bind_pair(loop: asyncio.AbstractEventLoop, address: str, port: int) -> tuple[_Socket, _Socket]:
    """The RTP and RTCP sockets on ``port`` and ``port + 1`` of an address literal,
    bound and attached to the loop at once (no trip round the loop)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.bind((address, p))
        with contextlib.suppress(OSError):
            socks[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        rtp = _Socket(loop, socks[0])
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    try:
        rtcp = _Socket(loop, socks[1])
    except BaseException:
        rtp.close()
        socks[1].close()
        raise
    return rtp, rtcp


@functools.lru_cache(maxsize=64)
def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
