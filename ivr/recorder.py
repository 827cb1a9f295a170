"""Two-channel call recording to a WAV file, written incrementally so a crash loses little.

Channel 0 is the calling (facility) party, channel 1 the called party. Each
channel takes G.711 payloads with their RTP timestamps; gaps in timestamps
(silence suppression) become silence, and a party that stops sending
altogether is padded with silence against the wall clock so the channels stay
aligned. ``flush(now)`` (call it about once a second) hands what is buffered
to a writer thread, which decodes it in one numpy step, appends it and
rewrites the header sizes, so the file on disk is always a valid WAV at most
about one flush interval behind. Disk writes never run on the event loop: a
stalled disk must not stall the media relay.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ivr.g711 import Codec

RATE = 8000
#: How far behind the wall clock a channel may lag before it is padded with silence.
LAG_ALLOWANCE = 0.5
#: Timestamp jumps larger than this are a sender restart, not silence.
MAX_GAP_SAMPLES = 5 * RATE


class _Writer:
    """One background thread doing every recording's file I/O, in order."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except OSError as exc:  # a full disk loses recording, never the call
                _log.error("recording write failed: %s", exc)


_writer: _Writer | None = None
_writer_lock = threading.Lock()
_log = logging.getLogger(__name__)


def _get_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = _Writer()
        return _writer


class _Channel:
    __slots__ = ("buf", "codec", "last_end", "silence", "total")

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.silence = bytes([codec.silence_byte])
        self.buf = bytearray()
        self.last_end: int | None = None  # RTP timestamp just after the last payload
        self.total = 0  # samples ever buffered (written + pending)


class Recorder:
    def __init__(self, path: Path | str, codecs: tuple[Codec, Codec], now: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - kept open for the call
        self._file.write(self._header(0))
        self._file.flush()
        self._channels = (_Channel(codecs[0]), _Channel(codecs[1]))
        self.start = now
        self.frames_written = 0
        self.closed = False
        self._done = threading.Event()
        self._writer = _get_writer()

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
        # This runs for every relayed packet: plain integer arithmetic only.
        ch = self._channels[channel]
        last = ch.last_end
        if last is not None and timestamp != last:
            gap = (timestamp - last) & 0xFFFFFFFF
            if gap >= 0x80000000:
                return  # late or duplicate packet: its time has already been written
            if gap <= MAX_GAP_SAMPLES:
                ch.buf += ch.silence * gap
                ch.total += gap
        ch.buf += payload
        n = len(payload)
        ch.total += n
        ch.last_end = (timestamp + n) & 0xFFFFFFFF

    def flush(self, now: float, *, final: bool = False) -> None:
        if self.closed:
            return
        expected = int((now - self.start) * RATE)
        floor = expected if final else expected - int(LAG_ALLOWANCE * RATE)
        for ch in self._channels:
            if ch.total < floor:
                ch.buf += ch.silence * (floor - ch.total)
                ch.total = floor
        a, b = self._channels
        n = max(len(a.buf), len(b.buf)) if final else min(len(a.buf), len(b.buf))
        if final:
            for ch in self._channels:
                ch.buf += ch.silence * (n - len(ch.buf))
        if n:
            # The event loop only cuts the G.711 bytes off; decoding them to 16-bit
            # frames is the writer thread's work, like the file I/O.
            first, second = _take(a.buf, n), _take(b.buf, n)
            self.frames_written += n
            header, f = self._header(self.frames_written), self._file
            codecs = (a.codec, b.codec)
            self._writer.submit(lambda: _append(f, _frames(codecs, first, second), header))

    def close(self, now: float) -> Path:
        """Write what is left and close the file (in the background; see ``wait_closed``)."""
        if not self.closed:
            self.flush(now, final=True)
            self.closed = True
            f, done = self._file, self._done

            def finish() -> None:
                try:
                    os.fsync(f.fileno())
                    f.close()
                finally:
                    done.set()

            self._writer.submit(finish)
        return self.path

    def drain(self, timeout: float | None = None) -> bool:
        """Block until everything flushed so far is in the file (for tools and tests)."""
        written = threading.Event()
        self._writer.submit(written.set)
        return written.wait(timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the file is complete on disk (for tools and tests, not the event loop)."""
        return self._done.wait(timeout)

    @property
    def duration(self) -> float:
        return self.frames_written / RATE


def _take(buf: bytearray, n: int) -> bytes:
    """The first ``n`` bytes of ``buf``, removed from it."""
    head = bytes(buf[:n]) if n < len(buf) else bytes(buf)
    del buf[:n]
    return head


def _frames(codecs: tuple[Codec, Codec], first: bytes, second: bytes) -> bytes:
    """Two channels of G.711 bytes as interleaved 16-bit little-endian frames."""
    frames = np.empty((len(first), 2), dtype="<i2")
    frames[:, 0] = codecs[0].decode(first)
    frames[:, 1] = codecs[1].decode(second)
    return frames.tobytes()


def _append(f: BinaryIO, data: bytes, header: bytes) -> None:
    f.write(data)
    # Keep the header true to the data so the file is playable at any moment.
    end = f.tell()
    f.seek(0)
    f.write(header)
    f.seek(end)
    f.flush()


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
