"""Session timers (RFC 4028) stepped on a fake clock: negotiation, refresh, expiry."""

from __future__ import annotations

import pytest

from callcontrol.sip import Endpoint, PeerProtocolError, Response, parse_message
from callcontrol.sip.session_timer import (
    RefreshDue,
    SessionExpired,
    SessionExpires,
    SessionIntervalTooSmall,
    SessionTimer,
    check_interval,
)

from .conftest import UAC_ADDR, invite_bytes


def invite(*extra: str) -> object:
    return parse_message(invite_bytes(extra=list(extra)))


def test_session_expires_parse_and_print() -> None:
    assert SessionExpires.parse("1800;refresher=UAS") == SessionExpires(1800, "uas")
    assert SessionExpires.parse(" 90 ") == SessionExpires(90, None)
    assert str(SessionExpires(600, "uac")) == "600;refresher=uac"
    for bad in ("", "x", "-5", "90;refresher=proxy", "1" * 11):
        with pytest.raises(PeerProtocolError):
            SessionExpires.parse(bad)


def test_too_small_interval_is_refused_with_our_min_se() -> None:
    with pytest.raises(SessionIntervalTooSmall) as caught:
        check_interval(invite("Session-Expires: 60"), 90)  # type: ignore[arg-type]
    assert caught.value.status == 422 and caught.value.min_se == 90
    check_interval(invite("Session-Expires: 90"), 90)  # type: ignore[arg-type]
    check_interval(invite(), 90)  # type: ignore[arg-type]


def test_endpoint_answers_422_with_min_se() -> None:
    uas = Endpoint()
    uas.receive_datagram(invite_bytes(extra=["Supported: timer", "Session-Expires: 30"]),
                         UAC_ADDR, 0.0)
    reply = parse_message(uas.datagrams_to_send()[0].data)
    assert isinstance(reply, Response) and reply.status == 422
    assert reply.headers.get("min-se") == "90"
    assert uas.next_event() is None


def test_endpoint_accepts_require_timer() -> None:
    uas = Endpoint()
    uas.receive_datagram(invite_bytes(extra=["Require: timer", "Session-Expires: 1800"]),
                         UAC_ADDR, 0.0)
    assert uas.datagrams_to_send() == []
    assert uas.next_event() is not None


def test_uas_keeps_the_peers_choice_of_refresher() -> None:
    timer, headers = SessionTimer.answering(
        invite("Supported: timer", "Session-Expires: 600;refresher=uac"), 0.0)  # type: ignore[arg-type]
    assert timer is not None and not timer.local_refresher and timer.interval == 600
    assert headers == [("Session-Expires", "600;refresher=uac"), ("Require", "timer")]


def test_uas_refreshes_when_the_peer_does_not_support_timers() -> None:
    timer, headers = SessionTimer.answering(
        invite("Session-Expires: 600;refresher=uac"), 0.0)  # type: ignore[arg-type]
    assert timer is not None and timer.local_refresher
    assert headers == [("Session-Expires", "600;refresher=uas")]


def test_no_timer_unless_asked_or_configured() -> None:
    assert SessionTimer.answering(invite(), 0.0) == (None, [])  # type: ignore[arg-type]
    timer, headers = SessionTimer.answering(
        invite("Min-SE: 300"), 0.0, interval=120)  # type: ignore[arg-type]
    assert timer is not None and timer.interval == 300 and timer.local_refresher
    assert headers == [("Session-Expires", "300;refresher=uas")]


def test_local_refresher_refreshes_at_half_the_interval_and_restarts() -> None:
    timer = SessionTimer(90, local_refresher=True, now=100.0)
    assert timer.get_timer() == 145.0
    assert timer.handle_timer(144.9) == []
    assert timer.handle_timer(145.0) == [RefreshDue(90)]
    # while the refresh is out, the next deadline is the expiry
    assert timer.get_timer() == 100.0 + 90 - 30
    ok = parse_message(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                       b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\n"
                       b"CSeq: 2 UPDATE\r\nSession-Expires: 120;refresher=uac\r\n\r\n")
    timer.refreshed(146.0, ok)
    assert timer.interval == 120 and timer.local_refresher and timer.alive_at == 146.0
    assert timer.get_timer() == 206.0


def test_failed_refresh_expires_the_session_at_the_last_proof_of_life() -> None:
    timer = SessionTimer(90, local_refresher=True, now=0.0)
    assert timer.handle_timer(45.0) == [RefreshDue(90)]
    timer.alive(50.0)  # media still seen
    timer.alive(40.0)  # an older stamp changes nothing
    assert timer.refresh_failed(77.0) == [SessionExpired(50.0, "refresh not answered")]


def test_an_error_to_the_refresh_ends_the_session() -> None:
    timer = SessionTimer(90, local_refresher=True, now=0.0)
    timer.handle_timer(45.0)
    gone = Response(481)
    assert timer.refresh_failed(45.1, gone) == [SessionExpired(0.0, "refresh answered 481")]


def test_422_to_a_refresh_retries_with_the_larger_interval() -> None:
    timer = SessionTimer(90, local_refresher=True, now=0.0)
    timer.handle_timer(45.0)
    too_small = Response(422)
    too_small.headers.set("min-se", "300")
    assert timer.refresh_failed(45.1, too_small) == [RefreshDue(300)]
    assert timer.refresh_headers() == [("Session-Expires", "300;refresher=uac"),
                                       ("Min-SE", "300"), ("Supported", "timer")]


def test_remote_refresher_that_never_refreshes_expires_the_session() -> None:
    timer = SessionTimer(1800, local_refresher=False, now=0.0)
    assert timer.get_timer() == 1800 - 32
    assert timer.handle_timer(1767.0) == []
    assert timer.handle_timer(1768.0) == [SessionExpired(0.0, "session timer expired")]


def test_a_refresh_from_the_peer_restarts_the_timer_and_is_answered() -> None:
    timer = SessionTimer(120, local_refresher=False, now=0.0)
    request = invite("Supported: timer", "Session-Expires: 150;refresher=uac")
    headers = timer.refreshed(100.0, request, we_answered=True)  # type: ignore[arg-type]
    assert headers == [("Session-Expires", "150;refresher=uac"), ("Require", "timer")]
    assert timer.get_timer() == 100.0 + 150 - 32
    assert not timer.local_refresher
    # a refresh without Session-Expires keeps the interval and makes us the refresher
    assert timer.refreshed(200.0, invite(), we_answered=True) == [  # type: ignore[arg-type]
        ("Session-Expires", "150;refresher=uas")]
    assert timer.local_refresher and timer.get_timer() == 275.0


def test_uac_side_follows_the_answer() -> None:
    ok = Response(200)
    assert SessionTimer.answered(ok, 0.0) is None
    ok.headers.set("session-expires", "1800;refresher=uas")
    timer = SessionTimer.answered(ok, 5.0)
    assert timer is not None and not timer.local_refresher and timer.interval == 1800
    ok.headers.set("session-expires", "1800")
    timer = SessionTimer.answered(ok, 5.0)
    assert timer is not None and timer.local_refresher and timer.get_timer() == 905.0


def test_glare_on_our_refresh_retries_it_later() -> None:
    timer = SessionTimer(90, local_refresher=True, now=0.0)
    assert timer.handle_timer(45.0) == [RefreshDue(90)]
    assert timer.refresh_failed(45.1, Response(491), retry_in=3.0) == []
    assert timer.get_timer() == pytest.approx(48.1)
    assert timer.handle_timer(48.0) == []
    assert timer.handle_timer(48.1) == [RefreshDue(90)]
    assert timer.get_timer() == 90 - 30  # the expiry, while the retried refresh is out
