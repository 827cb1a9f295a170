"""Errors and refusals of the accounts layer, each carrying the wire answer it implies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RefusalReason(Enum):
    """Why a call may not proceed, with the SIP status and Q.850 cause it maps to.

    The mapping follows the outcome table of the facility-side SIP contract:
    screening failures are 403 (cause 21, call rejected), numbers that cannot
    be reached are 404 (cause 1, unallocated number), no payer is 402 (cause
    31, normal unspecified: nothing is wrong with the network) and a store
    that cannot answer is 503 (cause 41, temporary failure).
    """

    FACILITY_NOT_ALLOWED = ("facility_not_allowed", 403, 21, "facility not allowed")
    UNKNOWN_PIN = ("unknown_pin", 403, 21, "unknown PIN")
    PERSON_RESTRICTED = ("person_restricted", 403, 21, "calling privileges restricted")
    PERSON_RELEASED = ("person_released", 403, 21, "person released")
    BLOCKED = ("blocked", 403, 21, "number blocked by the facility")
    SELF_BLOCKED = ("self_blocked", 403, 21, "called party blocked calls from this facility")
    NOT_ALLOWED = ("not_allowed", 403, 21, "number not on the allowed list")
    OUTSIDE_HOURS = ("outside_hours", 403, 21, "outside calling hours")
    INVALID_NUMBER = ("invalid_number", 404, 1, "number invalid or not routable")
    NO_PAYER = ("no_payer", 402, 31, "nobody can pay for this call")
    STORE_UNAVAILABLE = ("store_unavailable", 503, 41, "account store unavailable")

    def __init__(self, code: str, sip_status: int, q850_cause: int, text: str) -> None:
        self.code = code
        self.sip_status = sip_status
        self.q850_cause = q850_cause
        self.text = text


@dataclass(frozen=True)
class Refusal:
    """A call that may not proceed, and why; the controller answers with ``reason``."""

    reason: RefusalReason
    detail: str = ""

    @property
    def sip_status(self) -> int:
        return self.reason.sip_status

    @property
    def q850_cause(self) -> int:
        return self.reason.q850_cause

    def reason_header(self) -> str:
        """The value of the SIP ``Reason`` header for this refusal."""
        return f'Q.850;cause={self.reason.q850_cause};text="{self.reason.text}"'


class AccountsError(Exception):
    """Base of every accounts error; ``http_status`` is the answer the admin API gives."""

    http_status = 400


class InvalidRequest(AccountsError):
    """The request was malformed: bad amount, bad number, bad field. Nothing changed."""


class UnknownAccount(AccountsError):
    http_status = 404


class NotFound(AccountsError):
    """A reservation, refund, receivable, person or record that does not exist."""

    http_status = 404


class DuplicateRequest(AccountsError):
    """The idempotency key (or record id) was already used; nothing changed."""

    http_status = 409


class InsufficientFunds(AccountsError):
    """The account cannot cover the amount above its floor; nothing changed."""

    http_status = 409


class InvalidState(AccountsError):
    """The operation does not apply to the current state (closed account, settled call)."""

    http_status = 409


class StoreUnavailable(AccountsError):
    """The store could not be reached or answered with an error."""

    http_status = 503
