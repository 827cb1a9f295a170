"""Builds the shipped prompt audio from ``phrases.TEXTS`` with espeak-ng and sox.

Run ``ics prompts build`` (or ``python -m ivr.prompt_build``). Each prompt
becomes ``ivr/prompts/<lang>/<name>.wav``: 8 kHz, mono, 16-bit PCM, trimmed of
leading and trailing silence (sentences keep a short pause at their end so
sequences flow), band-limited to the telephone band and normalised. Facility
names become ``ivr/prompts/<lang>/facility/<facility id>.wav``; a recorded
file placed there by hand is kept when ``keep_existing`` is set. Speech
synthesis happens here only, never during a call. Prompts named in
``phrases.SPOKEN_IN`` (the language offer) are spoken in that language in
every language's directory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ivr.phrases import SPOKEN_IN, TEXTS

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
VOICES = {"en": "en-us", "es": "es-419"}
WORDS_PER_MINUTE = 150
SENTENCE_PAUSE_S = 0.25


class PromptBuildError(RuntimeError):
    """The prompt audio could not be built (missing tool or failed synthesis)."""


def _tools() -> tuple[str, str]:
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    if not espeak or not sox:
        raise PromptBuildError(
            "prompt building needs espeak-ng and sox (Debian: apt-get install espeak-ng sox)"
        )
    return espeak, sox


def synthesize(text: str, lang: str, out: Path) -> None:
    """Speak ``text`` in ``lang`` into an 8 kHz mono 16-bit WAV at ``out``."""
    espeak, sox = _tools()
    voice = VOICES.get(lang, lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        pause = SENTENCE_PAUSE_S if text.rstrip().endswith((".", "?", "!")) else 0.03
        subprocess.run(
            [
                # -R -D: no random dither, so a rebuild gives identical files.
                sox, "-R", "-D", str(raw),
                "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out),
                "highpass", "250", "lowpass", "3400",
                # Trim silence at both ends so concatenated words do not drag.
                "silence", "1", "0.01", "0.5%", "reverse",
                "silence", "1", "0.01", "0.5%", "reverse",
                "norm", "-4",
                "pad", "0.02", str(pause),
            ],
            check=True,
            capture_output=True,
        )


def build(
    langs: Iterable[str] = ("en", "es"),
    facilities: Mapping[str, str] | None = None,
    out_dir: Path = PROMPTS_DIR,
    *,
    keep_existing: bool = False,
    only_facilities: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Build every prompt of ``langs`` (and one per facility); returns the files written."""
    written: list[Path] = []
    for lang in langs:
        if lang not in TEXTS:
            raise PromptBuildError(f"no wording for language {lang!r}; add it to ivr/phrases.py")
        # (text, language it is spoken in, file)
        jobs: list[tuple[str, str, Path]] = []
        if not only_facilities:
            jobs += [
                (text, SPOKEN_IN.get(name, lang), out_dir / lang / f"{name}.wav")
                for name, text in TEXTS[lang].items()
            ]
        for fid, name in (facilities or {}).items():
            if not fid or "/" in fid or fid.startswith("."):
                raise PromptBuildError(f"facility id {fid!r} cannot name a file")
            jobs.append((f"{name}.", lang, out_dir / lang / "facility" / f"{fid}.wav"))
        for text, voice_lang, path in jobs:
            if keep_existing and path.exists():
                continue
            try:
                synthesize(text, voice_lang, path)
            except subprocess.CalledProcessError as exc:
                err = exc.stderr.decode(errors="replace").strip()
                raise PromptBuildError(f"synthesis of {path.name} failed: {err}") from exc
            written.append(path)
            if progress:
                print(f"  {path.relative_to(out_dir)}", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lang", action="append", help="language (default: all)")
    parser.add_argument("--facility", action="append", default=[], metavar="ID=NAME")
    args = parser.parse_args(argv)
    facilities = dict(f.split("=", 1) for f in args.facility)
    build(args.lang or list(TEXTS), facilities, progress=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
