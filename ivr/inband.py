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
"""

from __future__ import annotations

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
_NORMAL_TWIST = 10 ** (NORMAL_TWIST_DB / 10)
_REVERSE_TWIST = 10 ** (REVERSE_TWIST_DB / 10)
# Power of a tone of amplitude A at its own frequency over the window: (A*N/2)^2.
_MIN_POWER = (MIN_TONE_AMPLITUDE * WINDOW / 2) ** 2


def classify_windows(windows: npt.NDArray[np.float64]) -> list[str | None]:
    """The digit each window (shape (k, WINDOW)) holds, or None."""
    if len(windows) == 0:
        return []
    q = windows.reshape(len(windows), 4, WINDOW // 4)
    quarters = np.einsum("ijk,ijk->ij", q, q)
    energy = quarters.sum(axis=1)
    # A DFT term's power is at most N times the window energy (Cauchy-Schwarz), so
    # quiet windows (pauses, silence: most of a call) cannot hold a digit.
    if float(energy.max()) * WINDOW < _MIN_POWER:
        return [None] * len(windows)
    proj = windows @ _BASIS
    power = proj[:, :8] ** 2 + proj[:, 8:] ** 2
    rows, cols = power[:, :4], power[:, 4:]
    ri = rows.argmax(axis=1)
    ci = cols.argmax(axis=1)
    idx = np.arange(len(windows))
    rmax = rows[idx, ri]
    cmax = cols[idx, ci]
    rsorted = np.sort(rows, axis=1)
    csorted = np.sort(cols, axis=1)
    ok = (
        (rmax >= _MIN_POWER)
        & (cmax >= _MIN_POWER)
        & (rmax >= PEAK_RATIO * rsorted[:, -2])
        & (cmax >= PEAK_RATIO * csorted[:, -2])
        & (cmax * _NORMAL_TWIST >= rmax)
        & (rmax * _REVERSE_TWIST >= cmax)
        # A pure tone of power P has energy 2P/N in the window.
        & ((rmax + cmax) * 2.0 / WINDOW >= TONE_SHARE * energy)
        & (quarters.min(axis=1) >= QUARTER_BALANCE * quarters.max(axis=1))
    )
    return [KEYPAD[r][c] if good else None for r, c, good in zip(ri, ci, ok, strict=True)]


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
        data = np.asarray(samples, dtype=np.float64)
        buf = np.concatenate([self._buffer, data]) if len(self._buffer) else data
        count = 0 if len(buf) < WINDOW else (len(buf) - WINDOW) // HOP + 1
        if count == 0:
            self._buffer = buf
            return []
        # Overlapping windows as a strided view (no copy).
        stride = buf.strides[0]
        windows = np.lib.stride_tricks.as_strided(
            buf, shape=(count, WINDOW), strides=(HOP * stride, stride), writeable=False
        )
        labels = classify_windows(windows)
        out: list[InbandDigit] = []
        for i, label in enumerate(labels):
            digit = self._step(label)
            if digit is not None:
                end = self._consumed + i * HOP + WINDOW
                out.append(InbandDigit(digit, end / RATE))
        used = count * HOP
        self._buffer = buf[used:].copy()
        self._consumed += used
        return out

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
