"""A facility's INVITE is screened, authorized and dialled in the loop turn that read it.

Every turn of the event loop a call waits for adds that turn's length to the
post-dial delay, tens of milliseconds on a busy node. This counts turns, not
time: it runs on asyncio's own loop, where one ``call_soon`` chain step runs
per turn, before that turn's I/O callbacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

from api.runner import open_account_service
from callcontrol.app import CallController, ControllerSettings, trunks_from_config
from settings.config import load_config

from .conftest import free_port

OFFER = (
    b"v=0\r\no=facility 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    b"m=audio 6070 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def _invite(sip_port: int, facility_port: int) -> bytes:
    lines = [
        f"INVITE sip:+15125550100@127.0.0.1:{sip_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.11:{facility_port};branch=z9hG4bKturn1;rport",
        "Max-Forwards: 70",
        "From: <sip:tx-state-prison@127.0.0.11>;tag=ft1",
        f"To: <sip:+15125550100@127.0.0.1:{sip_port}>",
        "Call-ID: dial-turn@127.0.0.11",
        "CSeq: 1 INVITE",
        f"Contact: <sip:trunk@127.0.0.11:{facility_port}>",
        "X-Inmate-PIN: 100001",
        "Content-Type: application/sdp",
        f"Content-Length: {len(OFFER)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + OFFER


def test_the_carrier_invite_leaves_in_the_turn_that_read_the_facility_invite(
    demo_config: Path,
) -> None:
    async def main() -> None:
        config = load_config(demo_config)
        service = await open_account_service(config)
        carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        carrier.bind(("127.0.0.1", 0))
        carrier.setblocking(False)
        facility = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        facility.bind(("127.0.0.11", 0))
        sip_port = free_port()
        settings = dataclasses.replace(
            ControllerSettings.from_config(config),
            sip_listen=(("udp", "127.0.0.1", sip_port),),
            carrier=carrier.getsockname(),
        )
        controller = CallController(settings, service, trunks_from_config(config))
        await controller.start()
        loop = asyncio.get_running_loop()
        turns = 0

        def count() -> None:
            nonlocal turns
            turns += 1
            loop.call_soon(count)

        heard: asyncio.Future[tuple[bytes, int]] = loop.create_future()

        def on_carrier() -> None:
            data = carrier.recv(65535)
            if not heard.done():
                heard.set_result((data, turns))

        try:
            loop.add_reader(carrier.fileno(), on_carrier)
            # The INVITE is queued on the controller's socket before the loop runs:
            # turn 1 reads it; its carrier INVITE is read here in turn 2 (one task
            # hop on the way would make it turn 3).
            facility.sendto(_invite(sip_port, facility.getsockname()[1]),
                            ("127.0.0.1", sip_port))
            loop.call_soon(count)
            data, turn = await asyncio.wait_for(heard, 10)
            assert data.startswith(b"INVITE sip:+15125550100@"), data[:80]
            assert turn == 2
        finally:
            loop.remove_reader(carrier.fileno())
            controller.draining = True
            for call_id in list(controller.calls):
                await controller.hang_up(call_id, "test over")
            await controller.close()
            await service.store.close()
            carrier.close()
            facility.close()

    asyncio.run(main())
