"""One call leg's media as a sans-IO state machine: receive, play prompts, send and detect DTMF.

Feed it datagrams with ``receive_rtp``/``receive_rtcp`` and ``now``; collect
``datagrams_to_send(now)`` and ``next_event()``; call ``handle_timer(now)`` at
``get_timer()``. It does no I/O and reads no clock.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ivr.events import (
    Address,
    DtmfReceived,
    MediaEvent,
    MediaTimedOut,
    PeerAddressLearned,
    PlaybackFinished,
    RtcpReportReceived,
)
from ivr.g711 import Codec
from ivr.inband import InbandDetector, feed_many
from ivr.playback import FRAME_SAMPLES, PTIME, PromptPlayer
from ivr.rfc4733 import TelephoneEventReceiver, event_packets, parse_red
from ivr.rtcp import (
    RTCP_SDES,
    OtherRtcp,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    ntp_from_unix,
    parse_compound,
)
from ivr.rtp import HEADER as RTP_HEADER
from ivr.rtp import RtpPacket, build_packet

CLOCK_RATE = 8000
COMFORT_NOISE_PT = 13
#: A new source address replaces the learned one only after the old one fell silent this long.
RELATCH_AFTER = 1.0
#: Samples of received audio gathered before in-band DTMF analysis.
INBAND_BATCH = 1280


class Outgoing(NamedTuple):
    data: bytes
    address: Address
    rtcp: bool


class MediaSession:
    """The media of one call leg, from our side of it."""

    def __init__(
        self,
        codec: Codec,
        *,
        ssrc: int,
        now: float,
        remote: Address | None = None,
        telephone_event_pt: int | None = 101,
        redundancy_pt: int | None = None,
        inband: bool = True,
        inactivity_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        cname: str = "ics",
        wall_clock_offset: float = 0.0,
    ) -> None:
        self.codec = codec
        self.ssrc = ssrc & 0xFFFFFFFF
        self.remote = remote
        self.remote_rtcp: Address | None = (remote[0], remote[1] + 1) if remote else None
        self.telephone_event_pt = telephone_event_pt
        #: RFC 2198 "red" payload type, when the peer negotiated redundant events.
        self.redundancy_pt = redundancy_pt
        self.inactivity_timeout = inactivity_timeout
        self.rtcp_interval = rtcp_interval
        self.cname = cname
        # loop time + offset = Unix time, for RTCP NTP timestamps only.
        self.wall_clock_offset = wall_clock_offset
        self.created = now
        self.last_received: float | None = None
        self._last_from_remote: float | None = None
        self._timed_out = False
        self._events: deque[MediaEvent] = deque()
        self._out: list[Outgoing] = []
        self._seq = (ssrc >> 7) & 0xFFFF
        self._ts_base = (ssrc * 2654435761) & 0xFFFFFFFF
        self._player: PromptPlayer | None = None
        self._marker_next = False
        self._dtmf_queue: deque[tuple[float, bool, bytes, int]] = deque()
        self._events_rx = TelephoneEventReceiver(CLOCK_RATE)
        self._inband = InbandDetector() if inband else None
        self._inband_pending = bytearray()
        #: Where a session with a batch of received audio to analyse for in-band
        #: DTMF puts itself (once), so that many are analysed together by
        #: ``analyse_inband``; None analyses each batch on arrival.
        self.inband_queue: Callable[[MediaSession], None] | None = None
        self._inband_queued = False
        self.stats: ReceptionStats | None = None
        self.packets_sent = 0
        self.octets_sent = 0
        self.malformed = 0
        self.unknown_payload = 0
        self.ignored_sources = 0
        #: Packets received per payload type (diagnostics and tests).
        self.received_by_pt: dict[int, int] = {}
        self._next_rtcp = now + rtcp_interval / 2
        self._last_rtp_ts = self._ts_base

    def configure(
        self,
        *,
        codec: Codec,
        remote: Address,
        telephone_event_pt: int | None,
        remote_rtcp: Address | None = None,
    ) -> None:
        """Apply what the SDP answer settled (our port was offered before it was known)."""
        if codec != self.codec:
            self.codec = codec
            self._player = None
            self._inband_pending.clear()
        self.remote = remote
        self.remote_rtcp = remote_rtcp or (remote[0], remote[1] + 1)
        self._last_from_remote = None
        self.telephone_event_pt = telephone_event_pt

    # -- clock -------------------------------------------------------------

    def rtp_timestamp(self, t: float) -> int:
        return (self._ts_base + round((t - self.created) * CLOCK_RATE)) & 0xFFFFFFFF

    # -- receiving -----------------------------------------------------------

    def receive_rtp(self, data: bytes, addr: Address, now: float) -> bool:
        """Take one RTP datagram. False when it was plain audio that changed nothing
        but statistics: no event, no output, no earlier timer (the adapter can skip
        servicing the session, which is most packets)."""
        # A leg that had timed out gets its inactivity deadline back: a new timer.
        events = len(self._events) - self._timed_out
        if len(data) > 12 and data[0] == 0x80:
            # The common packet (no padding, extension or CSRCs) without a parse object.
            _, b1, seq, timestamp, ssrc = RTP_HEADER.unpack_from(data)
            pt = b1 & 0x7F
            payload = data[12:]
        else:
            try:
                pkt = RtpPacket.parse(data)
            except ValueError:
                self.malformed += 1
                return False
            pt, seq, timestamp = pkt.payload_type, pkt.sequence_number, pkt.timestamp
            ssrc, payload = pkt.ssrc, pkt.payload
        if not self._learn(addr, now):
            return False
        stats = self.stats
        if stats is None or stats.ssrc != ssrc:
            stats = self.stats = ReceptionStats(ssrc, CLOCK_RATE)
        stats.update(seq, timestamp, now)
        self.received_by_pt[pt] = self.received_by_pt.get(pt, 0) + 1
        if pt == self.codec.payload_type:
            if self._inband is not None and payload:
                # Analyse eight packets at a time: an eighth of the numpy overhead
                # (most of the cost of a prompt's echo) for at most 140 ms more
                # delay on a key press, well inside the menu's choice timeout.
                self._inband_pending += payload
                if len(self._inband_pending) >= INBAND_BATCH:
                    if self.inband_queue is None:
                        analyse_inband((self,), now)
                    elif not self._inband_queued:
                        self._inband_queued = True
                        self.inband_queue(self)
            return len(self._events) != events
        if pt == self.telephone_event_pt or pt == self.redundancy_pt:
            try:
                if pt == self.telephone_event_pt:
                    digits = self._events_rx.receive(payload, timestamp, now)
                else:
                    # RFC 2198: earlier events ride along with the current one.
                    digits = []
                    for block in parse_red(payload):
                        if block.payload_type == self.telephone_event_pt:
                            ts = (timestamp - block.timestamp_offset) & 0xFFFFFFFF
                            digits += self._events_rx.receive(block.data, ts, now)
            except ValueError:
                self.malformed += 1
                return False
            for rd in digits:
                self._events.append(DtmfReceived(rd.digit, "rfc4733", rd.duration_ms, now))
            return True  # the end-of-event timer may have moved
        if pt != COMFORT_NOISE_PT:
            self.unknown_payload += 1
        return len(self._events) != events

    def receive_rtcp(self, data: bytes, addr: Address, now: float) -> None:
        try:
            packets = parse_compound(data)
        except ValueError:
            self.malformed += 1
            return
        if self.remote_rtcp is None or self.remote is None or addr[0] == self.remote[0]:
            self.remote_rtcp = addr
        for p in packets:
            if isinstance(p, SenderReport) and self.stats is not None and p.ssrc == self.stats.ssrc:
                self.stats.note_sender_report(p, now)
            if isinstance(p, SenderReport | ReceiverReport):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self._events.append(
                            RtcpReportReceived(
                                p.ssrc,
                                block.fraction_lost / 256,
                                block.cumulative_lost,
                                block.jitter * 1000 / CLOCK_RATE,
                                now,
                            )
                        )

    def _learn(self, addr: Address, now: float) -> bool:
        """Symmetric RTP; False for a packet to ignore (not from the peer)."""
        if addr == self.remote:
            self._last_from_remote = now
            self.last_received = now
            self._timed_out = False
            return True
        if self._last_from_remote is not None and now - self._last_from_remote < RELATCH_AFTER:
            # A stray or spoofed source while the real peer is talking: its
            # packets must not press keys for the called party.
            self.ignored_sources += 1
            return False
        self.last_received = now
        self._timed_out = False
        self.remote = addr
        self.remote_rtcp = (addr[0], addr[1] + 1)
        self._last_from_remote = now
        self._events.append(PeerAddressLearned(addr, now))
        return True

    def note_heard(self, when: float) -> None:
        """The current peer was heard at ``when`` (the relay counts packets instead)."""
        last = self._last_from_remote
        if self.remote is not None and (last is None or when > last):
            self._last_from_remote = when

    def learn_source(self, addr: Address, now: float) -> bool:
        """Apply the symmetric-RTP rule to a packet's source (used by the relay)."""
        return self._learn(addr, now)

    def receive_dtmf_info(self, digit: str, duration_ms: int, now: float) -> None:
        """A key press signalled in SIP INFO, so all DTMF reaches the menu one way."""
        self._events.append(DtmfReceived(digit, "sip-info", duration_ms, now))

    def next_event(self) -> MediaEvent | None:
        return self._events.popleft() if self._events else None

    # -- sending -------------------------------------------------------------

    def play(self, payload: bytes, now: float) -> None:
        """Start playing encoded audio (in this session's codec), replacing any prompt."""
        self._player = PromptPlayer(payload, now, self.codec.silence_byte)
        self._marker_next = True
        self._pump(now)

    def stop_playback(self, now: float) -> None:
        self._player = None

    @property
    def playing(self) -> bool:
        return self._player is not None

    def next_send_time(self) -> float | None:
        """When the next prompt frame or DTMF packet is due (None if nothing is queued)."""
        times = []
        if self._player is not None:
            t = self._player.next_time()
            if t is not None:
                times.append(t)
        if self._dtmf_queue:
            times.append(self._dtmf_queue[0][0])
        return min(times) if times else None

    def send_digit(self, digit: str, now: float, duration_ms: int = 160) -> None:
        """Send a key press as RFC 4733 events (needs a negotiated telephone-event type)."""
        if self.telephone_event_pt is None:
            raise ValueError("the peer did not negotiate telephone-event")
        ts = self.rtp_timestamp(now)
        for p in event_packets(digit, duration_ms):
            self._dtmf_queue.append((now + p.offset, p.marker, p.payload, ts))
        self._pump(now)

    def _send_rtp(self, pt: int, ts: int, payload: bytes, marker: bool) -> None:
        if self.remote is None:
            return
        data = build_packet(pt, self._seq, ts, self.ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._last_rtp_ts = ts
        self._out.append(Outgoing(data, self.remote, False))

    def _pump(self, now: float) -> None:
        player = self._player
        if player is not None:
            for k, frame in player.due(now):
                ts = self.rtp_timestamp(player.start + k * PTIME)
                self._send_rtp(self.codec.payload_type, ts, frame, self._marker_next)
                self._marker_next = False
            if player.finished:
                self._player = None
                self._events.append(PlaybackFinished(now))
        while self._dtmf_queue and self._dtmf_queue[0][0] <= now + 1e-9:
            _, marker, payload, ts = self._dtmf_queue.popleft()
            assert self.telephone_event_pt is not None
            self._send_rtp(self.telephone_event_pt, ts, payload, marker)

    def prompt_packet(self, at: float) -> bytes | None:
        """The RTP packet of the one prompt frame due by ``at``, when that frame is all
        there is to send, else None (and nothing changed: ``datagrams_to_send(at)``
        then does the general case: several or no frames due, the first or last
        frame, a key press, an RTCP report or other output waiting).

        This is a media clock tick of a playing leg, fifty times a second per
        call: one call, no intermediate objects.
        """
        player = self._player
        if (player is None or self._marker_next or self._dtmf_queue or self._out
                or at >= self._next_rtcp or self.remote is None):
            return None
        k = player.next_frame
        if k + 1 >= player.frames or int((at - player.start) / PTIME + 1e-9) != k:
            return None
        player.next_frame = k + 1
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        ts = (self._ts_base
              + round((player.start + k * PTIME - self.created) * CLOCK_RATE)) & 0xFFFFFFFF
        self._last_rtp_ts = ts
        self.packets_sent += 1
        self.octets_sent += FRAME_SAMPLES
        return RTP_HEADER.pack(0x80, self.codec.payload_type, seq, ts, self.ssrc) + (
            player.payload[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])

    def datagrams_to_send(self, now: float) -> list[Outgoing]:
        self._pump(now)
        if now >= self._next_rtcp:
            self._next_rtcp = now + self.rtcp_interval
            report = self.rtcp_report(now)
            if report is not None and self.remote_rtcp is not None:
                self._out.append(Outgoing(report, self.remote_rtcp, True))
        out, self._out = self._out, []
        return out

    def rtcp_report(self, now: float) -> bytes | None:
        """A compound SR (if we sent media) or RR, with SDES CNAME."""
        blocks: tuple[ReportBlock, ...] = ()
        if self.stats is not None:
            blocks = (self.stats.report_block(now),)
        if self.packets_sent:
            first: SenderReport | ReceiverReport = SenderReport(
                self.ssrc,
                ntp_from_unix(now + self.wall_clock_offset),
                self.rtp_timestamp(now),
                self.packets_sent,
                self.octets_sent,
                blocks,
            )
        else:
            first = ReceiverReport(self.ssrc, blocks)
        cname = self.cname.encode()[:255]
        item = struct.pack("!IBB", self.ssrc, 1, len(cname)) + cname
        item += b"\x00" * (4 - len(item) % 4)  # null-terminated, padded to 32 bits
        return first.serialize() + OtherRtcp(RTCP_SDES, 1, item).serialize()

    # -- timers ----------------------------------------------------------------

    def get_timer(self, *, playback: bool = True) -> float | None:
        """The next deadline; ``playback=False`` leaves out the prompt's next frame
        (for an adapter whose shared media clock paces every playing leg)."""
        times = [self._next_rtcp]
        if playback and self._player is not None:
            t = self._player.next_time()
            if t is not None:
                times.append(t)
        if self._dtmf_queue:
            times.append(self._dtmf_queue[0][0])
        rx = self._events_rx.get_timer()
        if rx is not None:
            times.append(rx)
        if not self._timed_out and self.inactivity_timeout > 0:
            times.append((self.last_received or self.created) + self.inactivity_timeout)
        return min(times)

    def handle_timer(self, now: float) -> None:
        self._pump(now)
        for rd in self._events_rx.handle_timer(now):
            self._events.append(DtmfReceived(rd.digit, "rfc4733", rd.duration_ms, now))
        if not self._timed_out and self.inactivity_timeout > 0:
            last = self.last_received or self.created
            if now >= last + self.inactivity_timeout:
                self._timed_out = True
                self._events.append(MediaTimedOut(self.last_received, now))


def analyse_inband(sessions: Sequence[MediaSession], now: float) -> list[bool]:
    """In-band DTMF analysis of the audio each session has gathered, for all of them
    in one vectorised pass (``feed_many``); per session, whether it got a digit
    (a ``DtmfReceived`` event waits in it)."""
    heard = [False] * len(sessions)
    ready: list[tuple[int, MediaSession, InbandDetector]] = []
    for i, session in enumerate(sessions):
        session._inband_queued = False
        if session._inband is not None and session._inband_pending:
            ready.append((i, session, session._inband))
    if not ready:
        return heard
    chunks = []
    for _, session, _ in ready:
        chunks.append(session.codec.decode(bytes(session._inband_pending)))
        session._inband_pending.clear()
    found = feed_many([detector for _, _, detector in ready], chunks)
    for (i, session, _), digits in zip(ready, found, strict=True):
        for d in digits:
            session._events.append(DtmfReceived(d.digit, "inband", 0, now))
        heard[i] = bool(digits)
    return heard


__all__ = ["FRAME_SAMPLES", "MediaSession", "Outgoing", "analyse_inband"]
