"""What the IVR says, per language: prompt wording, and numbers and money as prompt sequences.

A prompt sequence is a tuple of prompt names; ``PromptCatalogue`` turns it into
audio. Everything here is pure, so menus and their tests work without audio.
Adding a language means adding its wording to ``TEXTS`` and a ``say_number``
for it, then running ``ics prompts build``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from decimal import Decimal

from rating.money import parse_money

LANGUAGES = ("en", "es")
Sequence = tuple[str, ...]

_EN_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen"
]
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty",
            70: "seventy", 80: "eighty", 90: "ninety"}

_ES_ONES = [
    "cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve",
    "diez", "once", "doce", "trece", "catorce", "quince", "dieciséis", "diecisiete",
    "dieciocho", "diecinueve", "veinte", "veintiuno", "veintidós", "veintitrés",
    "veinticuatro", "veinticinco", "veintiséis", "veintisiete", "veintiocho", "veintinueve"
]
_ES_TENS = {30: "treinta", 40: "cuarenta", 50: "cincuenta", 60: "sesenta", 70: "setenta",
            80: "ochenta", 90: "noventa"}
_ES_HUNDREDS = {100: "ciento", 200: "doscientos", 300: "trescientos", 400: "cuatrocientos",
                500: "quinientos", 600: "seiscientos", 700: "setecientos", 800: "ochocientos",
                900: "novecientos"}

#: Sentences and words, per language. Keys are prompt (file) names.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "intro_prepaid": "This is a prepaid call from an incarcerated person at",
        "intro_single": "This is a call from an incarcerated person at",
        "facility_unknown": "a correctional facility.",
        "recording_notice": "This call is subject to recording and monitoring.",
        "opt_accept": "To accept, press 1.",
        "opt_decline": "To decline, press 2.",
        "opt_single_call": "To accept and pay for this call with a one-time charge of",
        "press_3": "press 3.",
        "opt_cost": "To hear the cost of this call, press 5.",
        "opt_block": "To block future calls from this facility, press 9.",
        "opt_repeat": "To repeat these options, press star.",
        "invalid_choice": "That was not a valid choice.",
        "no_input": "We did not receive your choice.",
        "block_confirm": "You chose to block all future calls from this facility. "
        "To confirm, press 9. To return to the menu, press any other key.",
        "blocked": "Calls from this facility are now blocked. Goodbye.",
        "declined": "You declined the call. Goodbye.",
        "goodbye": "Goodbye.",
        "connecting": "Thank you. Your call is being connected.",
        "rate_intro": "This call costs",
        "per_minute": "per minute.",
        "max_intro": "The most this call can cost is",
        "for_up_to": "for up to",
        "word_minute": "minute.",
        "word_minutes": "minutes.",
        "one_minute_warning": "You have one minute remaining.",
        "three_way_warning": "Three-way calling is not allowed on this call.",
        "time_limit": "This call has reached its time limit. Goodbye.",
        "word_hundred": "hundred",
        "word_thousand": "thousand",
        "word_and": "and",
        "word_point": "point",
        "word_dollar": "dollar",
        "word_dollars": "dollars",
        "word_cent": "cent",
        "word_cents": "cents",
        # The caller's menu (ivr/caller_menu.py).
        "offer_en": "For English, press 1.",
        "offer_es": "Para español, oprima 2.",
        "pin_prompt": "Please enter your PIN, followed by the pound key.",
        "pin_prompt_fixed": "Please enter your PIN.",
        "pin_invalid": "That PIN is not valid.",
        "no_entry": "We did not receive your entry.",
        "not_allowed": "You are not allowed to place calls at this time.",
        "station_locked": "PIN entry on this phone is locked. Please try again later.",
        "balance_intro": "You have",
        "number_prompt": "Enter the number you are calling, followed by the pound key.",
        "number_invalid": "The number you entered is not valid.",
        "please_hold": "Please hold while your call is connected.",
        "refused_blocked": "Calls to this number are blocked.",
        "refused_not_allowed": "This number is not on your list of allowed numbers.",
        "refused_hours": "It is outside calling hours.",
        "hours_intro": "Calls may be placed",
        "word_from": "from",
        "word_to": "to",
        "word_oh": "oh",
        "word_am": "a.m.",
        "word_pm": "p.m.",
        "refused_no_payer": "There is no account that can pay for this call.",
        "refused_busy": "All lines are busy. Please try again later.",
        "call_failed": "Your call could not be completed.",
        "called_declined": "The person you called declined the call.",
        "called_no_answer": "There was no answer.",
        "called_busy": "The line is busy.",
        "called_blocked": "The number you called does not accept calls from this facility.",
        "menu_time_limit": "You did not complete your call in time.",
        **{f"num_{i}": w for i, w in enumerate(_EN_ONES)},
        **{f"num_{n}": w for n, w in _EN_TENS.items()},
    },
    "es": {
        "intro_prepaid": "Esta es una llamada prepagada de una persona encarcelada en",
        "intro_single": "Esta es una llamada de una persona encarcelada en",
        "facility_unknown": "un centro correccional.",
        "recording_notice": "Esta llamada está sujeta a grabación y monitoreo.",
        "opt_accept": "Para aceptar, oprima 1.",
        "opt_decline": "Para rechazar, oprima 2.",
        "opt_single_call": "Para aceptar y pagar esta llamada con un cargo único de",
        "press_3": "oprima 3.",
        "opt_cost": "Para escuchar el costo de esta llamada, oprima 5.",
        "opt_block": "Para bloquear futuras llamadas de este centro, oprima 9.",
        "opt_repeat": "Para repetir estas opciones, oprima asterisco.",
        "invalid_choice": "Esa no es una opción válida.",
        "no_input": "No recibimos su elección.",
        "block_confirm": "Usted eligió bloquear todas las llamadas futuras de este centro. "
        "Para confirmar, oprima 9. Para volver al menú, oprima cualquier otra tecla.",
        "blocked": "Las llamadas de este centro están bloqueadas. Adiós.",
        "declined": "Usted rechazó la llamada. Adiós.",
        "goodbye": "Adiós.",
        "connecting": "Gracias. Su llamada está siendo conectada.",
        "rate_intro": "Esta llamada cuesta",
        "per_minute": "por minuto.",
        "max_intro": "Lo máximo que puede costar esta llamada es",
        "for_up_to": "por hasta",
        "word_minute": "minuto.",
        "word_minutes": "minutos.",
        "one_minute_warning": "Le queda un minuto.",
        "three_way_warning": "No se permiten llamadas de tres vías en esta llamada.",
        "time_limit": "Esta llamada llegó a su límite de tiempo. Adiós.",
        "word_hundred": "cien",
        "word_thousand": "mil",
        "word_and": "y",
        "word_with": "con",
        "word_point": "punto",
        "word_dollar": "dólar",
        "word_dollars": "dólares",
        "word_cent": "centavo",
        "word_cents": "centavos",
        # The caller's menu (ivr/caller_menu.py).
        "offer_en": "For English, press 1.",
        "offer_es": "Para español, oprima 2.",
        "pin_prompt": "Por favor, marque su número de identificación personal, "
        "seguido de la tecla numeral.",
        "pin_prompt_fixed": "Por favor, marque su número de identificación personal.",
        "pin_invalid": "Ese número de identificación no es válido.",
        "no_entry": "No recibimos su marcación.",
        "not_allowed": "Usted no puede hacer llamadas en este momento.",
        "station_locked": "La marcación de su número de identificación en este teléfono "
        "está bloqueada. Intente más tarde.",
        "balance_intro": "Usted tiene",
        "number_prompt": "Marque el número al que llama, seguido de la tecla numeral.",
        "number_invalid": "El número que marcó no es válido.",
        "please_hold": "Por favor, espere mientras conectamos su llamada.",
        "refused_blocked": "Las llamadas a este número están bloqueadas.",
        "refused_not_allowed": "Este número no está en su lista de números permitidos.",
        "refused_hours": "Está fuera del horario de llamadas.",
        "hours_intro": "Puede hacer llamadas",
        "word_from": "de",
        "word_to": "a",
        "word_la": "la",
        "word_las": "las",
        "num_una": "una",
        "word_morning": "de la mañana",
        "word_afternoon": "de la tarde",
        "word_night": "de la noche",
        "refused_no_payer": "No hay una cuenta que pueda pagar esta llamada.",
        "refused_busy": "Todas las líneas están ocupadas. Intente más tarde.",
        "call_failed": "Su llamada no pudo ser completada.",
        "called_declined": "La persona a quien llamó rechazó la llamada.",
        "called_no_answer": "No hubo respuesta.",
        "called_busy": "La línea está ocupada.",
        "called_blocked": "El número al que llamó no acepta llamadas de este centro.",
        "menu_time_limit": "No completó su llamada a tiempo.",
        "num_un": "un",
        "num_veintiun": "veintiún",
        **{f"num_{i}": w for i, w in enumerate(_ES_ONES)},
        **{f"num_{n}": w for n, w in _ES_TENS.items()},
        **{f"num_{n}": w for n, w in _ES_HUNDREDS.items()},
    },
}

#: Prompts that are spoken in one language whatever directory they sit in: the
#: language offer says each language's line in that language.
SPOKEN_IN: dict[str, str] = {"offer_en": "en", "offer_es": "es"}

#: The language offer's key per language (fixed, so a caller learns it once).
LANGUAGE_KEYS: dict[str, str] = {"en": "1", "es": "2"}

MAX_NUMBER = 999_999


def _check_lang(lang: str) -> None:
    if lang not in TEXTS:
        raise ValueError(f"no prompts for language {lang!r}; have {', '.join(TEXTS)}")


def _en(n: int) -> list[str]:
    if n < 20:
        return [f"num_{n}"]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [f"num_{tens * 10}"] + ([f"num_{ones}"] if ones else [])
    if n < 1000:
        h, rest = divmod(n, 100)
        return [f"num_{h}", "word_hundred"] + (_en(rest) if rest else [])
    th, rest = divmod(n, 1000)
    return _en(th) + ["word_thousand"] + (_en(rest) if rest else [])


def _es(n: int, apocope: bool) -> list[str]:
    # ``apocope``: the number stands before a noun ("un dólar", "veintiún
    # centavos", "treinta y un minutos"), where "uno" is shortened.
    if n == 1 and apocope:
        return ["num_un"]
    if n == 21 and apocope:
        return ["num_veintiun"]
    if n < 30:
        return [f"num_{n}"]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [f"num_{tens * 10}"] + (["word_and", *_es(ones, apocope)] if ones else [])
    if n < 1000:
        h, rest = divmod(n, 100)
        if n == 100:
            return ["word_hundred"]
        return [f"num_{h * 100}"] + (_es(rest, apocope) if rest else [])
    th, rest = divmod(n, 1000)
    head = [] if th == 1 else _es(th, True)
    return head + ["word_thousand"] + (_es(rest, apocope) if rest else [])


def say_number(lang: str, n: int, *, before_noun: bool = False) -> Sequence:
    """A whole number 0..999,999 as a prompt sequence."""
    _check_lang(lang)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"cannot say {n!r}: whole numbers 0..{MAX_NUMBER} only")
    return tuple(_en(n) if lang == "en" else _es(n, before_noun))


def _say_decimal(lang: str, value: Decimal, before_noun: bool) -> list[str]:
    whole = int(value)
    out = list(say_number(lang, whole, before_noun=before_noun and value == whole))
    frac = value - whole
    if frac:
        out.append("word_point")
        for ch in str(frac.normalize())[2:]:
            out.append(f"num_{ch}")
    return out


def say_money(lang: str, amount: Decimal | str | int) -> Sequence:
    """A dollar amount (up to 4 decimal places) as a prompt sequence.

    Under a dollar it is said in cents, with decimals when the rate has them
    ("five point seven five cents"); otherwise dollars and cents.
    """
    _check_lang(lang)
    value = parse_money(amount, places=4, field="amount")
    if value < 0:
        raise ValueError(f"cannot say a negative amount {value}")
    dollars = int(value)
    cents = (value - dollars) * 100
    out: list[str] = []
    if dollars:
        out += say_number(lang, dollars, before_noun=True)
        out.append("word_dollar" if dollars == 1 else "word_dollars")
        if cents:
            out.append("word_and" if lang == "en" else "word_with")
    if cents or not dollars:
        out += _say_decimal(lang, cents, before_noun=True)
        out.append("word_cent" if cents == 1 else "word_cents")
    return tuple(out)


def say_minutes(lang: str, minutes: int) -> Sequence:
    return say_number(lang, minutes, before_noun=True) + (
        ("word_minute",) if minutes == 1 else ("word_minutes",)
    )


def facility_prompt(facility_id: str) -> str:
    return f"facility/{facility_id}"


def greeting(
    *, facility_id: str | None, privileged: bool, single_call_charge: Decimal | None, lang: str
) -> Sequence:
    """The introduction and option list of the acceptance prompt."""
    intro = "intro_single" if single_call_charge is not None else "intro_prepaid"
    seq: list[str] = [intro, facility_prompt(facility_id) if facility_id else "facility_unknown"]
    if not privileged:
        seq.append("recording_notice")
    seq += options(single_call_charge=single_call_charge, lang=lang)
    return tuple(seq)


def options(*, single_call_charge: Decimal | None, lang: str) -> Sequence:
    seq: list[str] = []
    if single_call_charge is None:
        seq.append("opt_accept")
    else:
        seq += ["opt_single_call", *say_money(lang, single_call_charge), "press_3"]
    seq += ["opt_decline", "opt_cost", "opt_block", "opt_repeat"]
    return tuple(seq)


def rate_announcement(
    lang: str, rate_per_minute: Decimal, max_minutes: int, max_cost: Decimal
) -> Sequence:
    """"This call costs six cents per minute. The most this call can cost is ninety
    cents for up to fifteen minutes.\""""
    return (
        "rate_intro",
        *say_money(lang, rate_per_minute),
        "per_minute",
        "max_intro",
        *say_money(lang, max_cost),
        "for_up_to",
        *say_minutes(lang, max_minutes),
    )


def say_time(lang: str, at: time) -> Sequence:
    """A time of day as said on the phone: "eleven thirty p.m.", "las once y treinta de la noche".

    Seconds are not said (a window ending 23:59:59 ends "eleven fifty nine p.m.").
    """
    _check_lang(lang)
    hour12 = at.hour % 12 or 12
    if lang == "en":
        out = list(say_number(lang, hour12))
        if at.minute:
            out += ["word_oh"] if at.minute < 10 else []
            out += say_number(lang, at.minute)
        out.append("word_am" if at.hour < 12 else "word_pm")
        return tuple(out)
    out = ["word_la", "num_una"] if hour12 == 1 else ["word_las", *say_number(lang, hour12)]
    if at.minute:
        out += ["word_and", *say_number(lang, at.minute)]
    if at.hour < 12 and at.hour != 0:
        out.append("word_morning")
    elif 12 <= at.hour < 20:
        out.append("word_afternoon")
    else:
        out.append("word_night")
    return tuple(out)


def calling_hours(lang: str, windows: Iterable[tuple[time, time]]) -> Sequence:
    """"Calls may be placed from six a.m. to eleven thirty p.m. (and from ... to ...)"."""
    out: list[str] = ["hours_intro"]
    for i, (start, end) in enumerate(windows):
        if i:
            out.append("word_and")
        out += ["word_from", *say_time(lang, start), "word_to", *say_time(lang, end)]
    if len(out) == 1:
        raise ValueError("calling_hours needs at least one window")
    return tuple(out)
