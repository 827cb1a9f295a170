"""The acceptance menu driven with a fake clock through every path."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ivr import phrases
from ivr.menu import (
    Accept,
    AcceptanceMenu,
    AcceptSingleCall,
    Block,
    Decline,
    HearRate,
    MenuState,
    NoAnswer,
    Play,
    StopPlayback,
)


def started(**kw: object) -> tuple[AcceptanceMenu, Play]:
    menu = AcceptanceMenu(facility_id="tx-state-prison", **kw)  # type: ignore[arg-type]
    [play] = menu.start(0.0)
    assert isinstance(play, Play)
    return menu, play


def test_greeting_wording_english() -> None:
    _, play = started()
    assert play.purpose == "menu"
    assert play.sequence == (
        "intro_prepaid", "facility/tx-state-prison", "recording_notice",
        "opt_accept", "opt_decline", "opt_cost", "opt_block", "opt_repeat",
    )


def test_privileged_call_has_no_recording_notice() -> None:
    _, play = started(privileged=True)
    assert "recording_notice" not in play.sequence
    assert "opt_accept" in play.sequence


def test_single_call_variant_announces_the_charge_and_offers_3() -> None:
    menu, play = started(lang="es", single_call_charge=Decimal("2.50"))
    assert play.sequence[:4] == ("intro_single", "facility/tx-state-prison", "recording_notice",
                                 "opt_single_call")
    assert play.sequence[4:9] == ("num_2", "word_dollars", "word_with", "num_50", "word_cents")
    assert "press_3" in play.sequence and "opt_accept" not in play.sequence
    # 1 is not an option in this variant.
    out = menu.digit("1", 1.0)
    assert out[0] == StopPlayback() and out[1].purpose == "invalid"  # type: ignore[union-attr]
    out = menu.digit("3", 2.0)
    assert out == [StopPlayback(), AcceptSingleCall(Decimal("2.50"))]
    assert menu.state is MenuState.DONE


def test_three_is_invalid_when_single_call_not_offered() -> None:
    menu, _ = started()
    menu.prompt_finished(10.0)
    [play] = menu.digit("3", 11.0)
    assert isinstance(play, Play) and play.sequence[0] == "invalid_choice"


def test_accept_with_barge_in() -> None:
    menu, _ = started()
    assert menu.digit("1", 2.0) == [StopPlayback(), Accept()]
    assert menu.outcome == Accept()
    assert menu.get_timer() is None
    assert menu.digit("2", 3.0) == []  # nothing after the decision
    assert menu.hangup(4.0) == []


def test_accept_after_prompt_without_stop() -> None:
    menu, _ = started()
    assert menu.prompt_finished(12.0) == []
    assert menu.get_timer() == pytest.approx(18.0)
    assert menu.digit("1", 13.0) == [Accept()]


def test_decline() -> None:
    menu, _ = started()
    assert menu.digit("2", 1.0) == [StopPlayback(), Decline(farewell=("declined",))]


def test_hangup_during_prompt_is_a_decline() -> None:
    menu, _ = started()
    assert menu.hangup(3.0) == [Decline(hung_up=True)]
    assert menu.state is MenuState.DONE


def test_hear_rate_then_back_to_options() -> None:
    menu, _ = started()
    assert menu.digit("5", 1.0) == [StopPlayback(), HearRate()]
    assert menu.state is MenuState.WAITING_RATE
    [play] = menu.rate_info(Decimal("0.0600"), 15, Decimal("0.90"), 1.1)
    assert isinstance(play, Play) and play.purpose == "rate"
    assert play.sequence == (
        "rate_intro", "num_6", "word_cents", "per_minute",
        "max_intro", "num_90", "word_cents", "for_up_to", "num_15", "word_minutes",
    )
    [back] = menu.prompt_finished(8.0)
    assert isinstance(back, Play) and back.purpose == "menu"
    assert back.sequence == phrases.options(single_call_charge=None, lang="en")
    # A stray late rate answer changes nothing.
    assert menu.rate_info(Decimal("0.06"), 15, Decimal("0.90"), 9.0) == []
    assert menu.digit("1", 9.5) == [StopPlayback(), Accept()]


def test_rate_lookup_that_never_answers_returns_to_menu() -> None:
    menu, _ = started()
    menu.digit("5", 1.0)
    assert menu.get_timer() == pytest.approx(6.0)
    assert menu.timer(5.9) == []
    [play] = menu.timer(6.0)
    assert isinstance(play, Play) and play.purpose == "menu"


def test_block_needs_confirmation() -> None:
    menu, _ = started()
    [stop, play] = menu.digit("9", 1.0)
    assert stop == StopPlayback() and play == Play(("block_confirm",), "block_confirm")
    menu.prompt_finished(9.0)
    assert menu.digit("9", 10.0) == [Block(farewell=("blocked",))]


def test_block_confirmation_other_key_returns_to_menu() -> None:
    menu, _ = started()
    menu.digit("9", 1.0)
    [stop, play] = menu.digit("4", 2.0)
    assert stop == StopPlayback() and isinstance(play, Play) and play.purpose == "menu"
    assert menu.digit("1", 3.0) == [StopPlayback(), Accept()]


def test_block_confirmation_timeout_returns_to_menu() -> None:
    menu, _ = started()
    menu.digit("9", 1.0)
    menu.prompt_finished(9.0)
    [play] = menu.timer(15.0)
    assert isinstance(play, Play) and play.purpose == "menu"


def test_invalid_keys_then_no_answer() -> None:
    menu, _ = started(max_attempts=3)
    [_, p1] = menu.digit("7", 1.0)
    assert isinstance(p1, Play) and p1.sequence[0] == "invalid_choice"
    assert p1.sequence[1:] == phrases.options(single_call_charge=None, lang="en")
    [_, p2] = menu.digit("#", 2.0)
    assert isinstance(p2, Play) and p2.purpose == "invalid"
    [_, end] = menu.digit("0", 3.0)
    assert end == NoAnswer(farewell=("invalid_choice", "goodbye"))


def test_silence_repeats_then_no_answer() -> None:
    menu, _ = started(max_attempts=2, choice_timeout=5.0)
    menu.prompt_finished(10.0)
    assert menu.timer(14.9) == []
    [p] = menu.timer(15.0)
    assert isinstance(p, Play) and p.purpose == "no_input" and p.sequence[0] == "no_input"
    menu.prompt_finished(25.0)
    assert menu.timer(30.0) == [NoAnswer(farewell=("no_input", "goodbye"))]
    assert menu.get_timer() is None


def test_star_repeats_without_using_an_attempt() -> None:
    menu, _ = started(max_attempts=1)
    [_, p] = menu.digit("*", 1.0)
    assert isinstance(p, Play) and p.purpose == "repeat"
    assert menu.digit("1", 2.0) == [StopPlayback(), Accept()]


def test_lost_prompt_finished_is_covered_by_guard_timer() -> None:
    menu, _ = started(prompt_guard=60.0)
    assert menu.get_timer() == pytest.approx(60.0)
    assert menu.timer(60.0) == []
    assert menu.state is MenuState.WAITING_CHOICE


def test_inputs_before_start_are_ignored() -> None:
    menu = AcceptanceMenu()
    assert menu.digit("1", 0.0) == []
    assert menu.prompt_finished(0.0) == []
    assert menu.timer(100.0) == []
    assert menu.start(0.0) != []
    assert menu.start(1.0) == []  # only once


def test_spanish_wording() -> None:
    _, play = started(lang="es")
    assert play.sequence[0] == "intro_prepaid"
    known = phrases.TEXTS["es"]
    assert all(name in known or name.startswith("facility/") for name in play.sequence)


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="language"):
        AcceptanceMenu("fr")
    with pytest.raises(ValueError, match="max_attempts"):
        AcceptanceMenu(max_attempts=0)
    with pytest.raises(ValueError, match="decimal"):
        AcceptanceMenu(single_call_charge=2.5)  # type: ignore[arg-type]
