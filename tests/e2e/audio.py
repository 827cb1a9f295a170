"""Listening to what a party hears: an RTP sink and a correlation against a shipped prompt."""

from __future__ import annotations

import socket
import threading
import warnings
import wave
from pathlib import Path

import numpy as np
from harness import REPO

with warnings.catch_warnings():
    # The standard library's G.711 codec, kept independent of ours (removed in 3.13).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PROMPTS = REPO / "ivr" / "prompts"


def prompt_samples(name: str, lang: str = "en") -> np.ndarray:
    """A shipped prompt WAV (8 kHz, 16-bit mono) as floats, read with the standard library."""
    with wave.open(str(PROMPTS / lang / f"{name}.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float64)


def decode_g711(payload: bytes, payload_type: int) -> bytes:
    """G.711 to 16-bit linear with the standard library's codec (independent of ours)."""
    if payload_type == 0:
        return audioop.ulaw2lin(payload, 2)
    if payload_type == 8:
        return audioop.alaw2lin(payload, 2)
    return b""


def best_match(heard: np.ndarray, template: np.ndarray) -> float:
    """Peak normalized cross-correlation of ``template`` anywhere in ``heard`` (0..1)."""
    if len(heard) < len(template) or not template.any():
        return 0.0
    n = len(heard) + len(template)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[: len(heard) - len(template) + 1]
    energy = np.convolve(heard**2, np.ones(len(template)), mode="valid")
    denom = np.sqrt(np.maximum(energy, 1e-9) * float(np.dot(template, template)))
    return float(np.max(corr / denom))


class RtpSink:
    """Receives RTP on one UDP port and keeps the decoded audio, in arrival order."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.packets = 0
        self.payload_types: set[int] = set()
        self._pcm = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            pt = data[1] & 0x7F
            cc = data[0] & 0x0F
            self.packets += 1
            self.payload_types.add(pt)
            self._pcm += decode_g711(data[12 + 4 * cc:], pt)

    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self._pcm), dtype="<i2").astype(np.float64)

    def heard(self, prompt: str, lang: str = "en") -> float:
        return best_match(self.samples(), prompt_samples(prompt, lang))


def write_wav(path: Path, samples: np.ndarray) -> None:
    """For a failing test's artefacts: what was heard, as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
