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
from typing import Any, cast

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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: the inactivity
        # timeout handles a dead peer, one error must not end the leg.
        pass


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
        rtp: _Protocol,
        rtcp: _Protocol,
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
        rtp.on_datagram = self._on_rtp
        rtcp.on_datagram = self._on_rtcp
        # Received RTP goes straight to the leg: one Python call less per packet.
        rtp.datagram_received = self._on_rtp  # type: ignore[method-assign]
        assert rtp.transport is not None
        self._rtp_sendto: Callable[[bytes, Address], None] = rtp.transport.sendto
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
        or take one ``spares`` bound ahead (then without a trip round the event loop).

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
        attempts = allocator.capacity if allocator is not None else 1
        last_error: OSError | None = None
        for _ in range(attempts):
            p = allocator.allocate() if allocator is not None else port
            assert p is not None
            try:
                rtp, rtcp = await _bind_pair(loop, host, p)
            except OSError as exc:
                if allocator is not None:
                    allocator.release(p)
                # uvloop reports a taken port as an OSError without an errno.
                if exc.errno not in (errno.EADDRINUSE, None):
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
        """A leg on a pair ``spares`` bound ahead (on ``spares.host``), at once, without
        a trip round the event loop; None when none is ready (then ``open``)."""
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
        rtp: _Protocol,
        rtcp: _Protocol,
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
        if self._rtp.transport is not None and not self.closed:
            self._rtp.transport.sendto(data, address)

    def send_raw_rtcp(self, data: bytes, address: Address) -> None:
        if self._rtcp.transport is not None and not self.closed:
            self._rtcp.transport.sendto(data, address)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._leave_clock()
        _close_pair(self._rtp, self._rtcp)
        for proto in (self._rtp, self._rtcp):
            # Cut the endpoint <-> protocol <-> transport and handler cycles, so a
            # finished leg is freed at once by reference counting instead of piling
            # up for a full garbage collection that stalls every other call.
            proto.on_datagram = _ignore_datagram
            proto.__dict__.pop("datagram_received", None)
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
        # Bind the handler as the protocol's own datagram_received: one Python
        # call less on every relayed packet.
        self._rtp.datagram_received = rtp  # type: ignore[method-assign,assignment]
        self._rtcp.datagram_received = rtcp  # type: ignore[method-assign,assignment]
        self.suspend_timer()
        self._leave_clock()

    def undivert(self) -> None:
        self.relay = None
        self.relay_rtcp = None
        self._rtp.datagram_received = self._on_rtp  # type: ignore[method-assign]
        del self._rtcp.datagram_received
        self.resume()

    @property
    def sendto(self) -> Callable[[bytes, Address], None]:
        """The RTP socket's ``sendto``, for the relay's per-packet path."""
        if self._rtp.transport is None or self.closed:
            return lambda data, addr: None
        return self._rtp.transport.sendto

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
            proto = self._rtcp if out.rtcp else self._rtp
            if proto.transport is not None:
                proto.transport.sendto(out.data, out.address)
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
            proto = self._rtcp if out.rtcp else self._rtp
            if proto.transport is not None:
                proto.transport.sendto(out.data, out.address)
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


class SparePairs:
    """RTP/RTCP socket pairs bound ahead of need, from an allocator's range.

    The loop attaches a bound socket in a later iteration, and while it carries
    a thousand calls an iteration lasts milliseconds to tens of them: binding a
    leg's pair on the call's path put that wait between the caller's INVITE and
    the carrier's (and between acceptance and the caller's 200 OK). A leg
    opened from a spare waits for nothing; each one taken starts the binding of
    its replacement. Spares count as ports in use.
    """

    def __init__(self, allocator: PortAllocator, host: str, target: int = 128) -> None:
        self.allocator = allocator
        self.host = host
        # Ports being bound are neither spare nor free: a leg asking for one then may
        # find the range exhausted, so a small range keeps few of them on the way.
        self.target = max(0, min(target, max(1, allocator.capacity // 16)))
        self._ready: deque[tuple[int, _Protocol, _Protocol]] = deque()
        self._binding: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def ready(self) -> int:
        """Pairs bound and waiting for a leg."""
        return len(self._ready)

    def take(self) -> tuple[int, _Protocol, _Protocol] | None:
        """A bound pair (port, RTP, RTCP) if one is ready; replacements start binding."""
        pair = self._ready.popleft() if self._ready else None
        self.fill()
        return pair

    def fill(self) -> None:
        """Start binding pairs until ``target`` are ready or on their way."""
        if self.closed:
            return
        missing = self.target - len(self._ready) - len(self._binding)
        if missing <= 0:
            return
        loop = asyncio.get_running_loop()
        for _ in range(missing):
            task = loop.create_task(self._bind(loop))
            self._binding.add(task)
            task.add_done_callback(self._binding.discard)

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            port = self.allocator.allocate()
        except PortsExhausted:
            return  # calls hold every port; the next leg taken tries again
        try:
            rtp, rtcp = await _bind_pair(loop, self.host, port)
        except OSError as exc:
            # Taken by another program: the next fill tries the next port.
            self.allocator.release(port)
            if exc.errno not in (errno.EADDRINUSE, None):
                _log.warning("cannot bind a spare RTP pair on %s:%d: %s", self.host, port, exc)
            return
        except BaseException:
            self.allocator.release(port)
            raise
        if self.closed:
            _close_pair(rtp, rtcp)
            self.allocator.release(port)
            return
        self._ready.append((port, rtp, rtcp))

    def close(self) -> None:
        """Unbind every spare and stop binding more."""
        self.closed = True
        for task in list(self._binding):
            task.cancel()
        while self._ready:
            port, rtp, rtcp = self._ready.popleft()
            _close_pair(rtp, rtcp)
            self.allocator.release(port)


def _close_pair(rtp: _Protocol, rtcp: _Protocol) -> None:
    for proto in (rtp, rtcp):
        if proto.transport is not None:
            proto.transport.close()
            proto.transport = None


async def _bind_pair(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> tuple[_Protocol, _Protocol]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if _is_address(host):
        rtp, rtcp = await _attach_pair(loop, host, port, family)
    else:
        # Names go through the loop's resolver (in its thread pool), one at a time.
        _, rtp = await loop.create_datagram_endpoint(
            lambda: _Protocol(_ignore_datagram), local_addr=(host, port), family=family)
        try:
            _, rtcp = await loop.create_datagram_endpoint(
                lambda: _Protocol(_ignore_datagram), local_addr=(host, port + 1),
                family=family)
        except BaseException:  # a taken port, or cancelled while attaching
            if rtp.transport is not None:
                rtp.transport.close()
            raise
    with contextlib.suppress(OSError):
        sock = rtp.transport.get_extra_info("socket") if rtp.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
    return rtp, rtcp


def _bound(host: str, port: int, family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _attach_pair(
    loop: asyncio.AbstractEventLoop, host: str, port: int, family: int
) -> tuple[_Protocol, _Protocol]:
    """Both sockets bound here (an address literal: given ``local_addr`` instead, the
    loop would resolve it in its thread pool first, milliseconds under load), then
    handed to the loop together: attaching takes a trip round the loop, and the two
    share it."""
    rtp_sock = _bound(host, port, family)
    try:
        rtcp_sock = _bound(host, port + 1, family)
    except BaseException:
        rtp_sock.close()
        raise
    socks = (rtp_sock, rtcp_sock)
    tasks = [loop.create_task(loop.create_datagram_endpoint(
        lambda: _Protocol(_ignore_datagram), sock=sock)) for sock in socks]
    try:
        await asyncio.wait(tasks)
    except BaseException:  # cancelled: whatever attached is closed, the rest given up
        for task, sock in zip(tasks, socks, strict=True):
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result()[0].close()
            else:
                task.cancel()
                sock.close()
        raise
    failure = next((t.exception() for t in tasks if t.exception() is not None), None)
    if failure is not None:
        for task, sock in zip(tasks, socks, strict=True):
            if task.exception() is None:
                task.result()[0].close()
            else:
                sock.close()
        raise failure
    rtp = tasks[0].result()[1]
    rtcp = tasks[1].result()[1]
    return rtp, rtcp


@functools.lru_cache(maxsize=64)
def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
