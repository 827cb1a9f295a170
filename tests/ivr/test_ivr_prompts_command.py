"""`ics prompts build` and `ics prompts check` with the real espeak-ng and sox."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from ics.cli import main

# Part of the test set-up (scripts/test.sh installs them): missing, the run fails.
assert shutil.which("espeak-ng") and shutil.which("sox"), (
    "espeak-ng and sox are missing: install them (scripts/test.sh does)")


def test_build_a_facility_prompt_in_both_languages(tmp_path: Path) -> None:
    status = main([
        "prompts", "build", "--no-config", "--only-facilities",
        "--facility", "fl-test-center=Florida Test Center", "--out", str(tmp_path),
    ])
    assert status == 0
    for lang in ("en", "es"):
        with wave.open(str(tmp_path / lang / "facility" / "fl-test-center.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert len(samples) > 4000 and np.abs(samples).max() > 5000


def test_keep_existing_leaves_a_recorded_name_alone(tmp_path: Path) -> None:
    recorded = tmp_path / "en" / "facility" / "x.wav"
    recorded.parent.mkdir(parents=True)
    recorded.write_bytes(b"recorded by a person")
    assert main(["prompts", "build", "--no-config", "--only-facilities", "--lang", "en",
                 "--keep-existing", "--facility", "x=Somewhere", "--out", str(tmp_path)]) == 0
    assert recorded.read_bytes() == b"recorded by a person"


def test_bad_arguments_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="does not exist"):
        main(["prompts", "build", "--config", str(tmp_path / "missing.toml")])
    assert main(["prompts", "build", "--no-config", "--facility", "no-equals-sign"]) == 2
    assert "is not ID=NAME" in capsys.readouterr().err
    assert main(["prompts", "build", "--no-config", "--lang", "fr", "--out", str(tmp_path)]) == 1
    assert "no wording for language 'fr'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_check_passes_for_the_demo_config(capsys: pytest.CaptureFixture[str]) -> None:
    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
    assert main(["prompts", "check", "--config", str(demo)]) == 0
    assert "all prompts present" in capsys.readouterr().out


def test_a_rebuild_gives_the_shipped_files_and_speaks_the_offer_in_its_language(
    tmp_path: Path,
) -> None:
    from ivr.prompt_build import PROMPTS_DIR

    assert main(["prompts", "build", "--no-config", "--lang", "en", "--out", str(tmp_path)]) == 0
    built = tmp_path / "en"
    # The caller's menu prompts were built by this command and committed unchanged.
    for name in ("pin_prompt", "number_prompt", "please_hold", "offer_en", "word_pm"):
        shipped = PROMPTS_DIR / "en" / f"{name}.wav"
        assert (built / f"{name}.wav").read_bytes() == shipped.read_bytes(), name
    # "Para español, oprima 2." in the English directory is the Spanish voice's.
    spanish = (PROMPTS_DIR / "es" / "offer_es.wav").read_bytes()
    assert (built / "offer_es.wav").read_bytes() == spanish
    assert (built / "offer_en.wav").read_bytes() != spanish
