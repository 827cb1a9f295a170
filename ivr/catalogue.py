"""The shipped prompt audio of one language, loaded once and served as samples or G.711 bytes."""

from __future__ import annotations

import wave
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ivr import phrases
from ivr.errors import PromptMissing
from ivr.g711 import Codec
from ivr.prompt_build import PROMPTS_DIR

SAMPLE_RATE = 8000
Int16Array = npt.NDArray[np.int16]


def read_wav(path: Path) -> Int16Array:
    """An 8 kHz mono 16-bit WAV file as samples; anything else is refused."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise PromptMissing(
                    f"{path}: prompt must be 8 kHz mono 16-bit, is {w.getframerate()} Hz "
                    f"{w.getnchannels()} ch {8 * w.getsampwidth()}-bit"
                )
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise PromptMissing(f"{path}: cannot read prompt: {exc}") from exc
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


class PromptCatalogue:
    """Prompts of one language: ``render(sequence)`` gives the audio of a prompt sequence.

    Facility prompts (``facility/<id>``) fall back to "a correctional facility"
    when no file was built for that facility; every other missing prompt is an
    installation error (``PromptMissing``). Audio is cached after first use.
    """

    def __init__(self, lang: str, root: Path = PROMPTS_DIR) -> None:
        if lang not in phrases.TEXTS:
            raise ValueError(f"no prompts for language {lang!r}; have {', '.join(phrases.TEXTS)}")
        self.lang = lang
        self.root = Path(root)
        self._audio: dict[str, Int16Array] = {}
        self._encoded: dict[tuple[str, str], bytes] = {}

    def names(self) -> list[str]:
        """Every prompt this language's wording defines."""
        return list(phrases.TEXTS[self.lang])

    def facility_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / self.lang / "facility").glob("*.wav"))

    def audio(self, name: str) -> Int16Array:
        cached = self._audio.get(name)
        if cached is not None:
            return cached
        path = self.root / self.lang / f"{name}.wav"
        if name.startswith("facility/") and not path.exists():
            samples = self.audio("facility_unknown")
        else:
            if ("/" in name and not name.startswith("facility/")) or ".." in name:
                raise PromptMissing(f"{name!r} is not a prompt name")
            if not path.exists():
                raise PromptMissing(f"prompt {self.lang}/{name} has no audio file at {path}")
            samples = read_wav(path)
            samples.setflags(write=False)
        self._audio[name] = samples
        return samples

    def render(self, sequence: phrases.Sequence) -> Int16Array:
        """The audio of a prompt sequence, concatenated."""
        parts = [self.audio(name) for name in sequence]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def encoded(self, sequence: phrases.Sequence, codec: Codec) -> bytes:
        """The sequence in ``codec``, from per-prompt encodings cached once."""
        out = []
        for name in sequence:
            key = (name, codec.name)
            data = self._encoded.get(key)
            if data is None:
                data = codec.encode(self.audio(name))
                self._encoded[key] = data
            out.append(data)
        return b"".join(out)

    def duration(self, sequence: phrases.Sequence) -> float:
        return sum(len(self.audio(n)) for n in sequence) / SAMPLE_RATE

    def check(self) -> list[str]:
        """Names of prompts whose files are missing (empty when the install is whole)."""
        missing = []
        for name in self.names():
            if not (self.root / self.lang / f"{name}.wav").exists():
                missing.append(name)
        return missing

    # Convenience: the language's sayings, so callers need only the catalogue.
    def say_number(self, n: int) -> phrases.Sequence:
        return phrases.say_number(self.lang, n)

    def say_money(self, amount: Decimal) -> phrases.Sequence:
        return phrases.say_money(self.lang, amount)
