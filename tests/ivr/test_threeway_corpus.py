"""Corpus cases through the detector: clean and decoy calls never flag, attempts do.

Cases are short and built from a few synthesized phrases (espeak-ng, cached), so the
whole file runs in seconds; ``loadtests/bench_threeway.py`` runs the full corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.threeway import LegWatch, ThreeWaySuspected

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
import threeway_corpus as tc


@pytest.fixture(scope="module")
def phrases() -> tc.Phrases:
    return tc.phrases(per_voice=3)


def decide(audio: tc.CaseAudio) -> tuple[ThreeWaySuspected | None, LegWatch]:
    x = audio.samples()
    watch = LegWatch()
    decided = None
    for i in range(0, len(x), 4000):
        decided = decided or watch.feed(x[i: i + 4000])
    return decided, watch


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), kind=st.sampled_from(("clean", *tc.DECOYS)))
def test_clean_and_decoy_calls_never_flag(phrases: tc.Phrases, seed: int, kind: str) -> None:
    audio = tc.build(tc.Case(seed, kind, 20.0), phrases)
    decided, watch = decide(audio)
    assert decided is None, (kind, seed, watch.signals)


@pytest.mark.parametrize("kind", tc.ATTEMPTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_attempts_flag_within_3_s(phrases: tc.Phrases, kind: str, seed: int) -> None:
    audio = tc.build(tc.Case(seed, kind, 30.0), phrases)
    assert audio.attempt_at is not None
    decided, watch = decide(audio)
    assert decided is not None, watch.signals
    assert 0 <= decided.at - audio.attempt_at <= 3.0


def test_a_case_is_the_same_for_the_same_seed(phrases: tc.Phrases) -> None:
    a = tc.build(tc.Case(7, "three_way", 20.0), phrases)
    b = tc.build(tc.Case(7, "three_way", 20.0), phrases)
    assert a.payload == b.payload and a.attempt_at == b.attempt_at and a.law == b.law
    assert 0.005 <= a.loss <= 0.05
    c = tc.build(tc.Case(8, "three_way", 20.0), phrases)
    assert c.payload != a.payload
    assert np.abs(a.samples().astype(np.int32)).max() > 1000
