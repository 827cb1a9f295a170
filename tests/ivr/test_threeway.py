"""The three-way call detector, signal by signal at the edges of the spec, and its policy.

Signals are made by ``loadtests/threeway_corpus.py`` (which shares no code with the
detector) over line noise, and go through G.711 as they would on a call.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ivr import PCMA, PCMU
from ivr.threeway import (
    LegWatch,
    Sensitivity,
    Signal,
    SignalHeard,
    ThreeWayDetector,
    ThreeWayPolicy,
    feed_many,
    frame_labels,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
import threeway_corpus as tc

RATE = 8000


def line(seconds: float, rng: np.random.Generator, level: float = -48.0) -> np.ndarray:
    """Line noise: white-ish noise at ``level`` dBm0."""
    return rng.normal(0, tc.db(level) / np.sqrt(2), round(seconds * RATE))


def call(*parts: np.ndarray, law: str = "PCMU", noise: float = -48.0, seed: int = 1,
         ) -> np.ndarray:
    """``parts`` one after the other over line noise, through G.711 ``law``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate(parts)
    x = x + line(len(x) / RATE, rng, noise)
    codec = PCMU if law == "PCMU" else PCMA
    return codec.decode(codec.encode(np.clip(np.round(x), -32768, 32767).astype(np.int16)))


def heard(samples: np.ndarray, chunk: int = 4000, sensitivity: Sensitivity | None = None,
          ) -> list[SignalHeard]:
    d = ThreeWayDetector(sensitivity)
    out: list[SignalHeard] = []
    for i in range(0, len(samples), chunk):
        out += d.feed(samples[i: i + chunk])
    # Flush: a second of line noise lets tones and gaps that ran to the end be judged.
    out += d.feed(line(1.0, np.random.default_rng(9)))
    return out


def kinds(signals: list[SignalHeard]) -> list[Signal]:
    return [s.signal for s in signals]


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise shaped like syllables: something other than silence and tones around a signal."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    env = np.abs(np.sin(np.pi * np.arange(n) / RATE * 4)) ** 2
    return rng.normal(0, tc.db(-22), n) * env


# -- dial tone -------------------------------------------------------------------------

@pytest.mark.parametrize("level", [-30.0, -13.0, 0.0])
@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_dial_tone_is_heard_from_minus_30_to_0_dbm0(level: float, law: str) -> None:
    x = call(speech_like(1, 1), tc.dial_tone(2.0, level), speech_like(1, 2), law=law)
    signals = [s for s in heard(x) if s.signal is Signal.DIAL_TONE]
    assert len(signals) == 1
    assert signals[0].at == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize("seconds,expected", [(0.6, 0), (0.9, 1), (10.0, 1)])
def test_dial_tone_must_last(seconds: float, expected: int) -> None:
    x = call(line(1, np.random.default_rng(2)), tc.dial_tone(seconds))
    assert kinds(heard(x)).count(Signal.DIAL_TONE) == expected


@pytest.mark.parametrize("f1,f2,expected", [
    (350 * 0.985, 440 * 0.985, 1),  # 1.5% low: still dial tone
    (350 * 1.015, 440 * 1.015, 1),
    (400.0, 440.0, 0),  # not a call-progress pair
    (350.0, 350.0, 0),  # one tone
    (440.0, 440.0, 0),
])
def test_dial_tone_frequencies(f1: float, f2: float, expected: int) -> None:
    x = call(line(1, np.random.default_rng(3)), tc.tone_pair(f1, f2, 2.0, -13))
    assert kinds(heard(x)).count(Signal.DIAL_TONE) == expected


def test_dial_tone_below_the_floor_is_not_heard() -> None:
    x = call(tc.dial_tone(2.0, -42.0), noise=-70)
    assert Signal.DIAL_TONE not in kinds(heard(x))


# -- ringback and busy -----------------------------------------------------------------

@pytest.mark.parametrize("level", [-30.0, -19.0, 0.0])
def test_ringback_burst_is_heard_at_its_end(level: float) -> None:
    x = call(speech_like(1, 3), tc.ringback(2, level), law="PCMA")
    signals = [s for s in heard(x) if s.signal is Signal.RINGBACK]
    assert [round(s.at) for s in signals] == [1, 7]
    assert all(s.seconds == pytest.approx(2.0, abs=0.06) for s in signals)


@pytest.mark.parametrize("on,expected", [(1.0, 0), (1.6, 1), (2.4, 1), (3.5, 0)])
def test_ringback_burst_length(on: float, expected: int) -> None:
    x = call(line(1, np.random.default_rng(4)), tc.ringback(1, -19, on=on))
    assert kinds(heard(x)).count(Signal.RINGBACK) == expected


def test_ringback_frequencies_must_be_440_and_480() -> None:
    x = call(line(1, np.random.default_rng(5)), tc.tone_pair(440, 520, 2.0, -19),
             line(4, np.random.default_rng(6)))
    assert Signal.RINGBACK not in kinds(heard(x))


@pytest.mark.parametrize("on,off,expected", [(0.5, 0.5, 1), (0.4, 0.4, 1), (0.6, 0.6, 1),
                                             (1.0, 1.0, 0), (0.25, 0.25, 0)])
def test_busy_tone_cadence(on: float, off: float, expected: int) -> None:
    x = call(line(1, np.random.default_rng(7)), tc.busy_tone(3, -24, on=on, off=off))
    assert kinds(heard(x)).count(Signal.BUSY_TONE) == expected


@pytest.mark.parametrize("level", [-30.0, 0.0])
def test_busy_tone_levels(level: float) -> None:
    x = call(line(1, np.random.default_rng(8)), tc.busy_tone(2, level))
    assert kinds(heard(x)) == [Signal.BUSY_TONE]


# -- hook flash --------------------------------------------------------------------------

def flash_call(on_hook: float, seed: int = 1, clicks: bool = True,
               after: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """Talk, a flash of ``on_hook`` seconds (the line open: no noise), ``after`` or talk."""
    rng = np.random.default_rng(seed)
    f, _ = tc.flash(rng, on_hook, clicks=clicks)
    rest = np.concatenate(after) if after else speech_like(2, seed + 1)
    x = np.concatenate([speech_like(2, seed) + line(2, rng), f,
                        rest + line(len(rest) / RATE, rng)])
    codec = PCMU
    return codec.decode(codec.encode(np.clip(np.round(x), -32768, 32767).astype(np.int16)))


@pytest.mark.parametrize("on_hook", [0.2, 0.35, 0.5, 0.8])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flash_of_200_to_800_ms_is_heard(on_hook: float, seed: int) -> None:
    signals = [s for s in heard(flash_call(on_hook, seed)) if s.signal is Signal.FLASH]
    assert len(signals) == 1
    assert signals[0].at == pytest.approx(2.0, abs=0.08)
    assert signals[0].seconds == pytest.approx(on_hook, abs=0.08)


@pytest.mark.parametrize("on_hook", [0.08, 1.2, 3.0])
def test_gaps_too_short_or_too_long_are_no_flash(on_hook: float) -> None:
    assert Signal.FLASH not in kinds(heard(flash_call(on_hook)))


def test_pauses_in_speech_over_line_noise_are_no_flash() -> None:
    rng = np.random.default_rng(4)
    parts = []
    for i in range(10):
        parts += [speech_like(1, i), np.zeros(round(rng.uniform(0.2, 0.8) * RATE))]
    assert Signal.FLASH not in kinds(heard(call(*parts)))


# -- dialling ----------------------------------------------------------------------------

def test_dialled_digits_are_heard_with_their_number() -> None:
    rng = np.random.default_rng(5)
    x = call(line(2, rng), tc.digits("2025550143", rng), line(1, rng))
    signals = [s for s in heard(x) if s.signal is Signal.DIALLING]
    assert len(signals) == 1
    assert signals[0].digits.startswith("202")
    assert signals[0].at == pytest.approx(2.0, abs=0.25)


def test_one_key_or_the_acceptance_key_is_not_dialling() -> None:
    rng = np.random.default_rng(6)
    # The acceptance key still sounding at the start, then one key later on.
    x = call(tc.tone_pair(697, 1209, 0.15, -8), line(5, rng), tc.tone_pair(697, 1336, 0.12, -8),
             line(5, rng), tc.digits("12", rng), line(5, rng))
    assert Signal.DIALLING not in kinds(heard(x))


# -- masking noise -----------------------------------------------------------------------

def test_loud_steady_noise_that_starts_suddenly_is_masking() -> None:
    bed = tc.noise_bed("pinknoise")
    x = call(speech_like(2, 7), bed[: 3 * RATE] * 10 ** (-15 / 20), speech_like(1, 8))
    signals = [s for s in heard(x) if s.signal is Signal.MASKING_NOISE]
    assert len(signals) == 1
    assert signals[0].at == pytest.approx(2.0, abs=0.15)


def test_a_ringing_phone_and_music_are_not_masking_noise() -> None:
    rng = np.random.default_rng(9)
    x = call(line(2, rng), tc.room_ring(12, rng) * 10, tc.music(10, rng))
    assert Signal.MASKING_NOISE not in kinds(heard(x))


# -- the analysis itself ------------------------------------------------------------------

def test_labels_frames_of_each_pair() -> None:
    x = np.concatenate([tc.dial_tone(0.4), tc.ringback(1, -19, on=0.4, off=0.0),
                        tc.busy_tone(1, -19, on=0.4, off=0.0)])
    labels = frame_labels(x)
    assert len(labels) == 60
    assert set(labels[2:18].tolist()) == {1}
    assert set(labels[22:38].tolist()) == {2}
    assert set(labels[42:58].tolist()) == {3}


def test_chunking_does_not_change_what_is_heard() -> None:
    rng = np.random.default_rng(11)
    x = flash_call(0.5, after=(tc.dial_tone(1.5), tc.digits("5551234", rng), tc.ringback(1)))
    whole = heard(x, chunk=len(x))
    assert kinds(whole) == [Signal.FLASH, Signal.DIAL_TONE, Signal.DIALLING, Signal.RINGBACK]
    for chunk in (160, 333, 4000, 8000):
        assert [(s.signal, round(s.at, 2)) for s in heard(x, chunk=chunk)] == [
            (s.signal, round(s.at, 2)) for s in whole]


def test_feed_many_is_feed_one_by_one() -> None:
    legs = [flash_call(0.4, after=(tc.dial_tone(1.5),)),
            call(tc.ringback(1), seed=2), call(speech_like(6, 3), seed=3)]
    strict = Sensitivity(dial_tone_seconds=1.2)
    alone = [heard(x, chunk=4000, sensitivity=sens)
             for x, sens in zip(legs, (strict, None, None), strict=True)]
    many = [ThreeWayDetector(strict), ThreeWayDetector(), ThreeWayDetector()]
    together: list[list[SignalHeard]] = [[], [], []]
    for i in range(0, max(len(x) for x in legs), 4000):
        for out, got in zip(together, feed_many(many, [x[i: i + 4000] for x in legs]), strict=True):
            out += got
    for d, out in zip(many, together, strict=True):
        out += d.feed(line(1.0, np.random.default_rng(9)))
    assert together == alone
    assert kinds(together[0]) == [Signal.FLASH, Signal.DIAL_TONE]


def test_times_are_in_the_call() -> None:
    d = ThreeWayDetector(start=100.0)
    x = call(line(1, np.random.default_rng(1)), tc.dial_tone(1.5))
    assert [round(s.at) for s in d.feed(x)] == [101]
    assert d.now == pytest.approx(102.5, abs=0.05)


# -- policy ------------------------------------------------------------------------------

def sig(kind: Signal, at: float, seconds: float = 0.5) -> SignalHeard:
    return SignalHeard(kind, at, seconds)


def test_flash_then_dial_tone_within_the_window_is_suspected() -> None:
    p = ThreeWayPolicy()
    assert p.heard(sig(Signal.FLASH, 10.0), 10.6) is None
    decided = p.heard(sig(Signal.DIAL_TONE, 10.7, 0.8), 11.5)
    assert decided is not None and decided.at == 11.5
    assert kinds(list(decided.signals)) == [Signal.FLASH, Signal.DIAL_TONE]
    assert p.heard(sig(Signal.RINGBACK, 20.0), 22.0) is None  # decided once


@pytest.mark.parametrize("kind", [Signal.DIAL_TONE, Signal.BUSY_TONE, Signal.FLASH,
                                  Signal.MASKING_NOISE])
def test_signals_that_do_not_flag_alone(kind: Signal) -> None:
    assert ThreeWayPolicy().heard(sig(kind, 5.0), 6.0) is None


@pytest.mark.parametrize("kind", [Signal.DIALLING, Signal.RINGBACK])
def test_dialling_or_ringback_alone_flags(kind: Signal) -> None:
    decided = ThreeWayPolicy().heard(sig(kind, 5.0), 6.0)
    assert decided is not None and kinds(list(decided.signals)) == [kind]


def test_dial_tone_long_after_a_flash_is_not_suspected() -> None:
    p = ThreeWayPolicy(Sensitivity(follow_seconds=5.0))
    p.heard(sig(Signal.FLASH, 10.0), 10.6)
    assert p.heard(sig(Signal.DIAL_TONE, 16.0, 0.8), 16.8) is None
    # A masking noise reported after the dial tone it preceded still counts.
    decided = p.heard(sig(Signal.MASKING_NOISE, 15.0, 1.0), 17.0)
    assert decided is not None


def test_leg_watch_decides_on_a_three_way_attempt() -> None:
    x = flash_call(0.6, after=(tc.dial_tone(2.0), speech_like(3, 2)))
    w = LegWatch()
    decisions = [w.feed(x[i: i + 4000]) for i in range(0, len(x), 4000)]
    decided = [d for d in decisions if d is not None]
    assert len(decided) == 1
    assert decided[0].at - 2.0 < 3.0  # within 3 s of the flash
    assert kinds(w.signals) == [Signal.FLASH, Signal.DIAL_TONE]


@pytest.mark.parametrize("field,value", [
    ("tone_share", 0.0), ("tone_share", 1.5), ("ringback_min_seconds", 3.0),
    ("busy_min_seconds", -1.0), ("dialling_digits", 0), ("follow_seconds", 0.0),
])
def test_sensitivity_rejects_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        Sensitivity(**{field: value})
