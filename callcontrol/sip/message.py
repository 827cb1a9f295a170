"""SIP message model: requests, responses, headers, and the wire parser/serializer."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import ParseError, reason_phrase

#: Default hard limit on one message (headers + body), in bytes.
MAX_MESSAGE_SIZE = 65_535

#: RFC 3261 7.3.3 and later RFCs: compact form -> full name (lower case).
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_DISPLAY_NAMES: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}

#: Headers that may appear only once; a second copy makes the message malformed.
SINGLE_VALUE_HEADERS = frozenset(
    {"call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type"}
)

_REQUIRED_HEADERS = ("via", "from", "to", "call-id", "cseq")
_VALID_NAMES: set[str] = set()
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+\Z")
_DIGITS = re.compile(r"[0-9]{1,10}\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.I)
_VIA = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s;]+)\s+([^;]*)(.*)\Z", re.S)
_EMPTY_ELEMENT = re.compile(r"^\s*,|,\s*(?:,|\Z)")
#: RFC 3261 25.1 rfc1123-date: the only time zone SIP allows is GMT.
_SIP_DATE = re.compile(r"[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
                       r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z")


def header_key(name: str) -> str:
    """Canonical lower-case key for a header name, expanding compact forms."""
    key = name.lower()
    return COMPACT_FORMS.get(key, key)


def display_name(key: str) -> str:
    """How a canonical header key is written on the wire (``call-id`` -> ``Call-ID``)."""
    name = _DISPLAY_NAMES.get(key)
    if name is None:
        name = "-".join(part.capitalize() for part in key.split("-"))
        _DISPLAY_NAMES[key] = name
    return name


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and ``<...>``."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        parts.append(part)
    return parts


def parse_params(text: str, *, strict: bool = False) -> dict[str, str | None]:
    """Parse ``;a=b;c`` style parameters (leading ``;`` optional), keys lower-cased.

    ``strict`` (header parameters, RFC 3261 25.1 generic-param): the text must
    start with ``;``, no parameter may be empty, names are tokens, and a value is
    a token, host or quoted string.
    """
    params: dict[str, str | None] = {}
    items = text.split(";")
    if strict:
        if items[0].strip():
            raise ParseError(f"junk before parameters: {text[:80]!r}")
        items = items[1:]
    for item in items:
        item = item.strip()
        if not item:
            if strict:
                raise ParseError(f"empty parameter in {text[:80]!r}")
            continue
        name, sep, val = item.partition("=")
        name = name.strip().lower()
        if not name:
            raise ParseError(f"empty parameter name in {text!r}")
        value = val.strip() if sep else None
        if strict:
            if not _TOKEN.match(name):
                raise ParseError(f"bad parameter name {name[:40]!r}")
            if value is not None and (not value or (
                    value[0] != '"' and any(ch.isspace() for ch in value))):
                raise ParseError(f"bad value of parameter {name[:40]!r}")
        params[name] = value
    return params


def format_params(params: dict[str, str | None]) -> str:
    out = ""
    for key, value in params.items():
        out += f";{key}" if value is None else f";{key}={value}"
    return out


class Headers:
    """Ordered multi-valued SIP headers, looked up by any name form (``Via``, ``v``)."""

    __slots__ = ("_names", "_values")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}
        for name, value in items:
            self.add(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of a header, or ``default``."""
        values = self._values.get(name)  # fast path: already a canonical key
        if values is None:
            values = self._values.get(header_key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every header line's value for this name, in order (not comma-split)."""
        return list(self._values.get(header_key(name), ()))

    def get_list(self, name: str) -> list[str]:
        """Every value, with comma-separated lines split (Via, Route, Contact...)."""
        out: list[str] = []
        for value in self._values.get(header_key(name), ()):
            out.extend(split_header_values(value))
        return out

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a value (or put it first, as a proxy prepends Via)."""
        key = header_key(name)
        values = self._values.get(key)
        if values is None:
            self._values[key] = [value]
            self._names[key] = display_name(key)
        elif first:
            values.insert(0, value)
        else:
            values.append(value)

    def set(self, name: str, value: str) -> None:
        """Replace every value of a header with one value."""
        key = header_key(name)
        if key not in self._values:
            self._names[key] = display_name(key)
        self._values[key] = [value]

    def set_all(self, name: str, values: list[str]) -> None:
        key = header_key(name)
        if not values:
            self.remove(name)
            return
        if key not in self._values:
            self._names[key] = display_name(key)
        self._values[key] = list(values)

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._values.pop(key, None)
        self._names.pop(key, None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._values

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for key, values in self._values.items():
            name = self._names[key]
            for value in values:
                yield name, value

    def copy(self) -> Headers:
        new = Headers()
        new._values = {k: list(v) for k, v in self._values.items()}
        new._names = dict(self._names)
        return new

    def _lines(self) -> list[str]:
        lines: list[str] = []
        for key, values in self._values.items():
            if key == "content-length":
                continue
            name = self._names[key]
            for value in values:
                lines.append(f"{name}: {value}")
        return lines


@dataclass(slots=True)
class SipUri:
    """A ``sip:``/``sips:``/``tel:`` URI: ``scheme:user@host:port;params?headers``."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not rest or not _TOKEN.match(scheme):
            raise ParseError(f"URI has no scheme: {text!r}")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return cls("tel", number, "", None, parse_params(params))
        rest, _, headers = rest.partition("?")
        user: str | None = None
        if "@" in rest:
            user, _, rest = rest.rpartition("@")
        hostport, _, params = rest.partition(";")
        host, port = _split_hostport(hostport, text)
        return cls(scheme, user, host, port, parse_params(params), headers)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        out = f"{self.scheme}:"
        if self.user is not None:
            out += f"{self.user}@"
        out += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            out += f":{self.port}"
        out += format_params(self.params)
        if self.headers:
            out += f"?{self.headers}"
        return out


def _closing_quote(text: str) -> int:
    """Index of the quote that closes the quoted string starting at ``text[0]``."""
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i
        i += 1
    raise ParseError(f"unterminated quoted string in {text[:80]!r}")


def _split_hostport(hostport: str, context: str) -> tuple[str, int | None]:
    hostport = hostport.strip()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {context!r}")
        host = hostport[1:end]
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"junk after IPv6 reference in {context!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    if not host or " " in host:
        raise ParseError(f"missing or invalid host in {context!r}")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ParseError(f"invalid port in {context!r}")
        port = int(port_text)
    return host, port


@dataclass(slots=True)
class NameAddress:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    uri: str
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddress:
        """Parse name-addr or addr-spec (RFC 3261 20.10, 25.1), strictly.

        The display name is a quoted string or tokens; a URI in ``<>`` has no white
        space; a bare URI (addr-spec) has no ``?``, ``,`` or white space in it.
        """
        text = text.strip()
        if text == "*":
            return cls("*")
        display: str | None = None
        if text.startswith('"'):
            end = _closing_quote(text)
            display = text[: end + 1]
            lt = len(text) - len(text[end + 1 :].lstrip())
            if not text.startswith("<", lt):
                raise ParseError(f"quoted display name without <URI> in {text[:80]!r}")
        else:
            lt = text.find("<")
            if lt > 0:
                words = text[:lt].split()
                if not all(_TOKEN.match(word) for word in words):
                    raise ParseError(f"display name must be tokens or quoted: {text[:80]!r}")
                display = " ".join(words) or None
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"unterminated <...> in {text[:80]!r}")
            uri = text[lt + 1 : gt]
            if uri != uri.strip() or any(ch.isspace() for ch in uri):
                raise ParseError(f"white space inside <URI> in {text[:80]!r}")
            params = parse_params(text[gt + 1 :], strict=True)
        else:
            uri, semi, rest = text.partition(";")
            uri = uri.strip()
            if "?" in uri or "," in uri or any(ch.isspace() for ch in uri):
                raise ParseError(f"a URI with ?, comma or space needs <...>: {text[:80]!r}")
            params = parse_params(semi + rest, strict=True)
        if not uri or not _SCHEME.match(uri):
            raise ParseError(f"address has no URI: {text[:80]!r}")
        return cls(uri, display, params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        prefix = f"{self.display} " if self.display else ""
        return f"{prefix}<{self.uri}>{format_params(self.params)}"


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        """``SIP / 2.0 / UDP host:port;params``: LWS may surround the slashes (RFC 3261
        25.1); parameters are strict generic-params."""
        m = _VIA.match(text)
        if m is None or m.group(1).upper() != "SIP" or m.group(2) != "2.0":
            raise ParseError(f"bad Via protocol in {text[:80]!r}")
        host, port = _split_hostport(m.group(4), text)
        return cls(m.group(3).upper(), host, port, parse_params(m.group(5), strict=True))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


def tag_of(value: str | None) -> str | None:
    """The ``tag`` parameter of a From/To value, found without a full parse."""
    if not value:
        return None
    i = value.rfind(">")
    i = value.find(";", i + 1 if i >= 0 else 0)
    while i >= 0:
        j = value.find(";", i + 1)
        item = value[i + 1 : j if j >= 0 else len(value)]
        name, eq, tag = item.partition("=")
        if eq and name.strip().lower() == "tag":
            return tag.strip() or None
        i = j
    return None


def with_tag(value: str, tag: str) -> str:
    """A From/To value with its tag set to ``tag`` (added if absent)."""
    address = NameAddress.parse(value)
    address.params["tag"] = tag
    return str(address)


class Message:
    """Shared by requests and responses: headers, body, and common header shortcuts."""

    __slots__ = ("body", "headers", "parsed_via")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers: Headers = headers if headers is not None else Headers()
        self.body: bytes = body
        #: The top Via as the parser read it (None when built in code).
        self.parsed_via: Via | None = None

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is always written from the actual body."""
        lines = self.headers._lines()
        lines.insert(0, self.start_line())
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode() + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) from the CSeq header."""
        return parse_cseq(self.headers.get("cseq") or "")

    @property
    def from_tag(self) -> str | None:
        return tag_of(self.headers.get("from"))

    @property
    def to_tag(self) -> str | None:
        return tag_of(self.headers.get("to"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_list("via")]

    @property
    def top_via(self) -> Via:
        first = self.headers.get("via")
        if first is None:
            raise ParseError("message has no Via header")
        return Via.parse(split_header_values(first)[0])


class Request(Message):
    """A SIP request: ``method``, ``uri`` (text), headers and body."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id}>"


class Response(Message):
    """A SIP response: ``status``, ``reason``, headers and body."""

    __slots__ = ("reason", "status")

    def __init__(
        self, status: int, reason: str | None = None, headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id}>"


def parse_cseq(value: str) -> tuple[int, str]:
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not _DIGITS.match(number) or not method or not _TOKEN.match(method):
        raise ParseError(f"malformed CSeq {value!r}")
    seq = int(number)
    if seq >= 2**31:
        raise ParseError(f"CSeq number {seq} is not below 2**31")
    return seq, method


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> Request | Response:
    """Parse one whole message (a datagram or a framed stream message).

    Raises `ParseError` with a precise message on anything malformed. On a
    datagram a body longer than Content-Length is cut to it (RFC 3261 18.3).
    """
    if len(data) > max_size:
        raise ParseError(
            f"message of {len(data)} bytes exceeds the {max_size}-byte limit", status=513
        )
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("message has no empty line ending its headers")
    try:
        text = data[:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"header bytes are not UTF-8 (offset {exc.start})") from None
    body = data[end + 4 :]
    if "\r\n " in text or "\r\n\t" in text:
        # Folded lines (RFC 3261 7.3.1): a continuation line joins the previous one.
        text = re.sub(r"\r\n[ \t]+", " ", text)
    lines = text.split("\r\n")
    start = lines[0]
    message: Request | Response
    if start.startswith("SIP/2.0 "):
        code, _, reason = start[8:].partition(" ")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise ParseError(f"bad status line {start[:80]!r}")
        message = Response(int(code), reason.strip())
    else:
        parts = start.split(" ")
        if len(parts) == 3 and parts[2] != "SIP/2.0" and _VERSION.match(parts[2]):
            raise ParseError(f"SIP version {parts[2][:20]!r} is not 2.0", status=505)
        if len(parts) != 3 or parts[2] != "SIP/2.0":
            raise ParseError(f"bad request line {start[:80]!r}")
        method, uri = parts[0], parts[1]
        if not _TOKEN.match(method):
            raise ParseError(f"bad method {method[:40]!r}")
        scheme = _SCHEME.match(uri)
        if scheme is None:
            raise ParseError(f"bad Request-URI {uri[:80]!r}")
        if scheme.end() in (4, 5) and uri[: scheme.end() - 1].lower() in ("sip", "sips") and (
                "?" in uri.rpartition("@")[2]):
            raise ParseError(f"Request-URI carries headers: {uri[:80]!r}")
        message = Request(method, uri)
    values = message.headers._values
    names = message.headers._names
    for line in lines[1:]:
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without a name and colon: {line[:80]!r}")
        name = line[:colon].rstrip()
        key = name.lower()
        if len(key) == 1:
            key = COMPACT_FORMS.get(key, key)
            name = display_name(key)
        if name not in _VALID_NAMES:
            if not _TOKEN.match(name):
                raise ParseError(f"bad header name {name[:40]!r}")
            if len(_VALID_NAMES) < 512:  # bounded: names seen from peers are not trusted
                _VALID_NAMES.add(name)
        value = line[colon + 1 :].strip()
        existing = values.get(key)
        if existing is None:
            values[key] = [value]
            names[key] = name
        elif key in SINGLE_VALUE_HEADERS:
            raise ParseError(f"duplicate {display_name(key)} header")
        else:
            existing.append(value)
    for key in _REQUIRED_HEADERS:
        if key not in values or not values[key][0]:
            raise ParseError(f"missing {display_name(key)} header")
    first_via = split_header_values(values["via"][0])
    if not first_via:
        raise ParseError("empty Via header")
    message.parsed_via = Via.parse(first_via[0])
    for line in values["via"]:
        if _EMPTY_ELEMENT.search(line):
            raise ParseError(f"empty element in Via {line[:80]!r}")
    NameAddress.parse(values["from"][0])
    NameAddress.parse(values["to"][0])
    for line in values.get("contact", ()):
        for contact in split_header_values(line):
            NameAddress.parse(contact)
    date = values.get("date")
    if date is not None and not _SIP_DATE.match(date[0]):
        raise ParseError(f"bad Date {date[0][:40]!r} (RFC 3261 allows GMT only)")
    seq_method = parse_cseq(values["cseq"][0])
    if isinstance(message, Request) and seq_method[1] != message.method:
        raise ParseError(f"CSeq method {seq_method[1]} does not match {message.method}")
    length_values = values.get("content-length")
    if length_values is not None:
        length_text = length_values[0]
        if not _DIGITS.match(length_text):
            raise ParseError(f"bad Content-Length {length_text[:20]!r}")
        length = int(length_text)
        if length > len(body):
            raise ParseError(f"body is {len(body)} bytes but Content-Length says {length}")
        if length < len(body):
            body = body[:length]
    message.body = body
    if isinstance(message, Request):
        max_forwards = values.get("max-forwards")
        if max_forwards is not None and not _DIGITS.match(max_forwards[0]):
            raise ParseError(f"bad Max-Forwards {max_forwards[0][:20]!r}")
    return message


def looks_like_response(data: bytes) -> bool:
    """Whether bytes claim to be a response (malformed responses are dropped, not answered)."""
    return data.startswith(b"SIP/2.0 ")


_SALVAGE_HEADERS = ("via", "from", "to", "call-id", "cseq")


def bad_request_response(data: bytes, status: int = 400, reason: str | None = None) -> Response:
    """Best-effort error response to a request that failed to parse.

    Copies whatever Via/From/To/Call-ID/CSeq lines can be read, so the sender can
    match it to its transaction; the reason phrase says what was wrong.
    """
    response = Response(status, _clean_reason(reason or reason_phrase(status)))
    head = data[: data.find(b"\r\n\r\n")] if b"\r\n\r\n" in data else data
    text = head[:8192].decode("utf-8", "replace")
    for line in text.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = header_key(name.strip())
        if key in _SALVAGE_HEADERS and _printable(value):
            if key in SINGLE_VALUE_HEADERS and key in response.headers:
                continue
            response.headers.add(key, value.strip())
    to = response.headers.get("to")
    if to is not None and "tag=" not in to:
        response.headers.set("to", f"{to};tag={os.urandom(6).hex()}")
    return response


def _printable(value: str) -> bool:
    return value.isprintable() and "\ufffd" not in value and len(value) < 1024


def _clean_reason(reason: str) -> str:
    reason = "".join(ch if ch.isprintable() else "?" for ch in reason)
    return reason[:120]


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` (RFC 3261 8.2.6): copies Via, From, To, Call-ID, CSeq.

    ``to_tag`` is added to To unless the request already carries one (in-dialog).
    Record-Route is copied on dialog-creating responses (1xx/2xx to INVITE).
    """
    response = Response(status, reason)
    response.parsed_via = request.parsed_via  # same top Via: saves a parse when sending
    rh = response.headers
    src = request.headers
    rh.set_all("via", src.get_all("via"))
    rh.set("from", src.get("from") or "")
    to = src.get("to") or ""
    if to_tag is not None and status != 100 and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    rh.set("to", to)
    rh.set("call-id", src.get("call-id") or "")
    rh.set("cseq", src.get("cseq") or "")
    if request.method == "INVITE" and 100 < status < 300:
        record_route = src.get_all("record-route")
        if record_route:
            rh.set_all("record-route", record_route)
    for name, value in headers:
        rh.add(name, value)
    response.body = body
    return response
