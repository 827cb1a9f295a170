"""Offers inside a call (re-INVITE, UPDATE): the answer the controller gives from its own leg."""

from __future__ import annotations

import pytest

from callcontrol.sip import SdpError, SessionDescription, answer_offer, answer_reoffer
from callcontrol.sip.sdp import sends


def offer(*, port: int = 6000, address: str = "192.0.2.7", formats: str = "0 8 101",
          direction: str = "sendrecv", version: int = 1) -> SessionDescription:
    return SessionDescription.parse(
        f"v=0\r\no=pbx 77 {version} IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction}\r\n".encode())


def first_answer() -> SessionDescription:
    answer, _ = answer_offer(offer(), "127.0.0.1", 41000, session_id=5, version=1)
    return answer


def test_hold_is_answered_recvonly_from_our_own_address_and_port() -> None:
    answer, negotiated = answer_reoffer(offer(direction="sendonly", version=2), first_answer(),
                                        41000)
    assert negotiated.direction == "recvonly" and not sends(negotiated.direction)
    assert answer.media[0].port == 41000 and answer.connection == "127.0.0.1"
    assert answer.media[0].direction == "recvonly"
    # Same session, next version (RFC 3264 8).
    assert answer.origin.split()[1:3] == ["5", "2"]


def test_inactive_and_resume() -> None:
    held, negotiated = answer_reoffer(offer(direction="inactive", version=2), first_answer(),
                                      41000)
    assert negotiated.direction == "inactive"
    resumed, negotiated = answer_reoffer(offer(version=3), held, 41000)
    assert negotiated.direction == "sendrecv" and sends(negotiated.direction)
    assert resumed.origin.split()[2] == "3"


def test_new_media_address_and_port_are_taken() -> None:
    _, negotiated = answer_reoffer(offer(port=7000, address="192.0.2.9", version=2),
                                   first_answer(), 41000)
    assert (negotiated.remote_address, negotiated.remote_port) == ("192.0.2.9", 7000)


def test_codec_change_among_those_offered() -> None:
    answer, negotiated = answer_reoffer(offer(formats="8 101", version=2), first_answer(), 41000)
    assert (negotiated.codec, negotiated.payload_type) == ("PCMA", 8)
    assert answer.media[0].formats[0] == "8"


def test_an_offer_we_cannot_take_is_refused() -> None:
    with pytest.raises(SdpError) as caught:
        answer_reoffer(offer(formats="18", version=2), first_answer(), 41000)
    assert caught.value.status == 488
