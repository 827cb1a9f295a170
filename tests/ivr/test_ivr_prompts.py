"""Prompt wording, number and money sayings, and the shipped audio."""

from __future__ import annotations

import wave
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from ivr import PCMA, PCMU, PromptCatalogue, PromptMissing, phrases
from ivr.prompt_build import PROMPTS_DIR


def test_say_money_examples_english() -> None:
    assert phrases.say_money("en", Decimal("0.06")) == ("num_6", "word_cents")
    assert phrases.say_money("en", Decimal("0.01")) == ("num_1", "word_cent")
    assert phrases.say_money("en", Decimal("0.0575")) == (
        "num_5", "word_point", "num_7", "num_5", "word_cents",
    )
    assert phrases.say_money("en", Decimal("1.00")) == ("num_1", "word_dollar")
    assert phrases.say_money("en", Decimal("21.35")) == (
        "num_20", "num_1", "word_dollars", "word_and", "num_30", "num_5", "word_cents",
    )
    assert phrases.say_money("en", Decimal("0")) == ("num_0", "word_cents")


def test_say_money_examples_spanish() -> None:
    assert phrases.say_money("es", Decimal("1.50")) == (
        "num_un", "word_dollar", "word_with", "num_50", "word_cents",
    )
    assert phrases.say_money("es", Decimal("0.21")) == ("num_veintiun", "word_cents")
    assert phrases.say_money("es", Decimal("31.00")) == (
        "num_30", "word_and", "num_un", "word_dollars",
    )
    assert phrases.say_money("es", Decimal("100")) == ("word_hundred", "word_dollars")


def test_numbers() -> None:
    assert phrases.say_number("en", 115) == ("num_1", "word_hundred", "num_15")
    assert phrases.say_number("en", 20_000) == ("num_20", "word_thousand")
    assert phrases.say_number("es", 115) == ("num_100", "num_15")  # ciento quince
    assert phrases.say_number("es", 1000) == ("word_thousand",)  # mil, not "uno mil"
    assert phrases.say_number("es", 21) == ("num_21",)
    assert phrases.say_minutes("es", 21) == ("num_veintiun", "word_minutes")
    assert phrases.say_minutes("en", 1) == ("num_1", "word_minute")


@pytest.mark.parametrize("bad", [-1, 1_000_000, 1.5, True])
def test_numbers_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="cannot say"):
        phrases.say_number("en", bad)  # type: ignore[arg-type]


def test_money_refuses_floats_and_excess_precision() -> None:
    with pytest.raises(ValueError, match=r"not 0\.1"):
        phrases.say_money("en", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 4 decimal places"):
        phrases.say_money("en", Decimal("0.00001"))
    with pytest.raises(ValueError, match="language 'fr'"):
        phrases.say_money("fr", Decimal(1))


@pytest.mark.parametrize("lang", phrases.LANGUAGES)
def test_every_saying_has_audio(lang: str) -> None:
    cat = PromptCatalogue(lang)
    assert cat.check() == []
    names = set(cat.names())
    for n in range(0, 1_000_000, 7919):
        assert set(phrases.say_number(lang, n)) <= names
    for cents in range(0, 100_000, 37):
        amount = Decimal(cents) / 10_000
        assert set(phrases.say_money(lang, amount)) <= names
    seq = phrases.rate_announcement(lang, Decimal("0.0600"), 15, Decimal("0.90"))
    assert cat.duration(seq) > 3


@pytest.mark.parametrize("lang", phrases.LANGUAGES)
def test_shipped_files_are_8khz_mono_16bit_and_not_silent(lang: str) -> None:
    files = sorted((PROMPTS_DIR / lang).rglob("*.wav"))
    assert len(files) >= len(phrases.TEXTS[lang])
    for f in files:
        with wave.open(str(f)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), f
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert len(samples) > 800, f  # at least a tenth of a second
        assert np.abs(samples).max() > 5000, f


def test_demo_facilities_have_prompts() -> None:
    for lang in phrases.LANGUAGES:
        ids = PromptCatalogue(lang).facility_ids()
        assert {"tx-state-prison", "al-county-jail", "ak-regional-jail"} <= set(ids)


def test_total_size_stays_modest() -> None:
    # About 5.6 MB with the caller's menu (16 kB per second of speech): a guard
    # against shipping something other than short 8 kHz prompts.
    total = sum(f.stat().st_size for f in PROMPTS_DIR.rglob("*.wav"))
    assert total < 7_000_000


def test_greeting_sequence_and_rendering() -> None:
    cat = PromptCatalogue("en")
    seq = phrases.greeting(
        facility_id="tx-state-prison", privileged=False, single_call_charge=None, lang="en"
    )
    assert seq[:3] == ("intro_prepaid", "facility/tx-state-prison", "recording_notice")
    assert "opt_single_call" not in seq
    audio = cat.render(seq)
    assert len(audio) == sum(len(cat.audio(n)) for n in seq)
    assert len(cat.encoded(seq, PCMU)) == len(audio)
    assert cat.encoded(seq, PCMA) != cat.encoded(seq, PCMU)


def test_unknown_facility_falls_back_and_missing_prompt_is_an_error(tmp_path: Path) -> None:
    cat = PromptCatalogue("en")
    assert np.array_equal(cat.audio("facility/nowhere"), cat.audio("facility_unknown"))
    with pytest.raises(PromptMissing, match="no audio file"):
        cat.audio("no_such_prompt")
    with pytest.raises(PromptMissing, match="not a prompt name"):
        cat.audio("../en/goodbye")
    empty = PromptCatalogue("en", root=tmp_path)
    assert "goodbye" in empty.check()


def test_wrong_format_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    with wave.open(str(tmp_path / "en" / "goodbye.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 100)
    with pytest.raises(PromptMissing, match="must be 8 kHz mono 16-bit"):
        PromptCatalogue("en", root=tmp_path).audio("goodbye")
