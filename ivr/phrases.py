"""What the IVR says, per language: prompt wording, and numbers and money as prompt sequences.

A prompt sequence is a tuple of prompt names; ``PromptCatalogue`` turns it into
audio. Everything here is pure, so menus and their tests work without audio.
Adding a language means adding its wording to ``TEXTS`` and a ``say_number``
for it, then running ``ics prompts build``.
"""

from __future__ import annotations

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
        "time_limit": "This call has reached its time limit. Goodbye.",
        "word_hundred": "hundred",
        "word_thousand": "thousand",
        "word_and": "and",
        "word_point": "point",
        "word_dollar": "dollar",
        "word_dollars": "dollars",
        "word_cent": "cent",
        "word_cents": "cents",
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
        "num_un": "un",
        "num_veintiun": "veintiún",
        **{f"num_{i}": w for i, w in enumerate(_ES_ONES)},
        **{f"num_{n}": w for n, w in _ES_TENS.items()},
        **{f"num_{n}": w for n, w in _ES_HUNDREDS.items()},
    },
}

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
