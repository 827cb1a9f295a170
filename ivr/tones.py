"""Call-progress tones generated, not recorded: the North American ringback the caller hears.

Ringback (ANSI T1.401): 440 Hz + 480 Hz, each at -19 dBm0, 2 s on and 4 s
off. ``ringback_samples()`` is one 6-second cycle, starting with the tone,
as 8 kHz 16-bit samples; ``ringback_payload(codec)`` is that cycle in G.711,
a whole number of 20 ms frames, so a playback that starts it again each time
it ends loops the cadence exactly. The bursts rise and fall over 5 ms so the
loop does not click.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ivr.g711 import Codec
from ivr.playback import FRAME_SAMPLES

SAMPLE_RATE = 8000
RINGBACK_HZ = (440.0, 480.0)
RINGBACK_ON_S = 2.0
RINGBACK_OFF_S = 4.0
RINGBACK_LEVEL_DBM0 = -19.0
#: A sine of this amplitude in 16 bits is 0 dBm0 (G.711's reference level).
ZERO_DBM0_AMPLITUDE = 22_700
RAMP_S = 0.005

Int16Array = npt.NDArray[np.int16]


@lru_cache(maxsize=1)
def _ringback_cycle() -> Int16Array:
    on = int(RINGBACK_ON_S * SAMPLE_RATE)
    off = int(RINGBACK_OFF_S * SAMPLE_RATE)
    t = np.arange(on) / SAMPLE_RATE
    amp = ZERO_DBM0_AMPLITUDE * 10 ** (RINGBACK_LEVEL_DBM0 / 20)
    burst = np.zeros(on)
    for f in RINGBACK_HZ:
        burst += amp * np.sin(2 * np.pi * f * t)
    ramp = int(RAMP_S * SAMPLE_RATE)
    envelope = np.ones(on)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
    envelope[-ramp:] = envelope[:ramp][::-1]
    cycle = np.concatenate([np.round(burst * envelope), np.zeros(off)])
    samples: Int16Array = np.clip(cycle, -32768, 32767).astype(np.int16)
    samples.setflags(write=False)
    return samples


def ringback_samples() -> Int16Array:
    """One ringback cycle (2 s of tone, then 4 s of silence) as 8 kHz samples."""
    return _ringback_cycle()


@lru_cache(maxsize=4)
def ringback_payload(codec: Codec) -> bytes:
    """One ringback cycle in ``codec``: 300 frames of 20 ms, to be played in a loop."""
    payload = codec.encode(_ringback_cycle())
    assert len(payload) % FRAME_SAMPLES == 0
    return payload


def ringback_frames(codec: Codec) -> tuple[bytes, ...]:
    """One ringback cycle in ``codec`` as 20 ms RTP payloads."""
    payload = ringback_payload(codec)
    return tuple(
        payload[i : i + FRAME_SAMPLES] for i in range(0, len(payload), FRAME_SAMPLES)
    )
