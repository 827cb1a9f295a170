"""Splits a SIP byte stream (TCP) into whole messages by Content-Length (RFC 3261 18.3)."""

from __future__ import annotations

import re

from .errors import ParseError
from .message import MAX_MESSAGE_SIZE

_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


class StreamFramer:
    """Reassembles messages from stream segments: partial ones wait, several per segment split.

    ``feed()`` returns the complete messages found so far. Framing errors (no or
    bad Content-Length, a message over the size limit) raise `ParseError`; the
    stream cannot be resynchronised after that, so the connection must close.
    """

    __slots__ = ("_buffer", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self.max_size = max_size

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 4.4.1) are skipped.
            skip = 0
            while buffer[skip : skip + 2] == b"\r\n":
                skip += 2
            if skip:
                del buffer[:skip]
            if not buffer:
                break
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > self.max_size:
                    raise ParseError(
                        f"headers exceed the {self.max_size}-byte limit", status=513
                    )
                break
            head = bytes(buffer[: end + 2])
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                raise ParseError("stream message has no Content-Length")
            length_text = match.group(1).strip()
            if not length_text.isdigit() or len(length_text) > 10:
                raise ParseError(f"bad Content-Length {length_text[:20]!r}")
            total = end + 4 + int(length_text)
            if total > self.max_size:
                raise ParseError(
                    f"message of {total} bytes exceeds the {self.max_size}-byte limit",
                    status=513,
                )
            if len(buffer) < total:
                break
            messages.append(bytes(buffer[:total]))
            del buffer[:total]
        return messages
