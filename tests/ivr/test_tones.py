"""The generated ringback: its two frequencies, level and 2 s on / 4 s off cadence."""

from __future__ import annotations

import numpy as np
import pytest

from ivr import PCMA, PCMU, Codec
from ivr.tones import (
    RINGBACK_LEVEL_DBM0,
    SAMPLE_RATE,
    ZERO_DBM0_AMPLITUDE,
    ringback_frames,
    ringback_payload,
    ringback_samples,
)


def spectrum_peaks(samples: np.ndarray, count: int) -> list[float]:
    windowed = samples.astype(np.float64) * np.hanning(len(samples))
    power = np.abs(np.fft.rfft(windowed)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    peaks: list[float] = []
    order = np.argsort(power)[::-1]
    for i in order:
        if all(abs(freqs[i] - p) > 10 for p in peaks):
            peaks.append(float(freqs[i]))
        if len(peaks) == count:
            break
    return sorted(peaks)


def frame_levels(samples: np.ndarray) -> np.ndarray:
    frames = samples[: len(samples) // 160 * 160].astype(np.float64).reshape(-1, 160)
    levels: np.ndarray = np.sqrt((frames**2).mean(axis=1))
    return levels


def test_one_cycle_is_six_seconds_starting_with_the_tone() -> None:
    s = ringback_samples()
    assert s.dtype == np.int16 and len(s) == 6 * SAMPLE_RATE
    levels = frame_levels(s)
    on = levels > 100
    # 2 s on (100 frames of 20 ms), then 4 s of silence (200 frames).
    assert on[:100].all() and not on[100:].any()
    assert (s[2 * SAMPLE_RATE:] == 0).all()


def test_the_tone_is_440_plus_480_hz_and_nothing_else() -> None:
    burst = ringback_samples()[: 2 * SAMPLE_RATE]
    assert spectrum_peaks(burst, 2) == pytest.approx([440.0, 480.0], abs=1.0)
    power = np.abs(np.fft.rfft(burst.astype(np.float64) * np.hanning(len(burst)))) ** 2
    freqs = np.fft.rfftfreq(len(burst), 1 / SAMPLE_RATE)
    near = (np.abs(freqs - 440) < 5) | (np.abs(freqs - 480) < 5)
    assert power[near].sum() / power.sum() > 0.999


def test_each_frequency_at_minus_19_dbm0() -> None:
    burst = ringback_samples()[400 : 2 * SAMPLE_RATE - 400].astype(np.float64)
    # Two equal sines: total RMS is amplitude (per sine) * sqrt(2) / sqrt(2) = amplitude.
    amplitude = ZERO_DBM0_AMPLITUDE * 10 ** (RINGBACK_LEVEL_DBM0 / 20)
    assert np.sqrt((burst**2).mean()) == pytest.approx(amplitude, rel=0.01)


def test_bursts_rise_and_fall_without_a_click() -> None:
    s = ringback_samples().astype(np.int32)
    assert abs(s[0]) < 50 and abs(s[2 * SAMPLE_RATE - 1]) < 50
    # The loop joins silence to silence-rising tone: no step larger than the tone's own.
    steps = np.abs(np.diff(np.concatenate([s, s[:100]])))
    assert steps.max() < 2 * np.abs(np.diff(s[1000:2000])).max()


@pytest.mark.parametrize("codec", [PCMU, PCMA, Codec("PCMU", 96)])
def test_g711_frames_loop_the_cadence(codec: Codec) -> None:
    frames = ringback_frames(codec)
    assert len(frames) == 300 and {len(f) for f in frames} == {160}
    assert b"".join(frames) == ringback_payload(codec)
    # Silence frames are the codec's zero code, so nothing is heard between bursts.
    assert set(b"".join(frames[100:])) == {codec.silence_byte}
    looped = codec.decode(b"".join(frames * 2))
    on = frame_levels(looped) > 100
    assert list(np.flatnonzero(np.diff(on.astype(int)))) == [99, 299, 399]
    assert spectrum_peaks(looped[: 2 * SAMPLE_RATE], 2) == pytest.approx([440.0, 480.0], abs=1.0)


def test_the_samples_cannot_be_changed_by_a_caller() -> None:
    s = ringback_samples()
    with pytest.raises(ValueError):
        s[0] = 1
    assert ringback_payload(PCMU) is ringback_payload(PCMU)
