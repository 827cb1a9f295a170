"""Three-way call and call-forwarding detection on the called party's leg (sans-IO, numpy).

`ThreeWayDetector` is fed the decoded 8 kHz samples of the called leg of a
connected call, in arrival order, and reports the signalling it hears as
`SignalHeard` events, each with its time in the call: a hook ``flash`` (a
click under 40 ms at an edge of a near-silent gap of 200-800 ms, the line
open while on hook), ``dial_tone`` (350+440 Hz, continuous), ``dialling``
(DTMF digits, found by `ivr.inband`), ``ringback`` (440+480 Hz, a burst of
about 2 s), ``busy_tone`` (480+620 Hz, 0.5 s on and 0.5 s off) and
``masking_noise`` (a loud steady noise that starts suddenly, as if to cover
a gap). It analyses tones and levels only and keeps no audio beyond the
samples short of a 40 ms window.

`ThreeWayPolicy` turns those signals into one `ThreeWaySuspected` decision:
a flash (or masking noise) followed within a few seconds by dial tone,
dialling, ringback or busy tone, or dialling or ringback on their own.

The analysis works on 20 ms frames: per frame its level and the levels of its
four 5 ms quarters (clicks, and how steady it is), and per 40 ms window of two
frames the power at the four call-progress frequencies (one matrix product
per batch of many legs, `feed_many`). Frames are labelled with numpy; only
the runs of equal labels (a few a second) go through Python.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ivr import inband
from ivr.inband import InbandDetector, InbandDigit

RATE = 8000
FRAME = 160  # 20 ms
FRAME_S = FRAME / RATE
QUARTER = FRAME // 4
#: A sine of this amplitude in 16 bits is 0 dBm0.
ZERO_DBM0_AMPLITUDE = 22_700
#: Call-progress frequencies, in the order of the power columns.
FREQS = (350.0, 440.0, 480.0, 620.0)
_F350, _F440, _F480, _F620 = range(4)


class Signal(enum.Enum):
    FLASH = "flash"
    DIAL_TONE = "dial_tone"
    DIALLING = "dialling"
    RINGBACK = "ringback"
    BUSY_TONE = "busy_tone"
    MASKING_NOISE = "masking_noise"


@dataclass(frozen=True, slots=True)
class SignalHeard:
    """A signal heard on the called leg: when it started (seconds in the call) and
    how long it lasted; ``digits`` for dialling."""

    signal: Signal
    at: float
    seconds: float
    digits: str = ""

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"signal": self.signal.value, "at": round(self.at, 2),
                                "seconds": round(self.seconds, 2)}
        if self.digits:
            d["digits"] = self.digits
        return d


@dataclass(frozen=True, slots=True)
class ThreeWaySuspected:
    """The call looks like a three-way (or forwarded) call, decided at ``at``."""

    at: float
    signals: tuple[SignalHeard, ...]


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """Detector and policy thresholds; the defaults meet the figures in BENCHMARKS.md."""

    #: Each tone of a call-progress pair must be at least this loud.
    tone_min_dbm0: float = -36.0
    #: Share of a window's energy the two tones of a pair must carry.
    tone_share: float = 0.7
    #: Continuous dial tone this long is reported.
    dial_tone_seconds: float = 0.8
    #: A ringback burst lasts between these (the standard is 2 s).
    ringback_min_seconds: float = 1.5
    ringback_max_seconds: float = 2.6
    #: Busy tone bursts and pauses last between these (the standard is 0.5 s).
    busy_min_seconds: float = 0.35
    busy_max_seconds: float = 0.65
    #: The on-hook gap of a hook flash lasts between these.
    flash_min_seconds: float = 0.18
    flash_max_seconds: float = 0.85
    #: Frames of the gap are at most this loud...
    gap_max_dbm0: float = -55.0
    #: ...and a click at an edge is at least this loud over 5 ms...
    click_min_dbm0: float = -40.0
    #: ...and this much louder than the audio on its other side.
    click_rise_db: float = 9.0
    #: A gap without clicks counts when the line was this much louder just before it.
    gap_drop_db: float = 25.0
    #: Masking noise: at least this loud, this steady (spread of 20 ms levels, dB),
    #: this long, and starting this far above the level before it.
    masking_min_dbm0: float = -38.0
    masking_spread_db: float = 6.0
    masking_seconds: float = 1.0
    masking_rise_db: float = 12.0
    #: Noise, not a tone: the 5 ms levels within a 20 ms frame differ by this much (median).
    masking_roughness_db: float = 2.5
    #: Dialling: this many DTMF digits, each within this long of the one before.
    dialling_digits: int = 3
    dialling_gap_seconds: float = 4.0
    #: Digits this soon after acceptance are prompt keys still being released.
    prompt_key_grace_seconds: float = 1.5
    #: A flash or masking noise counts when tones or dialling follow within this long.
    follow_seconds: float = 8.0

    def __post_init__(self) -> None:
        for lo, hi in (("ringback_min_seconds", "ringback_max_seconds"),
                       ("busy_min_seconds", "busy_max_seconds"),
                       ("flash_min_seconds", "flash_max_seconds")):
            if not 0 < getattr(self, lo) < getattr(self, hi):
                raise ValueError(f"{lo} must be above 0 and below {hi}")
        if not 0 < self.tone_share <= 1:
            raise ValueError("tone_share must be above 0 and at most 1")
        if self.dialling_digits < 1:
            raise ValueError("dialling_digits must be at least 1")
        for name in ("dial_tone_seconds", "masking_seconds", "follow_seconds",
                     "dialling_gap_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be above 0")


def dbm0(power: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    """Mean-square sample power to dBm0 (0 dBm0 is a sine of amplitude 22,700)."""
    ref = ZERO_DBM0_AMPLITUDE**2 / 2
    return np.asarray(10 * np.log10(np.maximum(power, 1e-3) / ref))


#: Tones are judged over 40 ms windows, two frames each, one after the other: fine
#: enough to tell 440 from 480 Hz (25 Hz resolution) and to time a 0.5 s cadence.
WINDOW = 2 * FRAME
_n = np.arange(WINDOW)
_BASIS = np.ascontiguousarray(np.concatenate([np.cos(2 * np.pi * np.outer(_n, FREQS) / RATE),
                                              np.sin(2 * np.pi * np.outer(_n, FREQS) / RATE)],
                                             axis=1))
_NF = len(FREQS)

NONE, DIAL, RINGBACK, BUSY = 0, 1, 2, 3
_PAIRS = {DIAL: (_F350, _F440), RINGBACK: (_F440, _F480), BUSY: (_F480, _F620)}


#: Rows per matrix product: OpenBLAS hands larger ones to its worker threads, which is
#: many times slower for products this small (see ivr.inband).
_PRODUCT_ROWS = 192


def _product(windows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if len(windows) <= _PRODUCT_ROWS:
        proj: npt.NDArray[np.float64] = windows @ _BASIS
        return proj
    proj = np.empty((len(windows), _BASIS.shape[1]))
    for start in range(0, len(windows), _PRODUCT_ROWS):
        end = start + _PRODUCT_ROWS
        np.matmul(windows[start:end], _BASIS, out=proj[start:end])
    return proj


def _labels(windows: npt.NDArray[np.float64], energy: npt.NDArray[np.float64],
            share: npt.NDArray[np.float64] | float, floor_dbm0: npt.NDArray[np.float64] | float,
            ) -> npt.NDArray[np.int8]:
    """Which call-progress pair (NONE, DIAL, RINGBACK, BUSY) fills each 40 ms window
    (``windows`` shape (k, 320), ``energy`` theirs), each tone of the pair at least
    ``floor_dbm0`` and the pair at least ``share`` of the window's energy."""
    labels = np.zeros(len(windows), dtype=np.int8)
    if len(windows) == 0:
        return labels
    proj = _product(windows)
    power = proj[:, :_NF] ** 2 + proj[:, _NF:] ** 2
    # A tone of amplitude A has power (A n / 2)^2 at its frequency and energy A^2 n / 2,
    # so the share of a window's energy in the pair is 2 (p1 + p2) / (n E).
    need = energy * (np.asarray(share) * (WINDOW / 2))
    # No pair can pass where the four frequencies together fall short (speech, noise).
    if not (power.sum(axis=1) >= need).any():
        return labels
    floor = (ZERO_DBM0_AMPLITUDE * 10 ** (np.asarray(floor_dbm0) / 20) * WINDOW / 2) ** 2
    best = np.zeros(len(windows))
    for label, (f1, f2) in _PAIRS.items():
        p1, p2 = power[:, f1], power[:, f2]
        pair = p1 + p2
        # The two tones of a pair are sent at about the same level (within 10 dB).
        ok = ((pair >= need) & (pair > best) & (p1 >= floor) & (p2 >= floor)
              & (p1 <= 10 * p2) & (p2 <= 10 * p1))
        labels[ok] = label
        best = np.where(ok, pair, best)
    return labels


def frame_labels(samples: npt.ArrayLike, sensitivity: Sensitivity | None = None,
                 ) -> npt.NDArray[np.int8]:
    """The call-progress pair heard in each 20 ms frame of ``samples`` (judged by 40 ms
    windows, so both frames of a window get its label)."""
    s = sensitivity or Sensitivity()
    x = np.asarray(samples, dtype=np.float64)
    windows = x[: len(x) // WINDOW * WINDOW].reshape(-1, WINDOW)
    labels = _labels(windows, np.einsum("ij,ij->i", windows, windows), s.tone_share,
                     s.tone_min_dbm0)
    return np.repeat(labels, 2)


def _runs(values: npt.NDArray[np.int8]) -> list[tuple[int, int, int]]:
    """(value, start, end) of each run of equal values."""
    if len(values) == 0:
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = [0, *edges.tolist()]
    ends = [*edges.tolist(), len(values)]
    vals = values[starts].tolist()
    return list(zip(vals, starts, ends, strict=True))


@dataclass
class _ToneRun:
    label: int = NONE
    start: int = 0  # frame index
    end: int = 0  # one past the last frame of the tone
    reported: bool = False


#: A break this many frames long does not end a tone (packet loss, a window over a join).
_TONE_BREAK = 4
#: Frames of levels kept (5 s) for gaps, clicks and masking noise.
_HISTORY = 250
#: Frames before masking noise whose level it must rise above (0.5 s).
_MASKING_PRIOR = 25


class _History:
    """The last ``_HISTORY`` frames' figures, appended without reallocating."""

    __slots__ = ("data", "end", "total")

    def __init__(self) -> None:
        # Rows: level, loudest quarter, roughness (dBm0, dB), tone label (as a float).
        self.data = np.zeros((4, 2 * _HISTORY))
        self.end = 0  # columns in use
        self.total = 0  # frames ever appended

    def append(self, rows: npt.NDArray[np.float64]) -> None:
        k = rows.shape[1]
        if k >= _HISTORY:
            self.data[:, :_HISTORY] = rows[:, -_HISTORY:]
            self.end = _HISTORY
        else:
            if self.end + k > self.data.shape[1]:
                keep = _HISTORY - k
                self.data[:, :keep] = self.data[:, self.end - keep: self.end]
                self.end = keep
            self.data[:, self.end: self.end + k] = rows
            self.end += k
        self.total += k

    @property
    def start(self) -> int:
        """Frame index of the first frame kept."""
        return self.total - self.end

    def view(self) -> npt.NDArray[np.float64]:
        return self.data[:, : self.end]


class ThreeWayDetector:
    """Streaming detector for one called leg: ``feed`` samples, get `SignalHeard` out."""

    def __init__(self, sensitivity: Sensitivity | None = None, *, start: float = 0.0) -> None:
        self.sensitivity = sensitivity or Sensitivity()
        #: Seconds in the call of the first sample fed.
        self.start = start
        self._pending = np.zeros(0, dtype=np.float64)  # samples short of a window
        self._tone = _ToneRun()
        self._busy: list[tuple[int, int]] = []
        self._history = _History()
        self._checked = 0  # gaps ending before this frame were judged
        self._last_quiet = -(10**9)  # the last frame at gap level
        self._loud_run = 0  # frames in a row, to the last, loud enough to be masking noise
        self._masking_until = -1
        self._dtmf = InbandDetector()
        #: The last batch ended with a frame that may be part of a digit: look at the next.
        self._dtmf_hot = False
        self._digits: list[tuple[str, float]] = []
        self._digits_reported = 0

    @property
    def frames(self) -> int:
        """20 ms frames analysed so far."""
        return self._history.total

    @property
    def now(self) -> float:
        """Seconds in the call of the end of what was analysed."""
        return self._t(self._history.total)

    def _t(self, frame: int) -> float:
        return self.start + frame * FRAME_S

    def feed(self, samples: npt.ArrayLike) -> list[SignalHeard]:
        """Analyse the next samples of the leg (int16 or float, 8 kHz)."""
        return feed_many([self], [samples])[0]

    def _windows(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        """The whole 40 ms windows of what is pending and ``x`` (shape (k, 320)), or None."""
        if len(self._pending):
            x = np.concatenate([self._pending, x])
        whole = len(x) // WINDOW
        self._pending = x[whole * WINDOW:].copy()
        if whole == 0:
            return None
        return x[: whole * WINDOW].reshape(whole, WINDOW)

    def _analysed(self, figures: npt.NDArray[np.float64], last_quiet: int, last_soft: int,
                  toned: bool) -> list[SignalHeard]:
        """Step the state on the figures of the next frames (rows as in `_History`):
        ``last_quiet`` is the last of them at gap level and ``last_soft`` the last below
        the masking level (-1: none), ``toned`` whether any has a tone label."""
        step = _HISTORY // 2  # what the history holds besides the gaps being judged
        if figures.shape[1] > step:
            s = self.sensitivity
            out: list[SignalHeard] = []
            for i in range(0, figures.shape[1], step):
                part = figures[:, i: i + step]
                quiet = np.flatnonzero(part[0] <= s.gap_max_dbm0)
                soft = np.flatnonzero(part[0] < s.masking_min_dbm0)
                out += self._analysed(part, int(quiet[-1]) if len(quiet) else -1,
                                      int(soft[-1]) if len(soft) else -1, bool(part[3].any()))
            return out
        first = self._history.total
        k = figures.shape[1]
        self._history.append(figures)
        out = []
        if toned or self._tone.label != NONE:
            out += self._tones(figures[3].astype(np.int8), first)
        if last_quiet >= 0:
            self._last_quiet = first + last_quiet
        self._loud_run = self._loud_run + k if last_soft < 0 else k - 1 - last_soft
        out += self._gaps_and_noise(first)
        return out

    # -- dialling -----------------------------------------------------------------

    def _skip_dtmf(self, x: npt.NDArray[np.float64]) -> None:
        """Move the DTMF detector over ``x`` known to hold no digit, as its ``_advance``
        does over windows without one, keeping only the samples a next window needs."""
        det = self._dtmf
        held = len(det._buffer)
        count = inband.window_count(held + len(x))
        if count == 0:
            det._buffer = det._joined(x)
            return
        det._no_digit(count)
        used = count * inband.HOP
        det._buffer = (x[used - held:].copy() if used >= held
                       else np.concatenate([det._buffer[used:], x]))
        det._consumed += used

    def _dialled(self, heard: list[InbandDigit]) -> list[SignalHeard]:
        s = self.sensitivity
        for d in heard:
            at = self.start + d.at
            if at - self.start < s.prompt_key_grace_seconds:
                continue
            if self._digits and at - self._digits[-1][1] > s.dialling_gap_seconds:
                self._digits, self._digits_reported = [], 0
            self._digits.append((d.digit, at))
        if len(self._digits) >= s.dialling_digits and self._digits_reported == 0:
            self._digits_reported = len(self._digits)
            first, last = self._digits[0][1], self._digits[-1][1]
            return [SignalHeard(Signal.DIALLING, first, last - first,
                                "".join(d for d, _ in self._digits))]
        return []

    # -- tones --------------------------------------------------------------------

    def _tones(self, labels: npt.NDArray[np.int8], first: int) -> list[SignalHeard]:
        out: list[SignalHeard] = []
        run = self._tone
        for label, start, end in _runs(labels):
            start += first
            end += first
            if label == NONE:
                if run.label != NONE and end - run.end > _TONE_BREAK:
                    out += self._tone_ended(run)
                    self._tone = run = _ToneRun()
                continue
            if label == run.label and start - run.end <= _TONE_BREAK:
                run.end = end
            else:
                if run.label != NONE:
                    out += self._tone_ended(run)
                self._tone = run = _ToneRun(label, start, end)
            out += self._tone_going(run)
        return out

    def _tone_going(self, run: _ToneRun) -> list[SignalHeard]:
        s = self.sensitivity
        seconds = (run.end - run.start) * FRAME_S
        if run.label == DIAL and not run.reported and seconds >= s.dial_tone_seconds:
            run.reported = True
            return [SignalHeard(Signal.DIAL_TONE, self._t(run.start), seconds)]
        return []

    def _tone_ended(self, run: _ToneRun) -> list[SignalHeard]:
        s = self.sensitivity
        seconds = (run.end - run.start) * FRAME_S
        if run.label == RINGBACK and s.ringback_min_seconds <= seconds <= s.ringback_max_seconds:
            return [SignalHeard(Signal.RINGBACK, self._t(run.start), seconds)]
        if run.label == BUSY:
            if not s.busy_min_seconds <= seconds <= s.busy_max_seconds:
                self._busy = []
                return []
            if self._busy:
                pause = (run.start - self._busy[-1][1]) * FRAME_S
                if not s.busy_min_seconds <= pause <= s.busy_max_seconds:
                    self._busy = []
            self._busy.append((run.start, run.end))
            if len(self._busy) == 2:
                begin = self._busy[0][0]
                return [SignalHeard(Signal.BUSY_TONE, self._t(begin),
                                    (run.end - begin) * FRAME_S)]
        return []

    # -- gaps, clicks and noise ---------------------------------------------------

    def _gaps_and_noise(self, first: int) -> list[SignalHeard]:
        s = self.sensitivity
        out: list[SignalHeard] = []
        h = self._history
        total = h.total
        longest = int(s.flash_max_seconds / FRAME_S) + 1
        after = 8  # frames looked at after a gap for its closing click
        # A gap can be judged once ``after`` frames follow it; only those that could
        # not be judged before need looking at, and only if a quiet frame came lately.
        if self._last_quiet >= self._checked - after - 1:
            h0 = h.start
            levels = h.view()[0]
            lo = max(0, self._checked - after - longest - 2 - h0)
            quiet = (levels[lo:] <= s.gap_max_dbm0).astype(np.int8)
            for value, start, end in _runs(quiet):
                start, end = start + lo, end + lo
                if value != 1 or start == 0:
                    continue  # a gap that began before the history cannot be measured
                g1 = end + h0
                if g1 + after > total or g1 + after <= self._checked:
                    continue  # still going, or judged already
                gap_s = (end - start) * FRAME_S
                if (s.flash_min_seconds <= gap_s <= s.flash_max_seconds
                        and self._is_flash(start, end)):
                    out.append(SignalHeard(Signal.FLASH, self._t(start + h0), gap_s))
        self._checked = total
        # Masking noise starts out of a stretch below its level: once a loud run is longer
        # than a window and the stretch before it, no window of it can start the noise.
        need = int(s.masking_seconds / FRAME_S)
        if (need <= self._loud_run <= need + _MASKING_PRIOR + (total - first)
                and total > self._masking_until):
            out += self._masking(first)
        return out

    def _is_flash(self, start: int, end: int) -> bool:
        """Is the gap of history frames start..end-1 bracketed as a hook flash is?

        A click is a frame at an edge of the gap whose loudest 5 ms is loud, far
        above the gap, and either well above the audio on its other side or far
        above the rest of its own frame (an impulse, not the end of a word)."""
        s = self.sensitivity
        lv, pk, rough = self._history.view()[:3]
        gap = float(lv[start:end].max())

        def click(edge: int, other: npt.NDArray[np.float64]) -> bool:
            if not 0 <= edge < len(lv):
                return False
            peak = float(pk[edge])
            if peak < s.click_min_dbm0 or peak < gap + s.gap_drop_db:
                return False
            side = float(np.median(other)) if len(other) else -100.0
            return peak >= side + s.click_rise_db or float(rough[edge]) >= s.click_rise_db

        click_in = click(start - 1, lv[max(0, start - 8): max(0, start - 2)])
        click_out = any(click(end + i, lv[end + i + 2: end + i + 8]) for i in range(2))
        # Or no click at all, but the line fell silent from a steady level (line noise,
        # not speech, whose level moves).
        steady = lv[max(0, start - 13): max(0, start - 2)]
        dropped = (len(steady) > 5 and float(steady.max() - steady.min()) <= 4.0
                   and float(steady.min()) >= gap + s.gap_drop_db)
        return click_in or click_out or dropped

    def _masking(self, first: int) -> list[SignalHeard]:
        s = self.sensitivity
        need = int(s.masking_seconds / FRAME_S)
        prior = _MASKING_PRIOR
        h = self._history
        lv, _, rough, tone = h.view()
        h0 = h.start
        lo = max(need + prior, first - h0 + 1)
        if len(lv) < lo:
            return []
        # Windows of ``need`` frames ending in this batch, every 5 frames: loud
        # throughout, steady, not a tone, rough as noise is, and well above the
        # stretch before them. Running sums test every window at once.
        stops = np.arange(lo, len(lv) + 1, 5)
        starts = stops - need

        def sums(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            c = np.concatenate([[0.0], np.cumsum(x)])
            return np.asarray(c[stops] - c[starts])

        loud = sums((lv >= s.masking_min_dbm0).astype(np.float64)) == need
        if not loud.any():
            return []
        mean = sums(lv) / need
        spread = np.sqrt(np.maximum(sums(lv * lv) / need - mean * mean, 0.0))
        c = np.concatenate([[0.0], np.cumsum(lv)])
        before = (c[starts] - c[starts - prior]) / prior
        ok = (loud & (sums((tone != NONE).astype(np.float64)) == 0)
              # A Gaussian spread of the 10th-90th percentile range is 2.56 sigma.
              & (spread * 2.56 <= s.masking_spread_db)
              & (sums(rough) / need >= s.masking_roughness_db)
              & (mean - before >= s.masking_rise_db))
        hits = np.flatnonzero(ok)
        if len(hits) == 0:
            return []
        begin = int(starts[hits[0]]) + h0
        self._masking_until = int(stops[hits[0]]) + h0 + need
        return [SignalHeard(Signal.MASKING_NOISE, self._t(begin), need * FRAME_S)]


#: DTMF is two steady tones: the 5 ms levels of a frame of it are within this of each
#: other (1.6 dB at worst, at -30 dBm0, 8 dB twist, over line noise), while speech and
#: noise seldom are; a batch with no such frame, loud enough, holds no digit.
DTMF_STEADY_DB = 2.5
DTMF_MIN_DBM0 = -40.0


def feed_many(detectors: Sequence[ThreeWayDetector], chunks: Sequence[npt.ArrayLike],
              ) -> list[list[SignalHeard]]:
    """``[d.feed(c) for d, c in zip(detectors, chunks)]`` in one vectorised pass.

    The numpy calls cost more than their arithmetic on a second of audio, so the
    called legs of all connected calls share them: their windows are stacked, and
    one product, one set of energies, one labelling and one summary of each leg's
    frames serve all of them. DTMF goes through `ivr.inband.feed_many` the same way,
    for the legs whose audio could hold a digit (a steady frame, now or at the end
    of the last batch); the others' detectors just move on.
    """
    if len(detectors) != len(chunks):
        raise ValueError(f"{len(detectors)} detectors for {len(chunks)} chunks")
    xs = [np.asarray(c, dtype=np.float64) for c in chunks]
    out: list[list[SignalHeard]] = [[] for _ in detectors]
    windows = [d._windows(x) for d, x in zip(detectors, xs, strict=True)]
    whole = [i for i, w in enumerate(windows) if w is not None]
    # Legs without a whole window this time have their DTMF analysed as it is.
    analyse = {i for i, w in enumerate(windows) if w is None}
    if whole:
        stacked = np.concatenate([windows[i] for i in whole])
        sizes = [len(windows[i]) for i in whole]  # type: ignore[arg-type]
        parts = stacked.reshape(-1, 4, QUARTER)
        quarters = np.einsum("ijk,ijk->ij", parts, parts)  # per 5 ms; 8 to a window
        frame_energy = quarters.reshape(-1, 2, 4).sum(axis=2).reshape(-1)
        sens = [detectors[i].sensitivity for i in whole]
        share = np.repeat([x.tone_share for x in sens], sizes)
        floor = np.repeat([x.tone_min_dbm0 for x in sens], sizes)
        labels = _labels(stacked, frame_energy.reshape(-1, 2).sum(axis=1), share, floor)
        q_db = dbm0(quarters / QUARTER)
        figures = np.empty((4, len(quarters)))
        figures[1] = q_db.max(axis=1)
        figures[2] = figures[1] - q_db.min(axis=1)
        figures[0] = dbm0(frame_energy / FRAME)
        figures[3] = np.repeat(labels, 2)
        # Per leg, in one pass: its last frame at gap level, below the masking level,
        # steady as DTMF is (-1: none), and whether it holds a tone.
        frames = [2 * k for k in sizes]
        starts = np.concatenate([[0], np.cumsum(frames)[:-1]])
        idx = np.arange(len(quarters))
        levels = figures[0]
        gap_max = np.repeat([x.gap_max_dbm0 for x in sens], frames)
        masking_min = np.repeat([x.masking_min_dbm0 for x in sens], frames)
        is_steady = (figures[2] <= DTMF_STEADY_DB) & (levels >= DTMF_MIN_DBM0)
        last = np.maximum.reduceat(np.stack([np.where(levels <= gap_max, idx, -1),
                                             np.where(levels < masking_min, idx, -1),
                                             np.where(is_steady, idx, -1)]), starts, axis=1)
        toned = (np.add.reduceat(figures[3] != NONE, starts) > 0).tolist()
        for i, k, start, (quiet, soft, steadiest), tone in zip(
                whole, frames, starts.tolist(), (last - starts).T.tolist(), toned, strict=True):
            d = detectors[i]
            # Relative to the leg's first frame now; a leg without one is below -1.
            quiet, soft, steadiest = max(quiet, -1), max(soft, -1), max(steadiest, -1)
            if steadiest >= 0 or d._dtmf_hot:
                analyse.add(i)
            d._dtmf_hot = steadiest >= k - 3
            out[i] += d._analysed(figures[:, start: start + k], quiet, soft, tone)
    listening = sorted(analyse)
    digits = inband.feed_many([detectors[i]._dtmf for i in listening], [xs[i] for i in listening])
    for i, heard in zip(listening, digits, strict=True):
        out[i] += detectors[i]._dialled(heard)
    for i, d in enumerate(detectors):
        if i not in analyse:
            d._skip_dtmf(xs[i])
        if len(out[i]) > 1:
            out[i].sort(key=lambda signal: signal.at)
    return out


_FOLLOWERS = (Signal.DIAL_TONE, Signal.DIALLING, Signal.RINGBACK, Signal.BUSY_TONE)
_PRECURSORS = (Signal.FLASH, Signal.MASKING_NOISE)
_ALONE = (Signal.DIALLING, Signal.RINGBACK)


class ThreeWayPolicy:
    """Decides once whether the signals of one call make it a likely three-way call."""

    def __init__(self, sensitivity: Sensitivity | None = None) -> None:
        self.sensitivity = sensitivity or Sensitivity()
        self.signals: list[SignalHeard] = []
        self.suspected: ThreeWaySuspected | None = None

    def heard(self, signal: SignalHeard, now: float) -> ThreeWaySuspected | None:
        """Note ``signal`` (reported at ``now``); the decision the first time it is made."""
        self.signals.append(signal)
        if self.suspected is not None:
            return None
        window = self.sensitivity.follow_seconds
        if signal.signal in _ALONE:
            evidence: list[SignalHeard] = [signal]
        else:
            evidence = []
            pre = [p for p in self.signals if p.signal in _PRECURSORS]
            post = [f for f in self.signals if f.signal in _FOLLOWERS]
            for p in pre:
                for f in post:
                    if p.at <= f.at <= p.at + p.seconds + window:
                        evidence = [p, f]
                        break
                if evidence:
                    break
        if not evidence:
            return None
        self.suspected = ThreeWaySuspected(now, tuple(evidence))
        return self.suspected


class LegWatch:
    """One called leg's detector and policy together: feed samples, get the decision."""

    def __init__(self, sensitivity: Sensitivity | None = None, *, start: float = 0.0) -> None:
        self.detector = ThreeWayDetector(sensitivity, start=start)
        self.policy = ThreeWayPolicy(sensitivity)

    @property
    def signals(self) -> list[SignalHeard]:
        return self.policy.signals

    def feed(self, samples: npt.ArrayLike) -> ThreeWaySuspected | None:
        heard = self.detector.feed(samples)
        now = self.detector.now
        decided = None
        for signal in heard:
            decided = self.policy.heard(signal, now) or decided
        return decided
