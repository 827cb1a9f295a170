"""RTP packets (RFC 3550): parse/serialize, and sequence/timestamp arithmetic with wrap-around."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


def seq_add(seq: int, n: int) -> int:
    return (seq + n) % SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space, in [-32768, 32767]."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def ts_add(ts: int, n: int) -> int:
    return (ts + n) % TS_MOD


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b in timestamp space."""
    d = (a - b) % TS_MOD
    return d - TS_MOD if d >= TS_MOD // 2 else d


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. Header extensions are kept opaque; padding is stripped."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise ValueError(f"RTP packet truncated: {len(data)} bytes, header needs 12")
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise ValueError(f"RTP version {version} is not 2")
        padding = bool(b0 & 0x20)
        has_ext = bool(b0 & 0x10)
        cc = b0 & 0x0F
        pos = 12
        if len(data) < pos + 4 * cc:
            raise ValueError(
                f"RTP packet truncated: {len(data)} bytes, {cc} CSRCs need {pos + 4 * cc}"
            )
        csrc = list(struct.unpack_from(f"!{cc}I", data, pos))
        pos += 4 * cc
        profile: int | None = None
        ext = b""
        if has_ext:
            if len(data) < pos + 4:
                raise ValueError("RTP packet truncated: header extension header missing")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise ValueError("RTP packet truncated: header extension body missing")
            ext = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        end = len(data)
        if padding:
            if end == pos:
                raise ValueError("RTP packet has the padding bit but no payload")
            pad = data[-1]
            if pad == 0 or pad > end - pos:
                raise ValueError(f"RTP padding length {pad} is invalid")
            end -= pad
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension_profile=profile,
            extension=ext,
        )

    def serialize(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of range 0..127")
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        if len(self.extension) % 4:
            raise ValueError("header extension length must be a multiple of 4")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | self.payload_type
        out = [
            HEADER.pack(
                b0, b1, self.sequence_number % SEQ_MOD, self.timestamp % TS_MOD, self.ssrc
            )
        ]
        if self.csrc:
            out.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            out.append(struct.pack("!HH", self.extension_profile, len(self.extension) // 4))
            out.append(self.extension)
        out.append(self.payload)
        return b"".join(out)


def build_packet(
    payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """Fast path for the common header without CSRCs or extension."""
    return HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, seq, timestamp, ssrc) + payload


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: RTCP packet types 192..223 sit where RTP's PT would."""
    return len(data) >= 2 and 192 <= data[1] <= 223


class SequenceTracker:
    """Extends 16-bit sequence numbers to a monotonic count across wrap-around.

    Follows RFC 3550 appendix A.1: a jump of more than ``MAX_DROPOUT`` ahead or
    ``MAX_MISORDER`` behind is treated as a restart of the sender once it is
    confirmed by the next packet in sequence.
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    def __init__(self) -> None:
        self.base_seq: int | None = None
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self._bad_seq: int | None = None

    def update(self, seq: int) -> int | None:
        """Feed a sequence number; returns its extended value, or None if discarded."""
        if self.base_seq is None:
            self.base_seq = seq
            self.max_seq = seq
            self.received = 1
            return seq
        udelta = (seq - self.max_seq) % SEQ_MOD
        if udelta < self.MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif udelta <= SEQ_MOD - self.MAX_MISORDER:
            # A very large jump: believe it only if the next packet follows it.
            if self._bad_seq is not None and seq == self._bad_seq:
                self.base_seq = seq
                self.max_seq = seq
                self.cycles = 0
                self.received = 0
                self._bad_seq = None
            else:
                self._bad_seq = (seq + 1) % SEQ_MOD
                return None
        else:
            # Duplicate or reordered packet within the misorder window.
            self.received += 1
            ext = self.cycles + seq
            if seq > self.max_seq:
                ext -= SEQ_MOD
            return ext
        self.received += 1
        return self.cycles + seq

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.base_seq is None:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (may be negative with duplicates, as RFC 3550 says)."""
        return self.expected - self.received
