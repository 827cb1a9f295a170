"""Builds the three-way detection corpus: the called leg of synthetic calls, from seeds.

Independent of the ``ics`` packages (numpy, espeak-ng and sox only), so the
corpus does not share the detector's own ideas of what a tone looks like.

Speech is synthesized once per phrase set by espeak-ng (English and Spanish,
several voices, both parties) and sox makes the pink and brown noise beds;
both are cached in a temporary directory. A case is then assembled with
numpy from a seed: the called party's phrases with pauses and laughter-like
bursts, a faint echo of the caller's, line noise, level changes, and one of
the events below; it is G.711 coded (mu-law or A-law) and sent as 20 ms
packets with 1-3% loss in bursts and the reordering jitter gives, the
packets concatenated in arrival order as the bridge hands them on.

Attempts, on the called side after acceptance (``Case.attempt_at``):
``three_way`` (hook flash with a click at each edge, dial tone, 7-11 digits,
ringback, a third voice), ``masked`` (the same with loud steady noise over
the flash), ``flash_only`` (flash and dial tone, then back to the call) and
``forward`` (a click, then ringback and another voice: a forwarded call).
Decoys: ``keys`` (the tail of the acceptance key and a later single key),
``impulse`` (door slams, coughs), ``music``, ``ring`` (a phone ringing in the
room), ``silence`` (5-30 s of it); and ``clean`` conversations.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000
FRAME = 160
ZERO_DBM0 = 22_700.0
Float = npt.NDArray[np.float64]

ATTEMPTS = ("three_way", "masked", "flash_only", "forward")
DECOYS = ("keys", "impulse", "music", "ring", "silence")
KINDS = ("clean", *DECOYS, *ATTEMPTS)

VOICES_EN = ("en-us", "en-us+f3", "en-gb+m3", "en-us+f4")
VOICES_ES = ("es", "es-419+f2", "es+m4", "es-419+f4")
PHRASES_EN = (
    "Hi, it's me. How are you doing today?",
    "I talked to the lawyer on Monday, she says we have to wait.",
    "Did the kids get the letter I sent?",
    "Yeah, yeah. I know. Tell mom I said hello.",
    "The food here is the same every single day.",
    "Okay, that's good news. Really good news.",
    "What time is the hearing on Thursday?",
    "I can't hear you very well, say that again.",
    "Ha ha, no way, that's so funny.",
    "Please put some money on the account when you can.",
    "Uh huh. Right. Right.",
    "We have count at four, so I have to go soon.",
)
PHRASES_ES = (
    "Hola, soy yo. ¿Cómo estás hoy?",
    "Hablé con la abogada el lunes, dice que hay que esperar.",
    "¿Los niños recibieron mi carta?",
    "Sí, sí, ya sé. Dile a mamá que la quiero.",
    "La comida aquí es igual todos los días.",
    "Bueno, esas son buenas noticias.",
    "¿A qué hora es la audiencia el jueves?",
    "No te escucho bien, repítelo por favor.",
    "Ja ja, no puede ser, qué gracioso.",
    "Pon dinero en la cuenta cuando puedas.",
    "Ajá. Claro. Claro.",
    "Tenemos conteo a las cuatro, me tengo que ir pronto.",
)


def db(level_dbm0: float) -> float:
    """Amplitude of a sine at ``level_dbm0``."""
    return ZERO_DBM0 * 10 ** (level_dbm0 / 20)


def rms_dbm0(x: Float) -> float:
    p = float(np.mean(np.asarray(x, dtype=np.float64) ** 2))
    return 10 * np.log10(max(p, 1e-3) / (ZERO_DBM0**2 / 2))


# -- synthesis (cached) ---------------------------------------------------------------

def cache_dir() -> Path:
    d = Path(os.environ.get("ICS_THREEWAY_CACHE", Path(tempfile.gettempdir()) / "ics-threeway"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _read_raw(path: Path) -> Float:
    return np.fromfile(path, dtype="<i2").astype(np.float64)


def speech(text: str, voice: str) -> Float:
    """``text`` spoken by espeak-ng ``voice`` as 8 kHz samples (cached)."""
    key = f"speech|{voice}|{text}"
    path = cache_dir() / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".raw")
    if not path.exists():
        wav = path.with_suffix(".wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text],
                       check=True, capture_output=True)
        tmp = path.with_suffix(".tmp.raw")
        subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed",
                        "-t", "raw", str(tmp)], check=True, capture_output=True)
        wav.unlink()
        tmp.rename(path)
    return _read_raw(path)


def noise_bed(color: str, seconds: int = 60) -> Float:
    """``seconds`` of sox ``pinknoise`` or ``brownnoise`` at 8 kHz, normalised to 0 dBm0 RMS."""
    key = f"noise|{color}|{seconds}"
    path = cache_dir() / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".raw")
    if not path.exists():
        tmp = path.with_suffix(".tmp.raw")
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed",
                        "-t", "raw", str(tmp), "synth", str(seconds), color, "vol", "0.5"],
                       check=True, capture_output=True)
        tmp.rename(path)
    x = _read_raw(path)
    x = x - x.mean()
    return x / np.sqrt(np.mean(x**2)) * (ZERO_DBM0 / np.sqrt(2))


@dataclass(frozen=True)
class Phrases:
    """The synthesized phrases a corpus assembles cases from."""

    called: tuple[Float, ...]
    caller: tuple[Float, ...]
    third: tuple[Float, ...]

    @classmethod
    def build(cls, per_voice: int = len(PHRASES_EN)) -> Phrases:
        en, es = PHRASES_EN[:per_voice], PHRASES_ES[:per_voice]
        called = [speech(t, v) for v in VOICES_EN[:2] for t in en]
        called += [speech(t, v) for v in VOICES_ES[:2] for t in es]
        caller = [speech(t, v) for v in (VOICES_EN[2], VOICES_ES[2]) for t in en + es]
        third = [speech(t, v) for v in (VOICES_EN[3], VOICES_ES[3]) for t in en[:4] + es[:4]]
        return cls(tuple(called), tuple(caller), tuple(third))


@lru_cache(maxsize=2)
def phrases(per_voice: int = len(PHRASES_EN)) -> Phrases:
    return Phrases.build(per_voice)


# -- signals --------------------------------------------------------------------------

def tone_pair(f1: float, f2: float, seconds: float, level_dbm0: float,
              rng: np.random.Generator | None = None) -> Float:
    """Two tones summing to ``level_dbm0`` (each 3 dB lower), 5 ms ramps at the ends."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    a = db(level_dbm0 - 3.0)
    ph = rng.uniform(0, 2 * np.pi, 2) if rng is not None else (0.0, 0.0)
    x = a * np.sin(2 * np.pi * f1 * t + ph[0]) + a * np.sin(2 * np.pi * f2 * t + ph[1])
    ramp = min(40, n // 2)
    if ramp:
        env = np.linspace(0, 1, ramp)
        x[:ramp] *= env
        x[n - ramp:] *= env[::-1]
    return x


def dial_tone(seconds: float, level: float = -10.0, rng: np.random.Generator | None = None,
              ) -> Float:
    return tone_pair(350.0, 440.0, seconds, level, rng)


def ringback(cycles: float, level: float = -16.0, on: float = 2.0, off: float = 4.0) -> Float:
    out: list[Float] = []
    while cycles > 0:
        out.append(tone_pair(440.0, 480.0, on, level))
        out.append(np.zeros(round(off * RATE)))
        cycles -= 1
    return np.concatenate(out)


def busy_tone(cycles: int, level: float = -21.0, on: float = 0.5, off: float = 0.5) -> Float:
    return np.concatenate([np.concatenate([tone_pair(480.0, 620.0, on, level),
                                           np.zeros(round(off * RATE))])
                           for _ in range(cycles)])


_DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
         "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
         "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}


def digits(keys: str, rng: np.random.Generator, level: float = -7.0) -> Float:
    """``keys`` as DTMF, 60-150 ms each with 60-400 ms between, as a person dials."""
    out: list[Float] = []
    for k in keys:
        f1, f2 = _DTMF[k]
        out.append(tone_pair(f1, f2, rng.uniform(0.06, 0.15), level + rng.uniform(-4, 2)))
        out.append(np.zeros(round(rng.uniform(0.06, 0.4) * RATE)))
    return np.concatenate(out)


def click(rng: np.random.Generator, level: float | None = None) -> Float:
    """A hook-switch click: a sharp pulse with a short ringing, 2-30 ms."""
    n = round(rng.uniform(0.002, 0.03) * RATE)
    t = np.arange(n) / RATE
    peak = db(level if level is not None else rng.uniform(-14, -2)) * 1.4
    decay = rng.uniform(150, 900)
    f = rng.uniform(300, 2500)
    x = peak * np.exp(-decay * t) * np.cos(2 * np.pi * f * t)
    x[0] = peak * np.sign(rng.uniform(-1, 1))
    return x


def flash(rng: np.random.Generator, on_hook: float | None = None, clicks: bool = True,
          ) -> tuple[Float, float]:
    """A hook flash: click, the line open (near silence) for 200-800 ms, click.
    Returns the samples and the on-hook time."""
    on_hook = on_hook if on_hook is not None else rng.uniform(0.2, 0.8)
    gap = rng.normal(0, db(-80), round(on_hook * RATE))
    if not clicks:
        return gap, on_hook
    return np.concatenate([click(rng), gap, click(rng)]), on_hook


def impulse(rng: np.random.Generator) -> Float:
    """A door slam (a loud thud ringing 100-300 ms) or a cough (a burst of noise)."""
    if rng.uniform() < 0.5:
        n = round(rng.uniform(0.1, 0.3) * RATE)
        t = np.arange(n) / RATE
        x = rng.normal(0, 1, n) * np.exp(-t * rng.uniform(15, 40))
        x += 3 * np.sin(2 * np.pi * rng.uniform(60, 150) * t) * np.exp(-t * 20)
    else:
        n = round(rng.uniform(0.2, 0.45) * RATE)
        t = np.arange(n) / RATE
        x = rng.normal(0, 1, n) * np.sqrt(np.abs(np.sin(np.pi * t / t[-1])))
        x = np.convolve(x, np.ones(4) / 4, mode="same")
    return x / np.abs(x).max() * db(rng.uniform(-8, 0)) * 1.4


def music(seconds: float, rng: np.random.Generator) -> Float:
    """Notes and chords with harmonics and decays (a radio in the room)."""
    n = round(seconds * RATE)
    out = np.zeros(n)
    t0 = 0
    while t0 < n:
        dur = round(rng.uniform(0.15, 1.2) * RATE)
        t = np.arange(min(dur, n - t0)) / RATE
        notes = rng.integers(-14, 10, size=rng.integers(1, 4))
        chunk = np.zeros(len(t))
        for k in notes:
            f = 440.0 * 2 ** (k / 12)
            for h in range(1, 6):
                if f * h < 3800:
                    chunk += np.sin(2 * np.pi * f * h * t) / h * np.exp(-t * rng.uniform(1, 4))
        out[t0: t0 + len(t)] += chunk
        t0 += len(t)
    return out / (np.sqrt(np.mean(out**2)) + 1e-9) * db(rng.uniform(-30, -18)) / np.sqrt(2)


def room_ring(seconds: float, rng: np.random.Generator) -> Float:
    """A telephone ringing in the room: a warbling ringer, 2 s on 4 s off, at a distance."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    f_a, f_b = rng.uniform(900, 1100), rng.uniform(1200, 1500)
    warble = np.where(np.sin(2 * np.pi * 16 * t) > 0, f_a, f_b)
    x = np.sin(2 * np.pi * np.cumsum(warble) / RATE)
    x += 0.4 * np.sin(2 * np.pi * 2 * np.cumsum(warble) / RATE)
    x *= (t % 6.0) < 2.0
    return x * db(rng.uniform(-32, -20))


# -- assembling a case -----------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    seed: int
    kind: str
    seconds: float


@dataclass(frozen=True)
class CaseAudio:
    case: Case
    law: str  # "PCMU" or "PCMA"
    #: The called leg as the bridge hands it on: G.711 bytes, lost packets left out.
    payload: bytes
    #: Seconds into the leg (before loss) of the attempt's start (the flash), or None.
    attempt_at: float | None
    loss: float

    def samples(self) -> npt.NDArray[np.int16]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            lin = (audioop.ulaw2lin if self.law == "PCMU" else audioop.alaw2lin)(self.payload, 2)
        return np.frombuffer(lin, dtype="<i2")


def _place(track: Float, x: Float, at: int) -> None:
    end = min(len(track), at + len(x))
    if end > at:
        track[at:end] += x[: end - at]


def conversation(rng: np.random.Generator, seconds: float, ph: Phrases) -> Float:
    """The called party's side: phrases and pauses, a faint echo of the caller, laughter."""
    n = round(seconds * RATE)
    track = np.zeros(n)
    t = round(rng.uniform(0.2, 1.5) * RATE)
    gain = db(rng.uniform(-22, -10)) / 8000
    while t < n:
        if rng.uniform() < 0.5:  # the caller talks: a faint echo comes back
            p = ph.caller[rng.integers(len(ph.caller))]
            _place(track, p * gain * db(rng.uniform(-30, -22)) / ZERO_DBM0, t)
            t += len(p) + round(rng.uniform(0.1, 1.5) * RATE)
            continue
        p = ph.called[rng.integers(len(ph.called))]
        if rng.uniform() < 0.2:  # a level change: the phone moved, the speaker turned
            gain = db(rng.uniform(-24, -8)) / 8000
        _place(track, p * gain, t)
        t += len(p)
        if rng.uniform() < 0.1:  # laughter-like bursts
            for _ in range(rng.integers(3, 7)):
                b = round(rng.uniform(0.08, 0.15) * RATE)
                burst = rng.normal(0, 1, b) * np.hanning(b)
                burst *= np.sin(2 * np.pi * rng.uniform(150, 300) * np.arange(b) / RATE) + 1
                _place(track, burst * gain * 3000, t)
                t += b + round(rng.uniform(0.05, 0.12) * RATE)
        t += round(rng.exponential(0.8) * RATE)
    return track


def _attempt(kind: str, rng: np.random.Generator, ph: Phrases,
             ) -> tuple[Float, tuple[int, int] | None, int]:
    """The attempt's samples, where in them the line is open (on hook) if it is, and
    where its flash (or forwarding click) starts."""
    third = ph.third[rng.integers(len(ph.third))] * db(rng.uniform(-20, -12)) / 8000
    quiet = np.zeros(round(rng.uniform(0.3, 1.5) * RATE))
    if kind == "forward":
        return np.concatenate([click(rng), np.zeros(round(rng.uniform(0.1, 0.4) * RATE)),
                               ringback(rng.integers(1, 3), rng.uniform(-24, -12)), third]), None, 0
    f, _ = flash(rng)
    open_line: tuple[int, int] | None = (0, len(f))
    tone_level = rng.uniform(-20, -8)
    if kind == "flash_only":
        return np.concatenate([f, dial_tone(rng.uniform(1.5, 4), tone_level, rng), quiet,
                               click(rng), np.zeros(round(0.3 * RATE))]), (0, len(f)), 0
    number = "".join(rng.choice(list("0123456789"), size=rng.integers(7, 12)))
    parts = [f]
    flash_at = 0
    if kind == "masked":
        # Steady noise turned on before the flash and off once the dial tone comes.
        pre = round(rng.uniform(1.2, 2.5) * RATE)
        bed = noise_bed("pinknoise")
        start = rng.integers(len(bed) - pre - len(f))
        noise = bed[start: start + pre + len(f)] * 10 ** (rng.uniform(-22, -12) / 20)
        noise[pre:] += f
        parts = [noise]
        open_line = None  # the noise covers the open line
        flash_at = pre
    parts += [dial_tone(rng.uniform(0.9, 2.5), tone_level, rng), digits(number, rng),
              np.zeros(round(rng.uniform(0.5, 2) * RATE)),
              ringback(rng.integers(1, 3), rng.uniform(-24, -12)), third]
    return np.concatenate(parts), open_line, flash_at


def _decoy(kind: str, track: Float, rng: np.random.Generator) -> None:
    n = len(track)
    if kind == "keys":
        # The acceptance key still sounding when the legs are bridged, and a key later.
        tail = tone_pair(697, 1209, rng.uniform(0.04, 0.2), -8)
        track[: len(tail)] += tail
        _place(track, tone_pair(*_DTMF[str(rng.choice(list("1235")))], 0.12, -8),
               rng.integers(min(RATE * 10, n // 2), n - RATE))
        return
    if kind == "impulse":
        for _ in range(rng.integers(3, 9)):
            _place(track, impulse(rng), rng.integers(0, n - RATE))
        return
    if kind == "music":
        start = rng.integers(0, n // 2)
        _place(track, music((n - start) / RATE, rng), start)
        return
    if kind == "ring":
        start = rng.integers(0, n // 2)
        _place(track, room_ring(rng.uniform(12, 30), rng), start)
        return
    if kind == "silence":
        # The called party mutes: only line noise is left (added afterwards).
        length = round(min(rng.uniform(5, 30), n / RATE - 2) * RATE)
        at = rng.integers(RATE // 2, n - length)
        track[at: at + length] = 0.0
        return
    raise ValueError(f"unknown decoy {kind!r}")


def _channel(x: Float, rng: np.random.Generator, law: str,
             ) -> tuple[bytes, npt.NDArray[np.int64]]:
    """G.711 code ``x`` and send it as 20 ms packets with bursty loss and reordering:
    the packets that arrive, in arrival order, and the index of each in the stream sent."""
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        coded = (audioop.lin2ulaw if law == "PCMU" else audioop.lin2alaw)(pcm, 2)
    packets = [coded[i: i + FRAME] for i in range(0, len(coded) - FRAME + 1, FRAME)]
    target = rng.uniform(0.01, 0.03)
    # Gilbert-Elliott: bursts of 1-3 packets, ``target`` of them lost on the whole.
    p_bad_to_good = 0.5
    p_good_to_bad = target * p_bad_to_good / (1 - target)
    bad = False
    kept: list[int] = []
    draws = rng.uniform(size=len(packets))
    for i in range(len(packets)):
        bad = draws[i] < (1 - p_bad_to_good if bad else p_good_to_bad)
        if not bad:
            kept.append(i)
    # Jitter: now and then a packet arrives after the next one.
    swaps = rng.uniform(size=len(kept)) < 0.01
    for i in np.flatnonzero(swaps[:-1]).tolist():
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return b"".join(packets[i] for i in kept), np.array(kept, dtype=np.int64)


def build(case: Case, ph: Phrases | None = None) -> CaseAudio:
    """The called leg of ``case``, the same for the same seed."""
    ph = ph or phrases()
    rng = np.random.default_rng([case.seed, KINDS.index(case.kind)])
    law = "PCMU" if rng.uniform() < 0.5 else "PCMA"
    track = conversation(rng, case.seconds, ph)
    attempt_at: float | None = None
    background = np.ones(len(track))
    if case.kind in ATTEMPTS:
        attempt, open_line, flash_at = _attempt(case.kind, rng, ph)
        at = int(rng.integers(round(3 * RATE),
                              max(round(4 * RATE), len(track) - len(attempt))))
        attempt_at = (at + flash_at) / RATE  # the flash or the forwarding click
        # The called party does not talk over their own attempt.
        track[at: at + len(attempt)] = 0.0
        _place(track, attempt, at)
        if open_line is not None:
            # On hook, the called phone's own noise is cut off with it.
            background[at + open_line[0]: at + open_line[1]] = 0.0
    elif case.kind != "clean":
        _decoy(case.kind, track, rng)
    color = "pinknoise" if rng.uniform() < 0.6 else "brownnoise"
    bed = noise_bed(color)
    level = 10 ** (rng.uniform(-52, -40) / 20)
    reps = -(-len(track) // len(bed))
    start = rng.integers(len(bed))
    noise = np.tile(bed, reps + 1)[start: start + len(track)]
    track += noise * level * background
    payload, kept = _channel(track, rng, law)
    lost = 1 - len(kept) / max(1, len(track) // FRAME)
    if attempt_at is not None:
        # In the leg's own time: the packets lost before the attempt are not heard.
        packet = int(attempt_at * RATE) // FRAME
        attempt_at = float(np.searchsorted(np.sort(kept), packet)) * FRAME / RATE
    return CaseAudio(case, law, payload, attempt_at, lost)


def corpus(kinds: tuple[str, ...], per_kind: int, seconds: float, seed: int = 0,
           ) -> list[Case]:
    """``per_kind`` cases of each kind, ``seconds`` long, seeded from ``seed``."""
    return [Case(seed * 100_000 + i, kind, seconds) for kind in kinds for i in range(per_kind)]
