"""In-band DTMF: a vectorised Goertzel detector (sans-IO, streaming) and a tone generator.

The detector looks at 20 ms windows every 10 ms. A window is a *hit* for a digit
when exactly one row and one column frequency stand out (each at least
``PEAK_RATIO`` above the others of its group), both are above the level floor,
the twist is within limits (column at most 8 dB below the row, at most 4 dB
above it), the two tones carry most of the window's energy (speech and noise
spread theirs), and the energy is even across the window (it is not the edge
of a tone). A digit is reported when two consecutive windows agree (so tones
of 40 ms or more are caught and tones under 25 ms are not), and
the detector then waits for two windows without it before reporting again.

Cost per batch of samples is a handful of numpy calls whatever its length: the
windows' DFT terms come from one product of the hop-long blocks with a table,
silent batches stop after one dot product, batches where no window could pass
the tone share (speech) stop before the finer tests, and runs of windows
without a digit advance the state machine without stepping through each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RATE = 8000
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
WINDOW = 160
HOP = 80
#: A row/column peak must exceed the next strongest of its group by this power ratio (6 dB).
PEAK_RATIO = 4.0
#: Normal twist (column weaker than row) and reverse twist limits, dB.
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
#: Share of the window energy the two tones must carry.
TONE_SHARE = 0.75
#: Every quarter of a window must hold this share of the strongest quarter's energy, so
#: windows that only partly overlap a tone do not count (this is what rejects short tones).
QUARTER_BALANCE = 0.6
#: Level floor per tone: about -33 dBm0 (0 dBm0 is a sine of amplitude ~22,700 in 16 bits).
MIN_TONE_AMPLITUDE = 500.0
CONFIRM_WINDOWS = 2
RELEASE_WINDOWS = 2

_FREQS = np.array(ROWS + COLS)
_QUARTER = WINDOW // 4
_n = np.arange(WINDOW)
# A Goertzel filter at an exact frequency is a single DFT term: evaluate all
# eight for many windows at once as one matrix product.
_BASIS = np.concatenate(
    [
        np.cos(2 * np.pi * np.outer(_n, _FREQS) / RATE),
        np.sin(2 * np.pi * np.outer(_n, _FREQS) / RATE),
    ],
    axis=1,
)
# A window is two hops, so its DFT terms are the first half of the basis applied
# to one hop-long block plus the second half applied to the next: one product of
# the (non-overlapping) blocks with both halves side by side serves every window,
# with no overlapping window matrix built.
_BLOCK_BASIS = np.ascontiguousarray(np.concatenate([_BASIS[:HOP], _BASIS[HOP:]], axis=1))
_NORMAL_TWIST = 10 ** (NORMAL_TWIST_DB / 10)
_REVERSE_TWIST = 10 ** (REVERSE_TWIST_DB / 10)
# Power of a tone of amplitude A at its own frequency over the window: (A*N/2)^2.
_MIN_POWER = (MIN_TONE_AMPLITUDE * WINDOW / 2) ** 2
# Tone share as a bound on the power at all eight frequencies, a hair lenient.
_SCREEN_SHARE = TONE_SHARE * WINDOW / 2 * (1 - 1e-9)


def window_count(samples: int) -> int:
    """How many whole windows, one every HOP samples, ``samples`` samples hold."""
    return 0 if samples < WINDOW else (samples - WINDOW) // HOP + 1


def _blocks(samples: npt.NDArray[np.float64], count: int) -> npt.NDArray[np.float64]:
    # The hop-long blocks that ``count`` windows cover: window i is blocks i and i+1.
    return np.ascontiguousarray(samples[: (count + 1) * HOP], dtype=np.float64).reshape(
        count + 1, HOP
    )


#: Rows per matrix product: OpenBLAS hands larger ones to its worker threads, which
#: made a product of a few hundred rows fifty times slower and left a thread spinning.
_PRODUCT_ROWS = 192


def _projections(blocks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Each window's cosine then sine terms at the eight frequencies, shape (k, 16).
    if len(blocks) <= _PRODUCT_ROWS:
        proj: npt.NDArray[np.float64] = blocks @ _BLOCK_BASIS
    else:
        proj = np.empty((len(blocks), _BLOCK_BASIS.shape[1]))
        for start in range(0, len(blocks), _PRODUCT_ROWS):
            end = start + _PRODUCT_ROWS
            np.matmul(blocks[start:end], _BLOCK_BASIS, out=proj[start:end])
    return proj[:-1, :16] + proj[1:, 16:]


def _powers(proj: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return proj[:, :8] ** 2 + proj[:, 8:] ** 2


def _quarters(blocks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    halves = blocks.reshape(len(blocks), HOP // _QUARTER, _QUARTER)
    half_energy = np.einsum("ijk,ijk->ij", halves, halves)
    return np.concatenate([half_energy[:-1], half_energy[1:]], axis=1)


def window_analysis(
    samples: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per window of ``samples`` (1-D, windows every HOP samples): the power at the
    eight DTMF frequencies (shape (k, 8), rows then columns) and the energy of each
    quarter of the window (shape (k, 4))."""
    count = window_count(len(samples))
    if count == 0:
        return np.zeros((0, 8)), np.zeros((0, 4))
    blocks = _blocks(samples, count)
    return _powers(_projections(blocks)), _quarters(blocks)


def window_hits(
    power: npt.NDArray[np.float64], quarters: npt.NDArray[np.float64]
) -> list[tuple[int, str]]:
    """The windows that hold a digit, as (window index, digit), from
    ``window_analysis``'s figures."""
    k = len(power)
    groups = power.reshape(k, 2, 4)
    best = groups.argmax(axis=2)
    ranked = np.sort(groups, axis=2)
    rmax, cmax = ranked[:, 0, 3], ranked[:, 1, 3]
    ok = (
        (rmax >= _MIN_POWER)
        & (cmax >= _MIN_POWER)
        & (rmax >= PEAK_RATIO * ranked[:, 0, 2])
        & (cmax >= PEAK_RATIO * ranked[:, 1, 2])
        & (cmax * _NORMAL_TWIST >= rmax)
        & (rmax * _REVERSE_TWIST >= cmax)
        # A pure tone of power P has energy 2P/N in the window.
        & ((rmax + cmax) * 2.0 / WINDOW >= TONE_SHARE * quarters.sum(axis=1))
        & (quarters.min(axis=1) >= QUARTER_BALANCE * quarters.max(axis=1))
    )
    hits = np.flatnonzero(ok)
    keys = (best[hits, 0] * 4 + best[hits, 1]).tolist()
    return [(i, KEYPAD[key // 4][key % 4]) for i, key in zip(hits.tolist(), keys, strict=True)]


def _is_quiet(samples: npt.NDArray[np.float64]) -> bool:
    # A DFT term's power is at most N times the window energy (Cauchy-Schwarz), and no
    # window holds more energy than all the samples together, so quiet stretches
    # (pauses, silence: most of a call) cannot hold a digit and need no analysis.
    return float(np.dot(samples, samples)) * WINDOW < _MIN_POWER


def _may_hold_tones(proj: npt.NDArray[np.float64], blocks: npt.NDArray[np.float64]) -> bool:
    # The two tones' power is part of all eight frequencies' power, so windows where
    # the eight together fall short of the tone share (speech, noise) hold no digit.
    # The margin covers rounding: this must never turn away a window that passes.
    eight = np.einsum("ij,ij->i", proj, proj)
    block_energy = np.einsum("ij,ij->i", blocks, blocks)
    energy = block_energy[:-1] + block_energy[1:]
    return bool((eight >= energy * _SCREEN_SHARE).any())


@dataclass(frozen=True, slots=True)
class InbandDigit:
    digit: str
    #: Seconds from the start of the stream to the window that confirmed it.
    at: float


class InbandDetector:
    """Streaming detector: feed samples as they arrive, get digits out once each."""

    def __init__(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float64)
        self._consumed = 0  # samples before the start of _buffer
        self._candidate: str | None = None
        self._candidate_count = 0
        self._active: str | None = None
        self._miss = 0

    def feed(self, samples: npt.ArrayLike) -> list[InbandDigit]:
        buf = self._joined(samples)
        count = window_count(len(buf))
        if count == 0:
            self._buffer = buf
            return []
        hits: list[tuple[int, str]] = []
        if not _is_quiet(buf[: count * HOP + WINDOW - HOP]):
            blocks = _blocks(buf, count)
            proj = _projections(blocks)
            if _may_hold_tones(proj, blocks):
                hits = window_hits(_powers(proj), _quarters(blocks))
        return self._advance(buf, count, hits)

    def _joined(self, samples: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if len(self._buffer):
            return np.concatenate([self._buffer, np.asarray(samples)], dtype=np.float64)
        return np.asarray(samples, dtype=np.float64)

    def _advance(
        self, buf: npt.NDArray[np.float64], count: int, hits: list[tuple[int, str]]
    ) -> list[InbandDigit]:
        """Step through ``count`` windows of ``buf`` given the ones that hold a digit."""
        used = count * HOP
        out: list[InbandDigit] = []
        last = -1
        for i, label in hits:
            if i > last + 1:
                self._no_digit(i - last - 1)
            last = i
            digit = self._step(label)
            if digit is not None:
                end = self._consumed + i * HOP + WINDOW
                out.append(InbandDigit(digit, end / RATE))
        self._no_digit(count - last - 1)
        self._buffer = buf[used:].copy()
        self._consumed += used
        return out

    def _no_digit(self, count: int) -> None:
        # ``count`` windows in a row without a digit: after RELEASE_WINDOWS of them the
        # state no longer changes, so the rest need no stepping.
        for _ in range(min(count, RELEASE_WINDOWS)):
            self._step(None)

    def _step(self, label: str | None) -> str | None:
        if self._active is not None:
            if label == self._active:
                self._miss = 0
                return None
            self._miss += 1
            if self._miss < RELEASE_WINDOWS:
                return None
            self._active = None
            self._miss = 0
        if label is None:
            self._candidate, self._candidate_count = None, 0
            return None
        if label == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = label, 1
        if self._candidate_count >= CONFIRM_WINDOWS:
            self._active = label
            self._candidate, self._candidate_count = None, 0
            return label
        return None


def feed_many(
    detectors: Sequence[InbandDetector], chunks: Sequence[npt.ArrayLike]
) -> list[list[InbandDigit]]:
    """``[d.feed(c) for d, c in zip(detectors, chunks)]`` in one vectorised pass.

    The numpy calls of an analysis cost far more than their arithmetic on a few
    hundred milliseconds of audio, so many streams (every call leg that heard
    audio during one turn of the event loop) share them: their hop-long blocks
    are stacked into one matrix, and one product and one screening serve all of
    them. Only streams with a window that passes the screening get the finer tests.
    """
    if len(detectors) != len(chunks):
        raise ValueError(f"{len(detectors)} detectors for {len(chunks)} chunks")
    bufs = [d._joined(c) for d, c in zip(detectors, chunks, strict=True)]
    counts = [window_count(len(b)) for b in bufs]
    hits: list[list[tuple[int, str]]] = [[] for _ in detectors]
    whole = [i for i, c in enumerate(counts) if c]
    if whole:
        # Stream i owns blocks starts[i] .. starts[i] + counts[i]; its windows are the
        # rows starts[i] .. starts[i] + counts[i] - 1 of the per-window arrays, and the
        # row after them straddles two streams.
        blocks = np.concatenate(
            [bufs[i][: (counts[i] + 1) * HOP] for i in whole]).reshape(-1, HOP)
        proj = _projections(blocks)
        eight = np.einsum("ij,ij->i", proj, proj)
        block_energy = np.einsum("ij,ij->i", blocks, blocks)
        energy = block_energy[:-1] + block_energy[1:]
        # The tone share as in _may_hold_tones, and the level floor as in _is_quiet,
        # window by window (silence would pass the share test: 0 >= 0).
        screened = (eight >= energy * _SCREEN_SHARE) & (energy * WINDOW >= _MIN_POWER)
        start = 0
        for i in whole:
            end = start + counts[i]
            if screened[start:end].any():
                hits[i] = window_hits(_powers(proj[start:end]),
                                      _quarters(blocks[start : end + 1]))
            start = end + 1
    out: list[list[InbandDigit]] = []
    for d, buf, count, found in zip(detectors, bufs, counts, hits, strict=True):
        if count == 0:
            d._buffer = buf
            out.append([])
        else:
            out.append(d._advance(buf, count, found))
    return out


def dtmf_tone(
    digit: str, duration_ms: int, level_dbm0: float = -10.0, twist_db: float = 0.0
) -> npt.NDArray[np.int16]:
    """A DTMF tone, each frequency at ``level_dbm0`` (the column ``twist_db`` higher)."""
    for r, row in enumerate(KEYPAD):
        if digit in row:
            fr, fc = ROWS[r], COLS[row.index(digit)]
            break
    else:
        raise ValueError(f"{digit!r} is not a DTMF digit")
    t = np.arange(RATE * duration_ms // 1000) / RATE
    amp = 22_700 * 10 ** (level_dbm0 / 20)
    amp_c = amp * 10 ** (twist_db / 20)
    x = amp * np.sin(2 * np.pi * fr * t) + amp_c * np.sin(2 * np.pi * fc * t)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
