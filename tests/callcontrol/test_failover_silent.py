"""A carrier that answers 100 Trying and nothing else, with a fake clock: Timer C, a CANCEL
nobody answers, and the call flow's ring timeout (which frees the call at once)."""

from __future__ import annotations

from callcontrol.actions import CancelCarrier, RejectCaller
from callcontrol.events import CallEnded
from callcontrol.flow import CallState
from callcontrol.sip import (
    Endpoint,
    Headers,
    Request,
    ResponseReceived,
    TransactionTimedOut,
    make_response,
    new_tag,
    parse_message,
)

from .test_flow import GRANT, Clock, ended, kinds, requested_call, run_timers

CARRIER = ("127.0.0.1", 5090)


def controller() -> Endpoint:
    endpoint = Endpoint()
    endpoint.set_local_address("udp", "127.0.0.1", 5060)
    return endpoint


def invite() -> Request:
    h = Headers()
    h.set("from", f"<sip:ics@127.0.0.1>;tag={new_tag()}")
    h.set("to", "<sip:+15125550100@127.0.0.1:5090>")
    h.set("call-id", new_tag())
    h.set("cseq", "1 INVITE")
    h.set("contact", "<sip:ics@127.0.0.1:5060>")
    return Request("INVITE", "sip:+15125550100@127.0.0.1:5090", h)


def sent_methods(endpoint: Endpoint) -> list[str]:
    return [t.data.split(b" ", 1)[0].decode() for t in endpoint.datagrams_to_send()]


def events(endpoint: Endpoint) -> list[object]:
    out = []
    while (event := endpoint.next_event()) is not None:
        out.append(event)
    return out


def trying_only(endpoint: Endpoint) -> tuple[str, Request]:
    """An INVITE out, 100 Trying back, then the carrier falls silent."""
    tx = endpoint.send_request(invite(), CARRIER, 0.0)
    (out,) = endpoint.datagrams_to_send()
    request = parse_message(out.data)
    assert isinstance(request, Request)
    endpoint.receive_datagram(make_response(request, 100).serialize(), CARRIER, 0.05)
    assert [type(e) for e in events(endpoint)] == [ResponseReceived]
    return tx, request


def test_a_cancel_nobody_answers_still_ends_the_invite_transaction() -> None:
    ep = controller()
    tx, _ = trying_only(ep)
    assert ep.get_timer() is not None and ep.get_timer() > 100  # only Timer C is armed
    assert ep.cancel(tx, 30.0)
    assert sent_methods(ep) == ["CANCEL"]
    # The CANCEL is retransmitted, then the INVITE is given up 64*T1 after it.
    while (when := ep.get_timer()) is not None and when <= 30.0 + 32.0:
        ep.handle_timer(when)
    timed_out = [e for e in events(ep) if isinstance(e, TransactionTimedOut)]
    assert sorted(e.request.method for e in timed_out) == ["CANCEL", "INVITE"]
    assert ep.transaction_count == 0
    assert ep.get_timer() is None or ep.get_timer() > 62.0


def test_timer_c_cancels_an_invite_left_with_provisionals_only() -> None:
    ep = controller()
    trying_only(ep)
    assert ep.get_timer() == 0.05 + 200.0
    ep.handle_timer(200.05)
    assert sent_methods(ep) == ["CANCEL"]
    while (when := ep.get_timer()) is not None and when <= 300.0:
        ep.handle_timer(when)
    assert any(isinstance(e, TransactionTimedOut) and e.request.method == "INVITE"
               for e in events(ep))
    assert ep.transaction_count == 0


def test_timer_c_restarts_with_each_provisional() -> None:
    ep = controller()
    _, request = trying_only(ep)
    ringing = make_response(request, 180, to_tag="c")
    ep.receive_datagram(ringing.serialize(), CARRIER, 150.0)
    ep.handle_timer(200.05)
    assert sent_methods(ep) == []  # restarted at 150
    assert ep.get_timer() == 350.0


def test_the_flow_frees_a_trying_only_call_at_the_ring_timeout() -> None:
    clock = Clock()
    flow = requested_call(clock.now)
    flow.authorized(GRANT, clock.now)
    flow.carrier_progress(100, clock.advance(0.05))
    out = run_timers(flow, clock, 1031.0)
    # CANCEL goes out and the call ends at once: settlement does not wait for the carrier.
    assert kinds(out) == [CancelCarrier, RejectCaller, CallEnded]
    assert flow.state is CallState.ENDED
    assert ended(out).end_at == 1030.0
