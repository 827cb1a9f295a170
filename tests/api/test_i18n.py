"""The page speaks English and Spanish, with the same set of words."""

from __future__ import annotations

import re

from api.i18n import STRINGS, Translator, pick_language


def test_both_languages_have_every_key_and_placeholder() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["es"])
    for key, text in STRINGS["en"].items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", STRINGS["es"][key]))


def test_language_choice() -> None:
    assert pick_language("es", "en-US") == "es"
    assert pick_language(None, "es-MX,es;q=0.9,en;q=0.8") == "es"
    assert pick_language("fr", "fr-FR, en;q=0.5") == "en"
    assert pick_language(None, None) == "en"
    assert Translator("es")("minutes_hint", max=15) == "De 1 a 15 minutos en este centro."
