"""Two-channel call recording to a WAV file, written incrementally so a crash loses little.

Channel 0 is the calling (facility) party, channel 1 the called party. Each
channel takes G.711 payloads with their RTP timestamps; gaps in timestamps
(silence suppression) become silence, and a party that stops sending
altogether is padded with silence against the wall clock so the channels stay
aligned. ``flush(now)`` (call it about once a second) decodes what is buffered
in one numpy step, appends it, and rewrites the header sizes, so the file on
disk is always a valid WAV at most one flush interval behind.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ivr.g711 import Codec
from ivr.rtp import ts_diff

RATE = 8000
#: How far behind the wall clock a channel may lag before it is padded with silence.
LAG_ALLOWANCE = 0.5
#: Timestamp jumps larger than this are a sender restart, not silence.
MAX_GAP_SAMPLES = 5 * RATE


class _Channel:
    __slots__ = ("buf", "codec", "last_end", "total")

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.buf = bytearray()
        self.last_end: int | None = None  # RTP timestamp just after the last payload
        self.total = 0  # samples ever buffered (written + pending)


class Recorder:
    def __init__(self, path: Path | str, codecs: tuple[Codec, Codec], now: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - kept open for the call
        self._file.write(self._header(0))
        self._channels = (_Channel(codecs[0]), _Channel(codecs[1]))
        self.start = now
        self.frames_written = 0
        self.closed = False

    @staticmethod
    def _header(frames: int) -> bytes:
        data = frames * 4
        return (
            b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, RATE, RATE * 4, 4, 16)
            + b"data" + struct.pack("<I", data)
        )

    def add(self, channel: int, payload: bytes, timestamp: int) -> None:
        """A G.711 payload heard from party ``channel`` (in that channel's codec)."""
        ch = self._channels[channel]
        if ch.last_end is not None:
            gap = ts_diff(timestamp, ch.last_end)
            if gap < 0:
                return  # late or duplicate packet: its time has already been written
            if 0 < gap <= MAX_GAP_SAMPLES:
                ch.buf += bytes([ch.codec.silence_byte]) * gap
                ch.total += gap
        ch.buf += payload
        ch.total += len(payload)
        ch.last_end = (timestamp + len(payload)) & 0xFFFFFFFF

    def flush(self, now: float, *, final: bool = False) -> None:
        if self.closed:
            return
        expected = int((now - self.start) * RATE)
        floor = expected if final else expected - int(LAG_ALLOWANCE * RATE)
        for ch in self._channels:
            if ch.total < floor:
                ch.buf += bytes([ch.codec.silence_byte]) * (floor - ch.total)
                ch.total = floor
        a, b = self._channels
        n = max(len(a.buf), len(b.buf)) if final else min(len(a.buf), len(b.buf))
        if final:
            for ch in self._channels:
                ch.buf += bytes([ch.codec.silence_byte]) * (n - len(ch.buf))
        if n:
            frames = np.empty((n, 2), dtype="<i2")
            frames[:, 0] = a.codec.decode(bytes(a.buf[:n]))
            frames[:, 1] = b.codec.decode(bytes(b.buf[:n]))
            del a.buf[:n]
            del b.buf[:n]
            self._file.write(frames.tobytes())
            self.frames_written += n
            # Keep the header true to the data so the file is playable at any moment.
            end = self._file.tell()
            self._file.seek(0)
            self._file.write(self._header(self.frames_written))
            self._file.seek(end)
        self._file.flush()

    def close(self, now: float) -> Path:
        if not self.closed:
            self.flush(now, final=True)
            os.fsync(self._file.fileno())
            self._file.close()
            self.closed = True
        return self.path

    @property
    def duration(self) -> float:
        return self.frames_written / RATE


def open_recording(
    directory: Path | str,
    call_id: str,
    *,
    privileged: bool,
    codecs: tuple[Codec, Codec],
    now: float,
) -> Recorder | None:
    """The recorder of an accepted call, or None: privileged calls are never recorded.

    The file is ``<directory>/<call_id>.wav``; its path (``Recorder.path``)
    is what the CDR points at.
    """
    if privileged:
        return None
    if not call_id or any(c in call_id for c in "/\\\0") or call_id.startswith("."):
        raise ValueError(f"call id {call_id!r} cannot name a recording file")
    return Recorder(Path(directory) / f"{call_id}.wav", codecs, now)
