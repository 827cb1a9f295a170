"""Two endpoints over a lossy in-memory path: retransmissions recover any few lost messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callcontrol.sip import (
    AckReceived,
    Dialog,
    Endpoint,
    RequestReceived,
    ResponseReceived,
    make_response,
)

from .conftest import UAC_ADDR, UAS_ADDR
from .test_transactions import new_invite


class LossyNet:
    def __init__(self, uac: Endpoint, uas: Endpoint, losses: set[int]) -> None:
        self.uac, self.uas = uac, uas
        self.losses = losses
        self.count = 0

    def pump(self, now: float) -> None:
        for sender, receiver, source in ((self.uac, self.uas, UAC_ADDR),
                                         (self.uas, self.uac, UAS_ADDR)):
            for t in sender.datagrams_to_send():
                self.count += 1
                if self.count in self.losses:
                    continue
                receiver.receive_datagram(t.data, source, now)


@settings(max_examples=120, deadline=None)
@given(st.sets(st.integers(1, 14), max_size=3))
def test_call_survives_lost_messages(losses: set[int]) -> None:
    uac, uas = Endpoint(), Endpoint()
    uac.set_local_address("udp", *UAC_ADDR)
    uas.set_local_address("udp", *UAS_ADDR)
    net = LossyNet(uac, uas, losses)
    invite_tx = uac.send_request(new_invite(), UAS_ADDR, 0.0)
    uac_dialog: Dialog | None = None
    bye_status: int | None = None
    acked = False
    now = 0.0
    while now < 120.0:
        net.pump(now)
        while (event := uas.next_event()) is not None:
            if isinstance(event, RequestReceived) and event.request.method == "INVITE":
                ok = make_response(event.request, 200, to_tag="uas",
                                   headers=[("Contact", "<sip:uas@127.0.0.1:5060>")])
                uas.add_dialog(Dialog.from_uas(event.request, ok))
                uas.send_response(ok, now)
            elif isinstance(event, RequestReceived) and event.request.method == "BYE":
                uas.respond(event.request, 200, now)
                assert event.dialog is not None
                uas.remove_dialog(event.dialog)
            elif isinstance(event, AckReceived):
                acked = True
        while (event := uac.next_event()) is not None:
            assert isinstance(event, ResponseReceived), event
            if event.transaction_id == invite_tx and event.response.status == 200:
                assert uac_dialog is None  # a 2xx retransmission is never reported twice
                uac_dialog = Dialog.from_uac(event.request, event.response)
                uac.send_ack(uac_dialog.create_ack(1), UAS_ADDR, now)
                uac.send_request(uac_dialog.create_request("BYE"), UAS_ADDR, now)
            elif event.request.method == "BYE":
                bye_status = event.response.status
        net.pump(now)
        timers = [t for t in (uac.get_timer(), uas.get_timer()) if t is not None]
        if not timers:
            break
        now = max(now, min(timers))
        uac.handle_timer(now)
        uas.handle_timer(now)
    assert uac_dialog is not None and bye_status == 200
    assert acked  # a lost ACK is re-sent when the 2xx is retransmitted
    assert uac.transaction_count == 0 and uas.transaction_count == 0
