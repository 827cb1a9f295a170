"""RFC 4733 telephone-events: payload codec, a receiver that reports each key once, and a sender.

Sans-IO: the receiver takes RTP fields and ``now`` and returns digits; the sender
returns the packets to send and when, for the session to pace.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

EVENT_DIGITS = "0123456789*#ABCD"
DIGIT_EVENTS = {d: i for i, d in enumerate(EVENT_DIGITS)}


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One 4-byte telephone-event block."""

    event: int
    end: bool
    volume: int  # dBm0 below 0, 0..63
    duration: int  # timestamp units

    @property
    def digit(self) -> str | None:
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise ValueError(f"telephone-event truncated: {len(data)} bytes, needs 4")
        event, flags, duration = struct.unpack_from("!BBH", data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise ValueError(f"event {self.event} out of range 0..255")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume {self.volume} out of range 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"duration {self.duration} out of range 0..65535")
        flags = (0x80 if self.end else 0) | self.volume
        return struct.pack("!BBH", self.event, flags, self.duration)


@dataclass(frozen=True, slots=True)
class RedundantBlock:
    """One block of an RFC 2198 redundant payload."""

    payload_type: int
    timestamp_offset: int
    data: bytes


def parse_red(payload: bytes) -> list[RedundantBlock]:
    """Split an RFC 2198 payload into blocks, oldest first, the primary last."""
    headers: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        if pos >= len(payload):
            raise ValueError("RFC 2198 payload truncated in its block headers")
        b = payload[pos]
        if b & 0x80:
            if len(payload) < pos + 4:
                raise ValueError("RFC 2198 block header truncated")
            word = struct.unpack_from("!I", payload, pos)[0]
            headers.append(((word >> 24) & 0x7F, (word >> 10) & 0x3FFF, word & 0x3FF))
            pos += 4
        else:
            headers.append((b & 0x7F, 0, -1))
            pos += 1
            break
    blocks: list[RedundantBlock] = []
    for pt, offset, length in headers:
        if length < 0:
            length = len(payload) - pos
        if len(payload) < pos + length:
            raise ValueError("RFC 2198 block data truncated")
        blocks.append(RedundantBlock(pt, offset, bytes(payload[pos : pos + length])))
        pos += length
    return blocks


@dataclass(frozen=True, slots=True)
class ReceivedDigit:
    digit: str
    duration_ms: int
    timestamp: int


class TelephoneEventReceiver:
    """Turns telephone-event packets into one digit per key press.

    An event is identified by its RTP timestamp (the start of the event, the same
    in every packet of it). It is reported when its first end packet arrives;
    the usual three retransmitted end packets, redundant copies, and late
    updates are then ignored. If the end packets are all lost, the event is
    reported ``end_timeout`` seconds after its last update (see ``get_timer``).
    """

    def __init__(self, clock_rate: int = 8000, end_timeout: float = 0.25) -> None:
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._reported: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._open: dict[int, tuple[TelephoneEvent, float]] = {}

    def receive(self, payload: bytes, timestamp: int, now: float) -> list[ReceivedDigit]:
        """One telephone-event RTP payload (possibly several 4-byte blocks)."""
        if len(payload) < 4 or len(payload) % 4:
            raise ValueError(f"telephone-event payload of {len(payload)} bytes is not 4*n")
        out: list[ReceivedDigit] = []
        for i in range(0, len(payload), 4):
            ev = TelephoneEvent.parse(payload[i : i + 4])
            if i == len(payload) - 4:
                out.extend(self._event(ev, timestamp, now))
            else:
                out.extend(self._earlier_event(ev, timestamp, now))
        return out

    def _earlier_event(self, ev: TelephoneEvent, timestamp: int, now: float) -> list[ReceivedDigit]:
        # Blocks before the last one in a payload are earlier events (RFC 4733
        # section 2.5.1.5) whose start timestamps the packet does not carry:
        # match them to an event we already know by code and duration.
        for key, (open_ev, _) in self._open.items():
            if open_ev.event == ev.event:
                return self._event(ev, key, now)
        if (ev.event, ev.duration) in self._reported.values():
            return []
        return self._event(ev, (timestamp - ev.duration) % (1 << 32), now)

    def receive_block(self, ev: TelephoneEvent, timestamp: int, now: float) -> list[ReceivedDigit]:
        return self._event(ev, timestamp, now)

    def _event(self, ev: TelephoneEvent, key: int, now: float) -> list[ReceivedDigit]:
        if key in self._reported or ev.digit is None:
            return []
        if not ev.end:
            self._open[key] = (ev, now)
            return []
        self._open.pop(key, None)
        return [self._report(ev, key)]

    def _report(self, ev: TelephoneEvent, key: int) -> ReceivedDigit:
        self._reported[key] = (ev.event, ev.duration)
        while len(self._reported) > 64:
            self._reported.popitem(last=False)
        assert ev.digit is not None
        return ReceivedDigit(ev.digit, ev.duration * 1000 // self.clock_rate, key)

    def get_timer(self) -> float | None:
        if not self._open:
            return None
        return min(t for _, t in self._open.values()) + self.end_timeout

    def handle_timer(self, now: float) -> list[ReceivedDigit]:
        out = []
        for key, (ev, t) in list(self._open.items()):
            if now >= t + self.end_timeout:
                del self._open[key]
                out.append(self._report(ev, key))
        return out


@dataclass(frozen=True, slots=True)
class EventPacket:
    """A telephone-event packet to send ``offset`` seconds after the event starts."""

    offset: float
    marker: bool
    payload: bytes


def event_packets(
    digit: str,
    duration_ms: int = 160,
    volume: int = 10,
    packet_ms: int = 20,
    end_repeats: int = 3,
    clock_rate: int = 8000,
) -> list[EventPacket]:
    """The packets of one key press (RFC 4733 section 2.5.1): all share the RTP
    timestamp of the event start; the first has the marker bit; the end packet
    is sent three times."""
    if digit not in DIGIT_EVENTS:
        raise ValueError(f"{digit!r} is not a DTMF digit")
    if duration_ms < packet_ms:
        raise ValueError(f"duration {duration_ms} ms shorter than one packet")
    event = DIGIT_EVENTS[digit]
    per = clock_rate * packet_ms // 1000
    total = clock_rate * duration_ms // 1000
    out: list[EventPacket] = []
    n = 1
    while n * per < total:
        ev = TelephoneEvent(event, False, volume, n * per)
        out.append(EventPacket((n - 1) * packet_ms / 1000, n == 1, ev.serialize()))
        n += 1
    end = TelephoneEvent(event, True, volume, total).serialize()
    for _ in range(end_repeats):
        out.append(EventPacket((n - 1) * packet_ms / 1000, n == 1 and not out, end))
    return out
