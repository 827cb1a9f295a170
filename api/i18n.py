"""The rate calculator page's words, in English and Spanish."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

LANGUAGES: Final = ("en", "es")
LANGUAGE_NAMES: Final = {"en": "English", "es": "Español"}

STRINGS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "title": "What will a call cost?",
        "intro": "Pick the facility, enter the phone number that will receive the call "
                 "and how long the call may last. You will see the cost for each way to pay.",
        "facility": "Facility",
        "facility_hint": "Where the person you talk to is held.",
        "choose_facility": "Choose a facility",
        "number": "Phone number receiving the call",
        "number_hint": "For example (512) 555-0100 or +44 20 7946 0958.",
        "minutes": "Call length in minutes",
        "minutes_hint": "From 1 to {max} minutes at this facility.",
        "minutes_hint_any": "From 1 minute to the facility's maximum.",
        "submit": "Show the cost",
        "language": "Language",
        "result": "Cost of a {minutes}-minute call to {number}",
        "jurisdiction": "Type of call",
        "jurisdiction.local": "Local",
        "jurisdiction.intrastate": "Within the state",
        "jurisdiction.interstate": "Between states",
        "jurisdiction.international": "International",
        "cap": "Legal maximum rate",
        "cap_none": "No per-minute maximum applies",
        "per_minute": "{amount} per minute",
        "rate": "Rate",
        "rate_capped": "Rate within the legal maximum",
        "termination": "International termination cost, allowed on top of the maximum",
        "cap_note_international": "The maximum covers the calling service's rate. An "
                                  "international call may add the cost of reaching the "
                                  "destination country on top; each quote shows both parts.",
        "billed_minutes": "Minutes billed",
        "charge": "Call charge",
        "fees": "Fees",
        "taxes": "Taxes",
        "none": "None",
        "total": "Total",
        "no_products": "No way to pay is available for this call.",
        "error_title": "Please check this",
        "error.facility": "Choose one of the listed facilities.",
        "error.number": "Enter a phone number we can call, for example (512) 555-0100.",
        "error.minutes": "Enter a whole number of minutes from 1 to {max}.",
        "error.unavailable": "The calculator is not available right now. Please try again later.",
        "product.advance_connect": "AdvanceConnect (prepaid account of the number called)",
        "product.direct_bill": "Direct Bill (monthly bill to the number called)",
        "product.debit": "Debit (paid by the incarcerated person)",
        "product.single_call": "Single Call (one-time charge for this call)",
        "product.subscription": "Calling subscription (minutes already paid for in a package)",
        "footer": "Prices are quotes for a call made now. Money is shown in US dollars.",
        "loading": "Calculating…",
    },
    "es": {
        "title": "¿Cuánto costará una llamada?",
        "intro": "Elija el centro, escriba el número de teléfono que recibirá la llamada "
                 "y cuánto puede durar. Verá el costo para cada forma de pago.",
        "facility": "Centro penitenciario",
        "facility_hint": "Donde está la persona con quien habla.",
        "choose_facility": "Elija un centro",
        "number": "Número de teléfono que recibe la llamada",
        "number_hint": "Por ejemplo (512) 555-0100 o +44 20 7946 0958.",
        "minutes": "Duración de la llamada en minutos",
        "minutes_hint": "De 1 a {max} minutos en este centro.",
        "minutes_hint_any": "De 1 minuto al máximo del centro.",
        "submit": "Ver el costo",
        "language": "Idioma",
        "result": "Costo de una llamada de {minutes} minutos al {number}",
        "jurisdiction": "Tipo de llamada",
        "jurisdiction.local": "Local",
        "jurisdiction.intrastate": "Dentro del estado",
        "jurisdiction.interstate": "Entre estados",
        "jurisdiction.international": "Internacional",
        "cap": "Tarifa máxima legal",
        "cap_none": "No hay tarifa máxima por minuto",
        "per_minute": "{amount} por minuto",
        "rate": "Tarifa",
        "rate_capped": "Tarifa dentro del máximo legal",
        "termination": "Costo de terminación internacional, permitido además del máximo",
        "cap_note_international": "El máximo cubre la tarifa del servicio de llamadas. Una "
                                  "llamada internacional puede sumar el costo de llegar al "
                                  "país de destino; cada cotización muestra ambas partes.",
        "billed_minutes": "Minutos cobrados",
        "charge": "Cargo de la llamada",
        "fees": "Cargos adicionales",
        "taxes": "Impuestos",
        "none": "Ninguno",
        "total": "Total",
        "no_products": "No hay forma de pago disponible para esta llamada.",
        "error_title": "Revise esto, por favor",
        "error.facility": "Elija uno de los centros de la lista.",
        "error.number": "Escriba un número al que podamos llamar, por ejemplo (512) 555-0100.",
        "error.minutes": "Escriba un número entero de minutos de 1 a {max}.",
        "error.unavailable": "La calculadora no está disponible ahora. Inténtelo más tarde.",
        "product.advance_connect": "AdvanceConnect (cuenta prepagada del número llamado)",
        "product.direct_bill": "Facturación directa (factura mensual al número llamado)",
        "product.debit": "Débito (pagado por la persona encarcelada)",
        "product.single_call": "Llamada única (cargo único por esta llamada)",
        "product.subscription": "Suscripción de llamadas (minutos ya pagados en un paquete)",
        "footer": "Los precios son para una llamada hecha ahora, en dólares estadounidenses.",
        "loading": "Calculando…",
    },
}


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; else the first supported language the browser asks for."""
    if query_lang in LANGUAGES:
        return query_lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return "en"


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._strings = STRINGS[lang]

    def __call__(self, key: str, **values: object) -> str:
        text = self._strings.get(key)
        if text is None:
            text = STRINGS["en"].get(key, key)
        return text.format(**values) if values else text

    def optional(self, key: str, fallback: str) -> str:
        text = self._strings.get(key)
        return fallback if text is None else text
