"""SDP (RFC 4566) for audio calls and the RFC 3264 offer/answer over PCMU, PCMA, RFC 4733."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .errors import SdpError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
            "inactive": "inactive"}
#: Static audio payload types we speak (RFC 3551): payload type -> encoding name.
STATIC_CODECS = {0: "PCMU", 8: "PCMA"}
SUPPORTED_CODECS = ("PCMU", "PCMA")
MAX_SDP_SIZE = 16_384


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section with its own ``c=``, ``b=`` and ``a=`` lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value if value is not None else ""
        return None

    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type -> (encoding name, clock rate) from ``a=rtpmap``."""
        out: dict[int, tuple[str, int]] = {}
        for key, value in self.attributes:
            if key != "rtpmap" or not value:
                continue
            pt_text, _, encoding = value.partition(" ")
            name, _, rest = encoding.strip().partition("/")
            rate_text = rest.partition("/")[0]
            if pt_text.isdigit() and rate_text.isdigit():
                out[int(pt_text)] = (name, int(rate_text))
        return out

    def fmtp(self, payload_type: int) -> str | None:
        prefix = f"{payload_type} "
        for key, value in self.attributes:
            if key == "fmtp" and value and value.startswith(prefix):
                return value[len(prefix):].strip()
        return None

    @property
    def direction(self) -> str | None:
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return None


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body; unknown lines are kept as attributes so nothing is lost."""

    origin: str
    session_name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        if len(data) > MAX_SDP_SIZE:
            raise SdpError(f"SDP of {len(data)} bytes exceeds {MAX_SDP_SIZE}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8") from None
        lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
        if not lines or lines[0] != "v=0":
            raise SdpError("SDP must start with v=0")
        session: SessionDescription | None = None
        origin: str | None = None
        current: MediaDescription | None = None
        name = "-"
        connection: str | None = None
        timing: str | None = None
        bandwidths: list[str] = []
        attributes: list[tuple[str, str | None]] = []
        media: list[MediaDescription] = []
        extra: list[str] = []
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"malformed SDP line {line[:60]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                current = _parse_media(value)
                media.append(current)
            elif kind == "c":
                address = _parse_connection(value)
                if current is None:
                    connection = address
                else:
                    current.connection = address
            elif kind == "a":
                key, sep, attr = value.partition(":")
                item = (key.strip(), attr.strip() if sep else None)
                (attributes if current is None else current.attributes).append(item)
            elif kind == "b":
                (bandwidths if current is None else current.bandwidths).append(value)
            elif current is None and kind == "o":
                if len(value.split()) != 6:
                    raise SdpError(f"malformed o= line {value[:60]!r}")
                origin = value
            elif current is None and kind == "s":
                name = value or "-"
            elif current is None and kind == "t":
                timing = value
            elif current is None:
                extra.append(line)
        if origin is None:
            raise SdpError("SDP has no o= line")
        if timing is None:
            raise SdpError("SDP has no t= line")
        session = cls(origin, name, connection, timing, bandwidths, attributes, media, extra)
        return session

    def serialize(self) -> bytes:
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        lines.extend(self.extra)
        if self.connection:
            lines.append(f"c={_connection_line(self.connection)}")
        lines.extend(f"b={b}" for b in self.bandwidths)
        lines.append(f"t={self.timing}")
        lines.extend(_attribute_line(k, v) for k, v in self.attributes)
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}")
            if m.connection:
                lines.append(f"c={_connection_line(m.connection)}")
            lines.extend(f"b={b}" for b in m.bandwidths)
            lines.extend(_attribute_line(k, v) for k, v in m.attributes)
        return ("\r\n".join(lines) + "\r\n").encode()

    @property
    def direction(self) -> str:
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return "sendrecv"


def _attribute_line(key: str, value: str | None) -> str:
    return f"a={key}" if value is None else f"a={key}:{value}"


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"malformed m= line {value[:60]!r}")
    port_text = parts[1].partition("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad media port {parts[1][:20]!r}")
    return MediaDescription(parts[0], int(port_text), parts[2], parts[3:])


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed c= line {value[:60]!r}")
    address = parts[2].partition("/")[0]
    family = socket.AF_INET6 if parts[1] == "IP6" else socket.AF_INET
    try:
        socket.inet_pton(family, address)  # C speed; ipaddress is costly per call
    except (OSError, ValueError):
        raise SdpError(f"c= address {address[:60]!r} is not an {parts[1]} address") from None
    return address


def _connection_line(address: str) -> str:
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


@dataclass(frozen=True, slots=True)
class NegotiatedAudio:
    """What both sides agreed: where to send RTP, which codec, DTMF payload type, direction."""

    remote_address: str
    remote_port: int
    payload_type: int
    codec: str
    telephone_event: int | None
    ptime: int
    direction: str
    """Our direction as written in our SDP (``sendrecv``, ``recvonly``...)."""


def create_offer(
    address: str,
    port: int,
    *,
    codecs: tuple[str, ...] = SUPPORTED_CODECS,
    telephone_event: int | None = 101,
    ptime: int = 20,
    direction: str = "sendrecv",
    session_id: int | None = None,
    version: int = 1,
) -> SessionDescription:
    """An audio offer, codecs in our order of preference."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    pts = {name: pt for pt, name in STATIC_CODECS.items()}
    formats = [str(pts[name]) for name in codecs]
    attributes: list[tuple[str, str | None]] = [
        ("rtpmap", f"{pts[name]} {name}/8000") for name in codecs
    ]
    if telephone_event is not None:
        formats.append(str(telephone_event))
        attributes.append(("rtpmap", f"{telephone_event} telephone-event/8000"))
        attributes.append(("fmtp", f"{telephone_event} 0-15"))
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    sid = session_id if session_id is not None else int.from_bytes(os.urandom(4), "big")
    return SessionDescription(
        origin=f"- {sid} {version} IN {'IP6' if ':' in address else 'IP4'} {address}",
        connection=address,
        media=[MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)],
    )


def answer_offer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    codecs: tuple[str, ...] = SUPPORTED_CODECS,
    telephone_event: bool = True,
    direction: str = "sendrecv",
    session_id: int | None = None,
    version: int = 1,
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer an offer (RFC 3264 6): first acceptable audio stream, offerer's codec order.

    Other streams are declined with port 0, as the answer must keep every m= line.
    Raises `SdpError` (488) when no audio stream with PCMU or PCMA can be accepted.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    chosen: NegotiatedAudio | None = None
    answer_media: list[MediaDescription] = []
    for m in offer.media:
        if chosen is None and m.media == "audio" and m.port != 0:
            negotiated, media = _answer_audio(offer, m, port, codecs, telephone_event, direction)
            if negotiated is not None and media is not None:
                chosen = negotiated
                answer_media.append(media)
                continue
        answer_media.append(MediaDescription(m.media, 0, m.proto, m.formats[:1]))
    if chosen is None:
        raise SdpError("offer has no audio stream with PCMU or PCMA over RTP/AVP")
    sid = session_id if session_id is not None else int.from_bytes(os.urandom(4), "big")
    answer = SessionDescription(
        origin=f"- {sid} {version} IN {'IP6' if ':' in address else 'IP4'} {address}",
        connection=address,
        media=answer_media,
    )
    return answer, chosen


def answer_reoffer(
    offer: SessionDescription, previous: SessionDescription, port: int, *,
    codecs: tuple[str, ...] = SUPPORTED_CODECS,
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer a new offer inside a dialog (RFC 3264 8) from the leg we terminate.

    Our address and port stay those of ``previous`` (our last SDP on the leg); the
    codec is chosen again among those offered, the direction mirrors the offer's
    (a ``sendonly`` hold gets ``recvonly``, ``inactive`` gets ``inactive``), and the
    origin keeps its session id with the version one up. Raises `SdpError` (488).
    """
    parts = previous.origin.split()
    if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
        raise SdpError(f"our previous SDP has a malformed origin {previous.origin[:60]!r}")
    address = previous.connection or parts[5]
    return answer_offer(offer, address, port, codecs=codecs, session_id=int(parts[1]),
                        version=int(parts[2]) + 1)


def sends(direction: str) -> bool:
    """Whether the side whose SDP says ``direction`` sends media."""
    return direction in ("sendrecv", "sendonly")


def _answer_audio(
    offer: SessionDescription, m: MediaDescription, port: int, codecs: tuple[str, ...],
    telephone_event: bool, direction: str,
) -> tuple[NegotiatedAudio | None, MediaDescription | None]:
    if m.proto != "RTP/AVP":
        return None, None
    connection = m.connection or offer.connection
    if connection is None:
        raise SdpError("audio stream has no c= address at session or media level")
    rtpmap = m.rtpmap()
    codec_pt: int | None = None
    codec_name = ""
    event_pt: int | None = None
    wanted = {c.upper() for c in codecs}
    for fmt in m.formats:
        if not fmt.isdigit():
            raise SdpError(f"bad RTP payload type {fmt[:10]!r}")
        pt = int(fmt)
        if pt > 127:
            raise SdpError(f"RTP payload type {pt} out of range")
        name, rate = rtpmap.get(pt, (STATIC_CODECS.get(pt, ""), 8000))
        upper = name.upper()
        if codec_pt is None and upper in wanted and rate == 8000:
            codec_pt, codec_name = pt, upper
        elif event_pt is None and upper == "TELEPHONE-EVENT" and rate == 8000:
            event_pt = pt
    if codec_pt is None:
        return None, None
    offered_direction = m.direction or offer.direction
    ours = _REVERSE[offered_direction]
    if direction != "sendrecv":
        ours = _intersect(ours, direction)
    ptime_text = m.attribute("ptime")
    ptime = int(ptime_text) if ptime_text and ptime_text.isdigit() and 0 < int(ptime_text) <= 200 \
        else 20
    formats = [str(codec_pt)]
    attributes: list[tuple[str, str | None]] = [("rtpmap", f"{codec_pt} {codec_name}/8000")]
    if telephone_event and event_pt is not None:
        formats.append(str(event_pt))
        attributes.append(("rtpmap", f"{event_pt} telephone-event/8000"))
        attributes.append(("fmtp", f"{event_pt} {m.fmtp(event_pt) or '0-15'}"))
    else:
        event_pt = None
    attributes.append(("ptime", str(ptime)))
    attributes.append((ours, None))
    negotiated = NegotiatedAudio(connection, m.port, codec_pt, codec_name, event_pt, ptime, ours)
    return negotiated, MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)


def _intersect(a: str, b: str) -> str:
    send = a in ("sendrecv", "sendonly") and b in ("sendrecv", "sendonly")
    recv = a in ("sendrecv", "recvonly") and b in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly",
            (False, False): "inactive"}[(send, recv)]


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedAudio:
    """Check the answer to our offer and return what it agreed (RFC 3264 7).

    Raises `SdpError` when the answer picks nothing we offered or drops the stream.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError("answer does not have one m= line per offered stream")
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.port == 0:
            continue
        if theirs.port == 0:
            raise SdpError("answer rejected the audio stream")
        connection = theirs.connection or answer.connection
        if connection is None:
            raise SdpError("answer has no c= address")
        offered = {int(f) for f in ours.formats if f.isdigit()}
        our_map = ours.rtpmap()
        codec_pt: int | None = None
        codec_name = ""
        event_pt: int | None = None
        their_map = theirs.rtpmap()
        for fmt in theirs.formats:
            if not fmt.isdigit() or int(fmt) not in offered:
                continue
            pt = int(fmt)
            name = (their_map.get(pt) or our_map.get(pt) or (STATIC_CODECS.get(pt, ""), 0))[0]
            if codec_pt is None and name.upper() in SUPPORTED_CODECS:
                codec_pt, codec_name = pt, name.upper()
            elif name.lower() == "telephone-event":
                event_pt = pt
        if codec_pt is None:
            raise SdpError("answer chose no codec we offered")
        ptime_text = theirs.attribute("ptime")
        ptime = int(ptime_text) if ptime_text and ptime_text.isdigit() else 20
        their_direction = theirs.direction or answer.direction
        return NegotiatedAudio(connection, theirs.port, codec_pt, codec_name, event_pt, ptime,
                               _REVERSE[their_direction])
    raise SdpError("offer had no audio stream")
