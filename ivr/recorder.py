"""Two-channel call recording to a WAV file, written incrementally so a crash loses little.

Channel 0 is the calling (facility) party, channel 1 the called party. Each
channel takes G.711 payloads with their RTP timestamps; gaps in timestamps
(silence suppression) become silence, and a party that stops sending
altogether is padded with silence against the wall clock so the channels stay
aligned. ``flush(now)`` (call it about once a second) decodes what is
buffered in one numpy step, appends it and rewrites the header sizes, so the
file on disk is always a valid WAV at most about one flush interval behind.

Those writes go to the page cache from the caller's thread (the event loop):
two ``pwrite`` calls a second per call. A thread doing them instead held the
interpreter lock for every recording's decoding and file calls, and the loop,
which releases that lock at every packet it sends, waited for it again each
time: at a thousand calls that added up to loop stalls of 50-200 ms. What
can wait on the disk for long, the sync that makes a finished recording
durable and the close, runs on one background thread that does nothing else.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ivr.g711 import Codec

RATE = 8000
#: How far behind the wall clock a channel may lag before it is padded with silence.
LAG_ALLOWANCE = 0.5
#: Timestamp jumps larger than this are a sender restart, not silence.
MAX_GAP_SAMPLES = 5 * RATE
#: The WAV header's size: the data follows it.
HEADER_SIZE = 44


class _Syncer:
    """One background thread that syncs finished recordings to disk and closes them."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recording-sync", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except OSError as exc:  # a full disk loses recording, never the call
                _log.error("recording sync failed: %s", exc)


_syncer: _Syncer | None = None
_syncer_lock = threading.Lock()
_log = logging.getLogger(__name__)


def _get_syncer() -> _Syncer:
    global _syncer
    with _syncer_lock:
        if _syncer is None:
            _syncer = _Syncer()
        return _syncer


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
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(self._fd, self._header(0))
        except BaseException:
            os.close(self._fd)
            raise
        self._channels = (_Channel(codecs[0]), _Channel(codecs[1]))
        self.start = now
        self.frames_written = 0
        self.closed = False
        #: Set once a write failed (a full disk): the call goes on unrecorded from there.
        self.failed = False
        self._done = threading.Event()

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

    def resume_channels(self, now: float) -> None:
        """The parties send again after a hold (at ``now``): the held time up to now is
        silence, and their timestamps start the count again."""
        expected = int((now - self.start) * RATE)
        for ch in self._channels:
            if ch.total < expected:
                ch.buf += ch.silence * (expected - ch.total)
                ch.total = expected
            ch.last_end = None

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
        if not n:
            return
        first, second = _take(a.buf, n), _take(b.buf, n)
        if self.failed:
            return  # the buffers are still emptied, so a failed recording holds no audio
        frames = _frames((a.codec, b.codec), first, second)
        try:
            os.pwrite(self._fd, frames, HEADER_SIZE + self.frames_written * 4)
            self.frames_written += n
            # Keep the header true to the data so the file is playable at any moment.
            os.pwrite(self._fd, self._header(self.frames_written), 0)
        except OSError as exc:  # a full disk loses recording, never the call
            self.failed = True
            _log.error("recording %s stopped: %s", self.path, exc)

    def close(self, now: float) -> Path:
        """Write what is left, then sync and close the file in the background (see
        ``wait_closed``)."""
        if not self.closed:
            self.flush(now, final=True)
            self.closed = True
            fd, done = self._fd, self._done

            def finish() -> None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                    done.set()

            _get_syncer().submit(finish)
        return self.path

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the file is complete on disk (for tools and tests, not the event loop)."""
        return self._done.wait(timeout)

    @property
    def duration(self) -> float:
        return self.frames_written / RATE


def _take(buf: bytearray, n: int) -> bytearray:
    """The first ``n`` bytes of ``buf``, removed from it."""
    head = buf[:n]
    del buf[:n]
    return head


@functools.cache
def _pair_table(first: Codec, second: Codec) -> npt.NDArray[np.int16]:
    """Both channels' 16-bit samples for every pair of G.711 codes: row ``a << 8 | b``
    is one frame (256 KiB per pair of codecs, built on first use)."""
    table = np.empty((256, 256, 2), dtype="<i2")
    table[:, :, 0] = first.decode(bytes(range(256)))[:, None]
    table[:, :, 1] = second.decode(bytes(range(256)))[None, :]
    return table.reshape(65536, 2)


def _frames(codecs: tuple[Codec, Codec], first: bytearray, second: bytearray) -> bytes:
    """Two channels of G.711 bytes as interleaved 16-bit little-endian frames."""
    # One lookup per frame in a table of code pairs: a third of the time of
    # decoding each channel and interleaving the two.
    pairs = np.frombuffer(first, dtype=np.uint8).astype(np.uint16) << 8
    pairs |= np.frombuffer(second, dtype=np.uint8)
    return _pair_table(*codecs).take(pairs, axis=0).tobytes()


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
