"""SDP parsing and RFC 3264 offer/answer for audio."""

from __future__ import annotations

import pytest

from callcontrol.sip import SdpError, SessionDescription, accept_answer, answer_offer, create_offer

OFFER = (
    b"v=0\r\n"
    b"o=facility 2890844526 2890844526 IN IP4 127.0.0.11\r\n"
    b"s=call\r\n"
    b"c=IN IP4 127.0.0.11\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 18 8 0 101\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:30\r\n"
    b"a=sendrecv\r\n"
)


def test_round_trip() -> None:
    assert SessionDescription.parse(OFFER).serialize() == OFFER


def test_answer_picks_offerers_first_supported_codec_and_event_pt() -> None:
    answer, agreed = answer_offer(SessionDescription.parse(OFFER), "127.0.0.1", 20000,
                                  session_id=7)
    assert (agreed.codec, agreed.payload_type, agreed.telephone_event) == ("PCMA", 8, 101)
    assert (agreed.remote_address, agreed.remote_port, agreed.ptime) == ("127.0.0.11", 49170, 30)
    assert agreed.direction == "sendrecv"
    text = answer.serialize().decode()
    assert "m=audio 20000 RTP/AVP 8 101\r\n" in text
    assert "a=fmtp:101 0-16\r\n" in text and "a=ptime:30\r\n" in text
    assert "c=IN IP4 127.0.0.1\r\n" in text and text.startswith("v=0\r\no=- 7 1 IN IP4")


@pytest.mark.parametrize(("offered", "answered"), [
    ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"),
    ("sendrecv", "sendrecv")])
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    offer = SessionDescription.parse(OFFER.replace(b"a=sendrecv", f"a={offered}".encode()))
    assert answer_offer(offer, "127.0.0.1", 20000)[1].direction == answered


def test_media_level_connection_and_session_direction() -> None:
    data = (b"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\na=sendonly\r\n"
            b"m=video 5000 RTP/AVP 96\r\nc=IN IP6 ::1\r\n"
            b"m=audio 6000 RTP/AVP 0\r\nc=IN IP6 2001:db8::5\r\n")
    answer, agreed = answer_offer(SessionDescription.parse(data), "::1", 7000)
    assert agreed.remote_address == "2001:db8::5" and agreed.codec == "PCMU"
    assert agreed.telephone_event is None and agreed.direction == "recvonly"
    assert [m.port for m in answer.media] == [0, 7000]  # video declined, order kept


@pytest.mark.parametrize("bad", [
    OFFER.replace(b"RTP/AVP 18 8 0 101", b"RTP/AVP 18"),             # no usable codec
    OFFER.replace(b"RTP/AVP", b"RTP/SAVP"),                          # unsupported profile
    OFFER.replace(b"c=IN IP4 127.0.0.11\r\n", b""),                  # no connection
    OFFER.replace(b"m=audio 49170", b"m=audio 0"),                   # audio declined
    OFFER.replace(b"c=IN IP4 127.0.0.11", b"c=IN IP4 not-an-ip"),
    OFFER.replace(b"v=0", b"v=1"),
    OFFER.replace(b"o=facility 2890844526 2890844526 IN IP4 127.0.0.11\r\n", b""),
    OFFER.replace(b"m=audio 49170 RTP/AVP", b"m=audio 99999 RTP/AVP"),
    OFFER.replace(b"18 8 0 101", b"18 8 abc"),
    OFFER.replace(b"s=call", b"garbage line"),
    b"\xff\xfe",
    b"",
])
def test_bad_or_unsupported_offers_raise_488(bad: bytes) -> None:
    with pytest.raises(SdpError) as caught:
        answer_offer(SessionDescription.parse(bad), "127.0.0.1", 20000)
    assert caught.value.status == 488


def test_offer_and_accept_answer() -> None:
    offer = create_offer("127.0.0.1", 30000, telephone_event=101, session_id=1)
    text = offer.serialize().decode()
    assert "m=audio 30000 RTP/AVP 0 8 101\r\n" in text and "a=fmtp:101 0-15\r\n" in text
    answer, _ = answer_offer(SessionDescription.parse(offer.serialize()), "127.0.0.9", 40000)
    agreed = accept_answer(offer, SessionDescription.parse(answer.serialize()))
    assert (agreed.codec, agreed.telephone_event) == ("PCMU", 101)
    assert (agreed.remote_address, agreed.remote_port) == ("127.0.0.9", 40000)
    rogue = answer.serialize().replace(b"RTP/AVP 0 101", b"RTP/AVP 18")
    with pytest.raises(SdpError):
        accept_answer(offer, SessionDescription.parse(rogue))
