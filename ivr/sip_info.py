"""DTMF carried in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``."""

from __future__ import annotations

from dataclasses import dataclass

_VALID = set("0123456789*#ABCD")
_EVENT_CODES = {str(i): d for i, d in enumerate("0123456789*#ABCD")}


@dataclass(frozen=True, slots=True)
class InfoDigit:
    digit: str
    duration_ms: int  # 0 when the body does not say


def _digit(value: str) -> str:
    v = value.strip().upper()
    if v in _VALID:
        return v
    if v in _EVENT_CODES:  # some phones send the RFC 4733 event code ("10" for '*')
        return _EVENT_CODES[v]
    raise ValueError(f"{value.strip()!r} is not a DTMF digit")


def parse_dtmf_info(content_type: str, body: bytes | str) -> InfoDigit:
    """Parse the body of a SIP INFO carrying one key press.

    ``application/dtmf-relay``::

        Signal=5
        Duration=160

    ``application/dtmf``: the digit alone (``5``). Raises ``ValueError`` with a
    precise message for any other content type or a malformed body; the SIP
    side answers such an INFO with 400 (or 415 for the content type).
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("DTMF INFO body is not UTF-8 text") from None
    else:
        text = body
    if ctype == "application/dtmf":
        if not text.strip():
            raise ValueError("application/dtmf body is empty")
        return InfoDigit(_digit(text), 0)
    if ctype != "application/dtmf-relay":
        raise ValueError(f"content type {ctype!r} does not carry DTMF")
    fields: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"application/dtmf-relay line {line.strip()!r} has no '='")
        key, value = line.split("=", 1)
        fields[key.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise ValueError("application/dtmf-relay body has no Signal line")
    duration = 0
    if "duration" in fields:
        try:
            duration = int(fields["duration"])
        except ValueError:
            raise ValueError(f"Duration {fields['duration']!r} is not an integer") from None
        if not 0 <= duration <= 60_000:
            raise ValueError(f"Duration {duration} ms out of range 0..60000")
    return InfoDigit(_digit(fields["signal"]), duration)
