"""The caller's menu driven with a fake clock through every path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ivr import PromptCatalogue, phrases
from ivr.caller_menu import (
    Abandoned,
    CalledOutcome,
    CallerMenu,
    CallerMenuState,
    CheckPin,
    Connected,
    EndCall,
    PinInvalid,
    PinLocked,
    PinResult,
    PinSuspended,
    PinValid,
    PlaceCall,
    Play,
    PlayRingback,
    Refusal,
    StopPlayback,
    dialled_e164,
)

NUMBER = "5125550100"


def play_of(actions: list[object]) -> Play:
    plays = [a for a in actions if isinstance(a, Play)]
    assert len(plays) == 1, actions
    return plays[0]


def keys(menu: CallerMenu, digits: str, at: float) -> list[object]:
    """Key ``digits`` one every 0.3 s from ``at``; the actions of the last key."""
    out: list[object] = []
    for i, d in enumerate(digits):
        out = list(menu.digit(d, at + 0.3 * i))
    return out


def at_pin(lang: str = "en", **kw: Any) -> CallerMenu:
    """A menu past the language offer, its PIN prompt finished at t=5."""
    menu = CallerMenu(**kw)
    menu.start(0.0)
    menu.digit(phrases.LANGUAGE_KEYS[lang], 2.0)
    assert menu.state is CallerMenuState.PIN
    menu.prompt_finished(5.0)
    return menu


def at_number(lang: str = "en", person_lang: str | None = None, **kw: Any) -> CallerMenu:
    """A menu whose PIN was accepted at t=10, the number prompt finished at t=14."""
    menu = at_pin(lang, **kw)
    assert keys(menu, "100001#", 6.0) == [CheckPin("100001")]
    menu.pin_checked(PinValid(person_lang or lang), 10.0)
    menu.prompt_finished(14.0)
    assert menu.state is CallerMenuState.NUMBER
    return menu


def placed(lang: str = "en", **kw: Any) -> CallerMenu:
    """A menu that handed over at t=20 with a valid number."""
    menu = at_number(lang, **kw)
    out = keys(menu, NUMBER, 15.0)
    assert out == []
    [call] = menu.digit("#", 20.0)
    assert call == PlaceCall("100001", "+15125550100", NUMBER, lang)
    return menu


# -- language --------------------------------------------------------------------------


def test_language_offer_then_pin_prompt_in_the_chosen_language() -> None:
    menu = CallerMenu()
    [offer] = menu.start(0.0)
    assert offer == Play(("offer_en", "offer_es"), "language", "en")
    assert menu.get_timer() == 60.0  # the prompt guard, before the 90 s limit
    # Barge-in: 2 during the offer stops it and chooses Spanish.
    assert menu.digit("2", 1.5) == [StopPlayback(), Play(("pin_prompt",), "pin", "es")]
    assert menu.lang == "es"


def test_one_language_skips_the_offer() -> None:
    menu = CallerMenu(["es"])
    assert menu.start(0.0) == [Play(("pin_prompt",), "pin", "es")]
    assert menu.state is CallerMenuState.PIN


def test_wrong_language_key_replays_the_offer_and_silence_falls_back_to_the_first() -> None:
    menu = CallerMenu()
    menu.start(0.0)
    assert menu.digit("7", 1.0) == [StopPlayback(), Play(("offer_en", "offer_es"), "language",
                                                         "en")]
    menu.prompt_finished(4.0)
    assert menu.get_timer() == 12.0  # no-input timeout
    assert menu.timer(11.9) == []
    [offer] = menu.timer(12.0)
    assert isinstance(offer, Play) and offer.purpose == "language"
    menu.prompt_finished(15.0)
    # Third play used up: carry on in English rather than hang up on the caller.
    assert menu.timer(23.0) == [Play(("pin_prompt",), "pin", "en")]
    assert menu.lang == "en"


def test_a_language_the_facility_does_not_offer_is_a_wrong_key() -> None:
    menu = CallerMenu(["es", "en"])
    [offer] = menu.start(0.0)
    assert offer.sequence == ("offer_es", "offer_en")  # type: ignore[union-attr]
    assert menu.digit("1", 1.0)[1] == Play(("pin_prompt",), "pin", "en")
    spanish_only = CallerMenu(["es"])
    assert spanish_only.languages == ("es",)
    with pytest.raises(ValueError, match="'fr'"):
        CallerMenu(["en", "fr"])
    with pytest.raises(ValueError, match="twice"):
        CallerMenu(["en", "en"])
    with pytest.raises(ValueError, match="at least one"):
        CallerMenu([])
    with pytest.raises(ValueError, match="pin_length"):
        CallerMenu(pin_length=0)
    with pytest.raises(ValueError, match="max_tries"):
        CallerMenu(max_tries=0)


def test_menu_time_is_unknown_until_it_starts_and_ends() -> None:
    menu = CallerMenu()
    assert menu.menu_seconds is None and menu.get_timer() is None
    menu.start(3.0)
    assert menu.started_at == 3.0 and menu.menu_seconds is None
    assert menu.get_timer() == 63.0


# -- PIN ---------------------------------------------------------------------------------


def test_pin_with_pound_is_checked_and_keys_while_checking_are_late() -> None:
    menu = at_pin()
    assert menu.digit("1", 6.0) == []
    assert menu.get_timer() == 11.0  # inter-digit timeout
    assert keys(menu, "00001", 6.3) == []
    assert menu.digit("#", 8.0) == [CheckPin("100001")]
    assert menu.state is CallerMenuState.CHECKING_PIN
    assert menu.digit("5", 8.5) == [] and menu.digit("#", 8.6) == []
    assert menu.pin == "100001"


def test_barge_in_on_the_pin_prompt() -> None:
    menu = CallerMenu(["en"])
    menu.start(0.0)
    assert menu.digit("1", 0.5) == [StopPlayback()]
    assert menu.digit("2", 0.8) == []  # nothing playing to stop any more
    assert menu.prompt_finished(0.9) == []  # a late report of the stopped prompt
    assert menu.get_timer() == pytest.approx(5.8)


def test_fixed_pin_length_ends_entry_without_pound() -> None:
    menu = at_pin(pin_length=4)
    menu.start(0.0)  # a second start does nothing
    assert menu.state is CallerMenuState.PIN
    assert keys(menu, "123", 6.0) == []
    assert menu.digit("4", 7.0) == [CheckPin("1234")]


def test_fixed_pin_length_prompt_does_not_ask_for_pound() -> None:
    menu = CallerMenu(["en"], pin_length=6)
    assert menu.start(0.0) == [Play(("pin_prompt_fixed",), "pin", "en")]
    # Pound before the length sends what was keyed (the controller says it is wrong).
    assert keys(menu, "12#", 1.0) == [CheckPin("12")]


def test_inter_digit_timeout_ends_pin_entry() -> None:
    menu = at_pin()
    keys(menu, "100001", 6.0)
    assert menu.timer(9.0) == []
    assert menu.timer(7.5 + 5.0) == [CheckPin("100001")]


def test_star_starts_the_entry_again() -> None:
    menu = at_pin()
    keys(menu, "999", 6.0)
    assert menu.digit("*", 7.0) == [Play(("pin_prompt",), "pin", "en")]
    assert menu.digit("1", 7.5) == [StopPlayback()]
    assert keys(menu, "00001#", 8.0) == [CheckPin("100001")]


def test_a_to_d_keys_are_ignored() -> None:
    menu = at_pin()
    keys(menu, "10A0B001", 6.0)
    assert menu.digit("D", 9.0) == []
    assert menu.digit("xx", 9.1) == []
    assert menu.digit("#", 9.2) == [CheckPin("100001")]


def test_wrong_pin_three_tries_then_goodbye() -> None:
    menu = at_pin()
    for attempt in range(2):
        assert keys(menu, "999999#", 6.0 + 10 * attempt) == [CheckPin("999999")]
        [again] = menu.pin_checked(PinInvalid(), 9.0 + 10 * attempt)
        assert again == Play(("pin_invalid", "pin_prompt"), "pin", "en")
        assert menu.pin is None
        menu.prompt_finished(10.0 + 10 * attempt)
    keys(menu, "999999#", 26.0)
    [end] = menu.pin_checked(PinInvalid(), 29.0)
    assert end == EndCall("pin_invalid", ("pin_invalid", "goodbye"), "en")
    assert menu.state is CallerMenuState.DONE and menu.get_timer() is None
    assert menu.outcome == end


def test_wrong_pin_then_right_pin() -> None:
    menu = at_pin()
    keys(menu, "1#", 6.0)
    menu.pin_checked(PinInvalid(), 7.0)
    # Barge-in on "That PIN is not valid. Please enter ...".
    assert menu.digit("1", 7.5) == [StopPlayback()]
    assert keys(menu, "00001#", 8.0) == [CheckPin("100001")]
    [number] = menu.pin_checked(PinValid("en"), 9.0)
    assert number == Play(("number_prompt",), "number", "en")


def test_silence_at_the_pin_prompt_counts_as_a_try() -> None:
    menu = at_pin()
    assert menu.get_timer() == 13.0
    assert menu.timer(13.0) == [Play(("no_entry", "pin_prompt"), "pin", "en")]
    menu.prompt_finished(16.0)
    assert menu.digit("#", 17.0) == [Play(("no_entry", "pin_prompt"), "pin", "en")]
    menu.prompt_finished(20.0)
    assert menu.timer(28.0) == [EndCall("no_entry", ("no_entry", "goodbye"), "en")]


def test_suspended_person_is_told_they_may_not_call() -> None:
    menu = at_pin()
    keys(menu, "100001#", 6.0)
    [end] = menu.pin_checked(PinSuspended(), 8.0)
    assert end == EndCall("suspended", ("not_allowed", "goodbye"), "en")


def test_a_pin_answer_that_is_not_awaited_does_nothing() -> None:
    menu = at_pin()
    assert menu.pin_checked(PinValid("en"), 6.0) == []
    assert menu.call_refused(Refusal.FAILED, 6.0) == []
    assert menu.call_placed(6.0) == []
    assert menu.call_outcome(CalledOutcome.ACCEPTED, 6.0) == []
    assert menu.state is CallerMenuState.PIN


def test_controller_that_never_answers_the_pin_check() -> None:
    menu = at_pin()
    keys(menu, "100001#", 6.0)
    assert menu.get_timer() == pytest.approx(7.8 + 15.0)
    assert menu.timer(22.8) == [EndCall("no_answer_from_controller", ("call_failed", "goodbye"),
                                        "en")]


# -- the lock ------------------------------------------------------------------------------


def test_station_locked_at_the_pin_check() -> None:
    menu = at_pin()
    keys(menu, "123456#", 6.0)
    [end] = menu.pin_checked(PinLocked(), 8.0)
    assert end == EndCall("station_locked", ("station_locked", "goodbye"), "en")


def test_station_locked_before_the_menu_starts_or_while_a_prompt_plays() -> None:
    before = CallerMenu()
    assert before.station_locked(0.0) == [
        EndCall("station_locked", ("station_locked", "goodbye"), "en")
    ]
    assert before.start(1.0) == [] and before.menu_seconds == 0.0
    during = CallerMenu()
    during.start(0.0)
    during.digit("2", 1.0)
    assert during.station_locked(1.2) == [
        StopPlayback(), EndCall("station_locked", ("station_locked", "goodbye"), "es")
    ]
    # After the hand-over the lock no longer matters to this call.
    assert placed().station_locked(21.0) == []


# -- after the PIN ---------------------------------------------------------------------------


def test_the_persons_language_is_used_after_the_pin() -> None:
    menu = at_pin("en")
    keys(menu, "100002#", 6.0)
    [number] = menu.pin_checked(PinValid("es"), 8.0)
    assert number == Play(("number_prompt",), "number", "es")
    assert menu.lang == "es"


def test_debit_balance_is_said_before_the_number_prompt() -> None:
    menu = at_pin()
    keys(menu, "100001#", 6.0)
    [number] = menu.pin_checked(PinValid("en", debit_balance=Decimal("9.94")), 8.0)
    assert number == Play(
        ("balance_intro", "num_9", "word_dollars", "word_and", "num_90", "num_4", "word_cents",
         "number_prompt"),
        "number",
        "en",
    )


def test_debit_balance_in_spanish() -> None:
    menu = at_pin("es")
    keys(menu, "100002#", 6.0)
    [number] = menu.pin_checked(PinValid("es", debit_balance=Decimal("1.50")), 8.0)
    assert number.sequence[:6] == (  # type: ignore[union-attr]
        "balance_intro", "num_un", "word_dollar", "word_with", "num_50", "word_cents",
    )


# -- number -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [
        ("5125550100", "+15125550100"),
        ("15125550100", "+15125550100"),
        ("011525512345678", "+525512345678"),
        ("01144201234567", None),  # too short for the UK
        ("5125550", None),
        ("0005550100", None),
        ("25125550100", None),
        ("8005550100", None),  # toll-free: cannot be rated
        ("", None),
        ("\u0665\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0660\u0660", None),  # not ASCII
    ],
)
def test_dialled_forms(dialled: str, e164: str | None) -> None:
    assert dialled_e164(dialled) == e164


def test_number_with_pound_hands_over_and_the_menu_time_stops() -> None:
    menu = placed()
    assert menu.state is CallerMenuState.SCREENING
    assert menu.handed_over_at == 20.0 and menu.started_at == 0.0
    assert menu.menu_seconds == 20.0
    assert menu.number == "+15125550100"
    assert menu.digit("1", 20.5) == []  # late


def test_inter_digit_timeout_ends_number_entry() -> None:
    menu = at_number()
    keys(menu, "15125550100", 15.0)
    last = 15.0 + 0.3 * 10
    assert menu.get_timer() == pytest.approx(last + 5.0)
    assert menu.timer(last + 4.9) == []
    [call] = menu.timer(last + 5.0)
    assert call == PlaceCall("100001", "+15125550100", "15125550100", "en")
    assert menu.menu_seconds == pytest.approx(last + 5.0)


def test_international_number() -> None:
    menu = at_number()
    keys(menu, "011525512345678", 15.0)
    [call] = menu.digit("#", 25.0)
    assert isinstance(call, PlaceCall) and call.number == "+525512345678"


def test_invalid_number_three_tries_then_goodbye() -> None:
    menu = at_number("es")
    t = 15.0
    for _ in range(2):
        keys(menu, "5125550", t)
        [again] = menu.digit("#", t + 3)
        assert again == Play(("number_invalid", "number_prompt"), "number", "es")
        menu.prompt_finished(t + 6)
        t += 10
    keys(menu, "0005550100", t)
    [end] = menu.digit("#", t + 4)
    assert end == EndCall("number_invalid", ("number_invalid", "goodbye"), "es")
    assert menu.handed_over_at is None and menu.menu_seconds == pytest.approx(t + 4)


def test_overlong_number_entry_ends_at_the_longest_form() -> None:
    menu = at_number()
    assert keys(menu, "9" * 17, 15.0) == []
    [again] = menu.digit("9", 22.0)  # the 18th digit
    assert isinstance(again, Play) and again.sequence[0] == "number_invalid"


def test_silence_at_the_number_prompt() -> None:
    menu = at_number()
    assert menu.timer(14.0 + 8.0) == [Play(("no_entry", "number_prompt"), "number", "en")]


# -- screening and the called party -----------------------------------------------------------


def test_success_please_hold_then_ringback_then_connected() -> None:
    menu = placed()
    assert menu.call_placed(21.0) == [Play(("please_hold",), "hold", "en")]
    assert menu.digit("5", 21.5) == []  # keys do not barge in on the hold message
    assert menu.prompt_finished(23.5) == [PlayRingback()]
    assert menu.state is CallerMenuState.RINGBACK
    assert menu.get_timer() == 20.0 + 330.0
    assert menu.timer(100.0) == []  # the menu limit is behind us
    assert menu.call_outcome(CalledOutcome.ACCEPTED, 40.0) == [StopPlayback(), Connected()]
    assert menu.outcome == Connected() and menu.menu_seconds == 20.0
    assert menu.hangup(50.0) == []


def test_acceptance_during_the_hold_message() -> None:
    menu = placed()
    menu.call_placed(21.0)
    assert menu.call_outcome(CalledOutcome.ACCEPTED, 22.0) == [StopPlayback(), Connected()]


def test_hold_message_whose_end_is_never_reported() -> None:
    menu = placed()
    menu.call_placed(21.0)
    assert menu.timer(21.0 + 60.0) == [PlayRingback()]


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        (CalledOutcome.DECLINED, "called_declined"),
        (CalledOutcome.NO_ANSWER, "called_no_answer"),
        (CalledOutcome.BUSY, "called_busy"),
        (CalledOutcome.BLOCKED, "called_blocked"),
        (CalledOutcome.FAILED, "call_failed"),
    ],
)
def test_called_party_outcomes_are_spoken(outcome: CalledOutcome, said: str) -> None:
    menu = placed("es")
    menu.call_placed(21.0)
    menu.prompt_finished(23.0)
    assert menu.call_outcome(outcome, 40.0) == [
        StopPlayback(), EndCall(str(outcome), (said, "goodbye"), "es")
    ]


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (Refusal.BLOCKED_NUMBER, "refused_blocked"),
        (Refusal.NOT_ON_ALLOWED_LIST, "refused_not_allowed"),
        (Refusal.NOBODY_CAN_PAY, "refused_no_payer"),
        (Refusal.FACILITY_BUSY, "refused_busy"),
        (Refusal.INVALID_NUMBER, "number_invalid"),
        (Refusal.FAILED, "call_failed"),
        (Refusal.OUTSIDE_CALLING_HOURS, "refused_hours"),
    ],
)
def test_refusals_are_spoken(reason: Refusal, said: str) -> None:
    menu = placed()
    [end] = menu.call_refused(reason, 21.0)
    assert end == EndCall(str(reason), (said, "goodbye"), "en")
    assert menu.menu_seconds == 20.0


def test_outside_calling_hours_says_the_hours() -> None:
    menu = placed()
    [end] = menu.call_refused(Refusal.OUTSIDE_CALLING_HOURS, 21.0,
                              hours=[(time(6, 0), time(23, 30))])
    assert end == EndCall("outside_calling_hours", (
        "refused_hours", "hours_intro", "word_from", "num_6", "word_am", "word_to",
        "num_11", "num_30", "word_pm", "goodbye",
    ), "en")


def test_outside_calling_hours_in_spanish_with_two_windows() -> None:
    menu = placed("es")
    [end] = menu.call_refused(Refusal.OUTSIDE_CALLING_HOURS, 21.0,
                              hours=[(time(7, 5), time(13, 0)), (time(18, 0), time(22, 0))])
    assert isinstance(end, EndCall)
    assert end.farewell == (
        "refused_hours", "hours_intro",
        "word_from", "word_las", "num_7", "word_and", "num_5", "word_morning",
        "word_to", "word_la", "num_una", "word_afternoon",
        "word_and",
        "word_from", "word_las", "num_6", "word_afternoon",
        "word_to", "word_las", "num_10", "word_night",
        "goodbye",
    )


def test_controller_that_never_answers_the_placement() -> None:
    menu = placed()
    assert menu.get_timer() == 35.0
    assert menu.timer(35.0) == [EndCall("no_answer_from_controller", ("call_failed", "goodbye"),
                                        "en")]


def test_ringing_that_the_controller_never_ends() -> None:
    menu = placed()
    menu.call_placed(21.0)
    menu.prompt_finished(23.0)
    assert menu.timer(350.0) == [StopPlayback(), EndCall("ring_guard", ("call_failed", "goodbye"),
                                                         "en")]


# -- the whole-menu limit ------------------------------------------------------------------------


def test_menu_limit_ends_a_slow_caller() -> None:
    menu = CallerMenu(menu_limit=30.0, no_input_timeout=20.0)
    menu.start(0.0)
    menu.digit("1", 1.0)
    menu.prompt_finished(4.0)
    keys(menu, "100001#", 5.0)
    menu.pin_checked(PinValid("en"), 8.0)
    menu.prompt_finished(12.0)
    menu.digit("5", 26.0)
    assert menu.get_timer() == 30.0  # the limit comes before the inter-digit timeout
    assert menu.timer(30.0) == [EndCall("menu_time_limit", ("menu_time_limit", "goodbye"), "en")]
    assert menu.menu_seconds == 30.0 and menu.handed_over_at is None


def test_menu_limit_stops_a_prompt_that_is_playing() -> None:
    menu = CallerMenu(menu_limit=10.0, prompt_guard=100.0)
    menu.start(0.0)
    assert menu.timer(10.0) == [
        StopPlayback(), EndCall("menu_time_limit", ("menu_time_limit", "goodbye"), "en")
    ]


def test_menu_limit_applies_while_the_pin_is_checked() -> None:
    menu = at_pin(menu_limit=10.0)
    keys(menu, "100001#", 6.0)
    [end] = menu.timer(10.0)
    assert isinstance(end, EndCall) and end.reason == "menu_time_limit"
    assert menu.pin_checked(PinValid("en"), 11.0) == []


# -- hang-up --------------------------------------------------------------------------------------


def _idle() -> CallerMenu:
    return CallerMenu()


def _language() -> CallerMenu:
    menu = CallerMenu()
    menu.start(0.0)
    return menu


def _checking() -> CallerMenu:
    menu = at_pin()
    keys(menu, "100001#", 6.0)
    return menu


def _ringing() -> CallerMenu:
    menu = placed()
    menu.call_placed(21.0)
    menu.prompt_finished(23.0)
    return menu


def _holding() -> CallerMenu:
    menu = placed()
    menu.call_placed(21.0)
    return menu


@pytest.mark.parametrize(
    ("make", "call_placed"),
    [
        (_idle, False),
        (_language, False),
        (at_pin, False),
        (_checking, False),
        (at_number, False),
        (placed, True),
        (_holding, True),
        (_ringing, True),
    ],
)
def test_hang_up_anywhere_ends_the_menu(make: object, call_placed: bool) -> None:
    menu = make()  # type: ignore[operator]
    assert menu.hangup(30.0) == [Abandoned(call_placed=call_placed)]
    assert menu.state is CallerMenuState.DONE and menu.get_timer() is None
    assert menu.hangup(31.0) == [] and menu.digit("1", 31.0) == [] and menu.timer(400.0) == []
    assert menu.ended_at == 30.0


def test_nothing_happens_after_the_end() -> None:
    menu = placed()
    menu.call_refused(Refusal.BLOCKED_NUMBER, 21.0)
    assert menu.call_placed(22.0) == [] and menu.call_refused(Refusal.FAILED, 22.0) == []
    assert menu.prompt_finished(23.0) == [] and menu.station_locked(23.0) == []


# -- a whole call in Spanish, and every prompt it can say has audio --------------------------------


def test_a_whole_call_in_spanish() -> None:
    menu = CallerMenu()
    played: list[Play] = []

    def run(actions: Sequence[object]) -> None:
        played.extend(a for a in actions if isinstance(a, Play))

    run(menu.start(0.0))
    run(menu.digit("2", 2.0))
    run(menu.prompt_finished(5.0))
    run(keys(menu, "100002#", 6.0))
    run(menu.pin_checked(PinValid("es", debit_balance=Decimal("0.21")), 9.0))
    run(menu.prompt_finished(12.0))
    run(keys(menu, "13105550100#", 13.0))
    run(menu.call_placed(18.0))
    run(menu.prompt_finished(20.0))
    assert menu.call_outcome(CalledOutcome.ACCEPTED, 30.0)[-1] == Connected()
    assert [p.lang for p in played] == ["en", "es", "es", "es"]
    assert [p.purpose for p in played] == ["language", "pin", "number", "hold"]
    assert played[2].sequence[:3] == ("balance_intro", "num_veintiun", "word_cents")


@pytest.mark.parametrize("lang", phrases.LANGUAGES)
def test_every_caller_menu_prompt_has_audio(lang: str) -> None:
    cat = PromptCatalogue(lang)
    names = {
        "offer_en", "offer_es", "pin_prompt", "pin_prompt_fixed", "pin_invalid", "no_entry",
        "not_allowed", "station_locked", "balance_intro", "number_prompt", "number_invalid",
        "please_hold", "refused_blocked", "refused_not_allowed", "refused_hours",
        "refused_no_payer", "refused_busy", "call_failed", "called_declined",
        "called_no_answer", "called_busy", "called_blocked", "menu_time_limit", "goodbye",
    }
    for minute in range(0, 24 * 60, 7):
        names |= set(phrases.say_time(lang, time(minute // 60, minute % 60)))
    names |= set(phrases.calling_hours(lang, [(time(0, 0), time(23, 59, 59))]))
    for name in sorted(names):
        assert len(cat.audio(name)) > 800, name


def test_the_language_offer_is_spoken_in_each_language_everywhere() -> None:
    en, es = PromptCatalogue("en"), PromptCatalogue("es")
    assert (en.audio("offer_es") == es.audio("offer_es")).all()
    assert (en.audio("offer_en") == es.audio("offer_en")).all()
    assert phrases.TEXTS["en"]["offer_es"] == "Para español, oprima 2."


def test_say_time() -> None:
    assert phrases.say_time("en", time(0, 0)) == ("num_12", "word_am")
    assert phrases.say_time("en", time(12, 0)) == ("num_12", "word_pm")
    assert phrases.say_time("en", time(9, 5)) == ("num_9", "word_oh", "num_5", "word_am")
    assert phrases.say_time("es", time(0, 0)) == ("word_las", "num_12", "word_night")
    assert phrases.say_time("es", time(12, 45)) == (
        "word_las", "num_12", "word_and", "num_40", "word_and", "num_5", "word_afternoon",
    )
    assert phrases.say_time("es", time(21, 0)) == ("word_las", "num_9", "word_night")
    with pytest.raises(ValueError, match="at least one window"):
        phrases.calling_hours("en", [])


# -- any caller, any controller ------------------------------------------------------------------

_STEP = st.one_of(
    st.tuples(st.just("digit"), st.sampled_from("0123456789*#AD"), st.floats(0.05, 3.0)),
    st.tuples(st.just("keys"), st.sampled_from(["100001#", "5125550100#", "011525512345678",
                                                "1#", "2"]), st.floats(0.05, 3.0)),
    st.tuples(st.just("finish"), st.just(""), st.floats(0.0, 6.0)),
    st.tuples(st.just("wait"), st.just(""), st.floats(0.0, 12.0)),
    st.tuples(st.just("answer"), st.sampled_from(["valid", "valid", "debit", "invalid",
                                                  "suspended", "locked"]), st.floats(0.0, 2.0)),
    st.tuples(st.just("screen"), st.sampled_from([*Refusal, *["placed"] * 7]),
              st.floats(0.0, 2.0)),
    st.tuples(st.just("outcome"), st.sampled_from(list(CalledOutcome)), st.floats(0.0, 30.0)),
    # Mostly not: a caller who hangs up early ends every other path.
    st.tuples(st.just("hangup"), st.sampled_from(["yes", *["no"] * 9]), st.floats(0.0, 1.0)),
)

_ANSWERS: dict[str, PinResult] = {
    "valid": PinValid("es"),
    "debit": PinValid("en", debit_balance=Decimal("12.34")),
    "invalid": PinInvalid(),
    "suspended": PinSuspended(),
    "locked": PinLocked(),
}


_HAPPY_PATH = [
    ("digit", "2", 1.0), ("keys", "100001#", 2.0), ("answer", "valid", 0.5),
    ("keys", "5125550100#", 3.0), ("screen", "placed", 0.5), ("finish", "", 2.0),
    ("outcome", "accepted", 10.0),
]


@st.composite
def _calls(draw: st.DrawFn) -> list[tuple[str, str, float]]:
    """A caller on the way to a connected call, with random keys, silences and answers
    (and sometimes a hang-up) between the steps; or entirely random inputs."""
    if draw(st.booleans()):
        return draw(st.lists(_STEP, max_size=60))
    steps: list[tuple[str, str, float]] = []
    for step in _HAPPY_PATH:
        steps += draw(st.lists(_STEP, max_size=2))
        steps.append(step)
    return steps


@settings(max_examples=400, deadline=None)
@given(steps=_calls(), one_language=st.booleans())
def test_any_sequence_of_inputs_keeps_the_rules(
    steps: list[tuple[str, str, float]], one_language: bool
) -> None:
    menu = CallerMenu(["en"] if one_language else ["en", "es"], menu_limit=90.0)
    now = 0.0
    actions = list(menu.start(now))
    for kind, arg, delay in steps:
        # Honour the timer, as the controller's loop does, before the next input.
        timer = menu.get_timer()
        while timer is not None and timer <= now + delay:
            assert timer >= now - 1e-9, "a timer in the past"
            now = max(now, timer)
            actions += menu.timer(now)
            timer = menu.get_timer()
        now += delay
        if kind == "digit":
            actions += menu.digit(arg, now)
        elif kind == "keys":
            for d in arg:
                actions += menu.digit(d, now)
        elif kind == "finish":
            actions += menu.prompt_finished(now)
        elif kind == "answer":
            actions += menu.pin_checked(_ANSWERS[arg], now)
        elif kind == "screen":
            if arg == "placed":
                actions += menu.call_placed(now)
            else:
                actions += menu.call_refused(Refusal(arg), now)
        elif kind == "outcome":
            actions += menu.call_outcome(CalledOutcome(arg), now)
        elif kind == "hangup" and arg == "yes":
            actions += menu.hangup(now)
        else:
            actions += menu.timer(now)
    endings = [a for a in actions if isinstance(a, Connected | EndCall | Abandoned)]
    event(type(endings[0]).__name__ if endings else "live")
    if isinstance(menu.outcome, EndCall):
        event(menu.outcome.reason)
    assert len(endings) <= 1
    if endings:
        assert actions[-1] == endings[0] and menu.outcome == endings[0]
        assert menu.state is CallerMenuState.DONE and menu.get_timer() is None
    else:
        assert menu.get_timer() is not None  # a live menu always has something to wait for
    # The menu never outlasts its limit before handing over.
    if menu.menu_seconds is not None:
        assert menu.menu_seconds <= 90.0 + 1e-9
    # It asks for a PIN check at most once per try, and places at most one call.
    assert len([a for a in actions if isinstance(a, CheckPin)]) <= 3
    calls = [a for a in actions if isinstance(a, PlaceCall)]
    assert len(calls) <= 1
    if calls:
        assert dialled_e164(calls[0].dialled) == calls[0].number
        assert menu.handed_over_at is not None
    # Ringback only follows a placed call, and a stop is only sent for something playing.
    playing = False
    for a in actions:
        if isinstance(a, Play | PlayRingback):
            playing = True
        elif isinstance(a, StopPlayback):
            assert playing, actions
            playing = False
        if isinstance(a, PlayRingback):
            assert calls
