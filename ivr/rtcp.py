"""RTCP sender and receiver reports (RFC 3550 section 6.4) and reception statistics."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ivr.rtp import SequenceTracker

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 to 1970
_REPORT_BLOCK = struct.Struct("!IB3sIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # fixed point /256
    cumulative_lost: int  # signed 24 bit
    highest_seq: int
    jitter: int  # timestamp units
    last_sr: int
    delay_since_last_sr: int  # 1/65536 s

    def serialize(self) -> bytes:
        lost = self.cumulative_lost
        lost = max(-(1 << 23), min(lost, (1 << 23) - 1)) & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big"),
            self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr & 0xFFFFFFFF,
            self.delay_since_last_sr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if len(data) < offset + 24:
            raise ValueError(f"RTCP report block truncated: {len(data) - offset} of 24 bytes")
        ssrc, fl, lost3, hs, jit, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = int.from_bytes(lost3, "big")
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, fl, lost, hs, jit, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack(
            "!IQIII",
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        ) + b"".join(r.serialize() for r in self.reports)
        return _header(RTCP_SR, len(self.reports), body) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _header(RTCP_RR, len(self.reports), body) + body


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """An RTCP packet we do not interpret (SDES, BYE, APP...), kept for relaying."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _header(self.packet_type, self.count, self.body) + self.body


RtcpPacket = SenderReport | ReceiverReport | OtherRtcp


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError("at most 31 report blocks per RTCP packet")
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram into its packets."""
    if len(data) < 4:
        raise ValueError(f"RTCP packet truncated: {len(data)} bytes, header needs 4")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise ValueError(f"RTCP packet truncated: {len(data) - pos} trailing bytes")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise ValueError(f"RTCP version {b0 >> 6} is not 2")
        length = 4 * (words + 1)
        if len(data) - pos < length:
            raise ValueError(
                f"RTCP packet truncated: length field says {length} bytes, {len(data) - pos} left"
            )
        count = b0 & 0x1F
        end = pos + length
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > length - 4:
                raise ValueError(f"RTCP padding length {pad} is invalid")
            end -= pad
        body = data[pos + 4 : end]
        if pt == RTCP_SR:
            if len(body) < 24 + 24 * count:
                raise ValueError(f"RTCP SR truncated: {len(body)} body bytes for {count} blocks")
            ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
            blocks = tuple(ReportBlock.parse(body, 24 + 24 * i) for i in range(count))
            packets.append(SenderReport(ssrc, ntp, rtp_ts, pc, oc, blocks))
        elif pt == RTCP_RR:
            if len(body) < 4 + 24 * count:
                raise ValueError(f"RTCP RR truncated: {len(body)} body bytes for {count} blocks")
            (ssrc,) = struct.unpack_from("!I", body)
            blocks = tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count))
            packets.append(ReceiverReport(ssrc, blocks))
        elif 192 <= pt <= 223:
            packets.append(OtherRtcp(pt, count, bytes(body)))
        else:
            raise ValueError(f"RTCP packet type {pt} out of range 192..223")
        pos += length
    return packets


def ntp_from_unix(unix_time: float) -> int:
    secs = int(unix_time) + NTP_EPOCH_OFFSET
    frac = int((unix_time - int(unix_time)) * (1 << 32))
    return ((secs & 0xFFFFFFFF) << 32) | (frac & 0xFFFFFFFF)


@dataclass(slots=True)
class ReceptionStats:
    """Per-source reception statistics: loss (RFC 3550 A.3) and jitter (A.8)."""

    ssrc: int
    clock_rate: int = 8000
    seq: SequenceTracker = field(default_factory=SequenceTracker)
    jitter: float = 0.0  # timestamp units
    _transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0
    last_sr_ntp_middle: int = 0
    last_sr_arrival: float | None = None

    def update(self, seq: int, timestamp: int, arrival: float) -> int | None:
        ext = self.seq.update(seq)
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 1 << 30:  # ignore timestamp jumps (sender restart)
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        return ext

    def note_sender_report(self, sr: SenderReport, arrival: float) -> None:
        self.last_sr_ntp_middle = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
        self.last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        expected = self.seq.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.seq.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.seq.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int((now - self.last_sr_arrival) * 65536)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.seq.lost,
            highest_seq=self.seq.extended_max,
            jitter=int(self.jitter),
            last_sr=self.last_sr_ntp_middle,
            delay_since_last_sr=dlsr,
        )
