"""A facility's three-way settings: the policy and detector sensitivity, with clear errors."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from callcontrol.three_way import three_way_settings
from ivr.threeway import Sensitivity
from settings.config import ConfigError, ThreeWaySensitivityConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FACILITY = "facilities/tx-state-prison.toml"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target, ignore=shutil.ignore_patterns("var"))
    return target


def add(configs: Path, text: str) -> None:
    """Add ``text`` to the facility file: its keys before the file's tables, its tables after."""
    path = configs / FACILITY
    keys, sep, tables = text.partition("[")
    path.write_text(f"{keys}\n{path.read_text()}\n{sep}{tables}\n")


def test_the_default_is_flag_with_the_detectors_defaults() -> None:
    config = load_config(CONFIGS / "demo.toml")
    settings = three_way_settings(config)
    assert {s.policy for s in settings.values()} == {"flag"}
    assert {s.sensitivity for s in settings.values()} == {Sensitivity()}


def test_policy_and_sensitivity_are_read(configs: Path) -> None:
    add(configs, 'three_way_policy = "disconnect"\n'
                 '[three_way_sensitivity]\ndial_tone_seconds = 1.2\nfollow_seconds = 5')
    settings = three_way_settings(load_config(configs / "demo.toml"))["tx-state-prison"]
    assert settings.policy == "disconnect"
    assert settings.sensitivity == Sensitivity(dial_tone_seconds=1.2, follow_seconds=5.0)


@pytest.mark.parametrize("text,words", [
    ('three_way_policy = "hang-up"', ["three_way_policy", "flag", "warn", "disconnect"]),
    ("[three_way_sensitivity]\ntone_share = 2", ["tone_share", "less than or equal to 1"]),
    ("[three_way_sensitivity]\nloudness = 3", ["loudness", "not permitted"]),
    ("[three_way_sensitivity]\nringback_min_seconds = 3", ["ringback_min_seconds",
                                                           "ringback_max_seconds"]),
])
def test_errors_name_the_key(configs: Path, text: str, words: list[str]) -> None:
    add(configs, text)
    with pytest.raises(ConfigError) as info:
        load_config(configs / "demo.toml")
    message = str(info.value)
    assert "tx-state-prison" in message
    for word in words:
        assert word in message


def test_every_sensitivity_key_is_a_detector_setting() -> None:
    detector = {f.name for f in dataclasses.fields(Sensitivity)}
    assert set(ThreeWaySensitivityConfig.model_fields) <= detector
