"""The RFC 4475 torture messages, written in the RFC's own notation (its section 2).

Each ``<name>.txt`` holds one message as the RFC prints it, lines ending in LF:
``<allOneLine>`` joins its lines into one, ``<hex>..</hex>`` stands for the octets
its hex digits spell, ``<repeat count=N>..</repeat>`` for N copies of its text. On
the wire every line ends in CRLF. `wire` turns a file into the octets the RFC means.

One stand-in: the RFC prints mpart01's binary part (a DER object) in a text form
that cannot be turned back into its octets, so that part here is other binary
octets with the property the RFC tests (NULs, every byte value), and its
Content-Length counts them.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent

_ONE_LINE = re.compile(r"<allOneLine>\n(.*?)\n</allOneLine>", re.S)
_REPEAT = re.compile(r"<repeat count=(\d+)>(.*?)</repeat>", re.S)
_HEX = re.compile(r"<hex>([0-9A-Fa-f]*)</hex>")


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.txt"))


def wire(name: str) -> bytes:
    """The message ``name`` as the octets that travel in one datagram."""
    text = (HERE / f"{name}.txt").read_text(encoding="utf-8")
    text = _ONE_LINE.sub(lambda m: m.group(1).replace("\n", ""), text)
    text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)
    text = text.replace("\n", "\r\n")
    out = bytearray()
    pos = 0
    for m in _HEX.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        out += bytes.fromhex(m.group(1))
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)
