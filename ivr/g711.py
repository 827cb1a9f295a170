"""G.711 mu-law and A-law with numpy lookup tables, bit-exact with ITU-T G.191.

The tables are built once from the ITU-T G.191 (STL) reference algorithms, which
are the normative reading of G.711: negative inputs use one's complement before
quantisation, A-law works on 13 significant bits and mu-law on 14. Encoding a
16-bit sample is then a single table index, and PCMU<->PCMA transcoding is a
256-byte ``bytes.translate`` table (no numpy call on the per-packet path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]


def _alaw_compress(sample: int) -> int:
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


def _alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x08
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def _ulaw_compress(sample: int) -> int:
    absno = (((~sample) >> 2) if sample < 0 else (sample >> 2)) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high = 0x08 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    if sample >= 0:
        code |= 0x80
    return code


def _ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x07
    segment = exponent + 1
    mantissa &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


_ALL_SAMPLES = range(-32768, 32768)

#: 16-bit sample (offset by 32768) -> code.
ULAW_ENCODE: Final = np.array([_ulaw_compress(s) for s in _ALL_SAMPLES], dtype=np.uint8)
ALAW_ENCODE: Final = np.array([_alaw_compress(s) for s in _ALL_SAMPLES], dtype=np.uint8)
#: code -> 16-bit sample.
ULAW_DECODE: Final = np.array([_ulaw_expand(c) for c in range(256)], dtype=np.int16)
ALAW_DECODE: Final = np.array([_alaw_expand(c) for c in range(256)], dtype=np.int16)

for _t in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _t.setflags(write=False)

#: ``payload.translate(ULAW_TO_ALAW)`` transcodes a PCMU payload to PCMA.
ULAW_TO_ALAW: Final = bytes(ALAW_ENCODE[ULAW_DECODE.astype(np.int32) + 32768].tolist())
ALAW_TO_ULAW: Final = bytes(ULAW_ENCODE[ALAW_DECODE.astype(np.int32) + 32768].tolist())


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples to mu-law bytes."""
    a = np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768
    return ULAW_ENCODE[a].tobytes()


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples to A-law bytes."""
    a = np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768
    return ALAW_ENCODE[a].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """mu-law bytes to 16-bit linear samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """A-law bytes to 16-bit linear samples."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


@dataclass(frozen=True, slots=True)
class Codec:
    """A G.711 codec as negotiated in SDP: name and RTP payload type."""

    name: str  # "PCMU" or "PCMA"
    payload_type: int

    def __post_init__(self) -> None:
        if self.name not in ("PCMU", "PCMA"):
            raise ValueError(f"unsupported codec {self.name!r}: only PCMU and PCMA")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of range 0..127")

    @property
    def silence_byte(self) -> int:
        """The code of a zero sample (what silence looks like on the wire)."""
        return 0xFF if self.name == "PCMU" else 0xD5

    def encode(self, samples: npt.ArrayLike) -> bytes:
        return ulaw_encode(samples) if self.name == "PCMU" else alaw_encode(samples)

    def decode(self, data: bytes) -> Int16Array:
        return ulaw_decode(data) if self.name == "PCMU" else alaw_decode(data)

    def translate_table(self, to: Codec) -> bytes | None:
        """The byte table turning our payloads into ``to``'s, or None if equal."""
        if self.name == to.name:
            return None
        return ULAW_TO_ALAW if self.name == "PCMU" else ALAW_TO_ULAW


PCMU: Final = Codec("PCMU", 0)
PCMA: Final = Codec("PCMA", 8)
