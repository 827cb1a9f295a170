"""End to end with SIPp as the called party: we play a prompt to it over real RTP, it
presses "1" by replaying its shipped RFC 4733 capture (``play_pcap_audio``), and we
detect the key. SIPp echoes the prompt back (``-rtp_echo``) so we also know it
arrived intact."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from ivr import PCMU, DtmfReceived, PlaybackFinished, PortAllocator, PromptCatalogue, RtpEndpoint

SCENARIO = Path(__file__).resolve().parents[2] / "loadtests" / "sipp" / "media_uas.xml"
PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")

pytestmark = pytest.mark.e2e
# SIPp and its sample pcap are part of the test set-up (scripts/test.sh installs
# sip-tester): missing, the run fails.
assert shutil.which("sipp") is not None, "sipp is missing: install sip-tester"
assert PCAP.exists(), f"{PCAP} is missing: install sip-tester"


def free_udp_port(even: bool = False) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not even or (port % 2 == 0 and port < 65534):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port


class SipClient(asyncio.DatagramProtocol):
    """Just enough of a UAC for one call: INVITE with retransmission, ACK, BYE."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        if text.startswith("SIP/2.0"):
            self.responses.put_nowait(text)


def header(msg: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*?)\r?$", msg, re.MULTILINE | re.IGNORECASE)
    assert m, f"no {name} in {msg!r}"
    return m.group(1)


def request(method: str, target: str, local: tuple[str, int], call_id: str, cseq: int,
            to: str, body: str = "") -> bytes:
    lines = [
        f"{method} {target} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        "Max-Forwards: 70",
        f"From: <sip:ivr@{local[0]}>;tag=ivrtest",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:ivr@{local[0]}:{local[1]}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def test_prompt_to_sipp_and_rfc4733_digit_from_its_pcap(tmp_path: Path) -> None:
    sip_port = free_udp_port()
    media_port = free_udp_port(even=True)
    rtp_first = free_udp_port(even=True)
    sipp = subprocess.Popen(
        [
            "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(sip_port),
            "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo",
            "-m", "1", "-nostdin", "-timeout", "40", "-timeout_error", "-trace_err",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        asyncio.run(_call(sip_port, media_port, rtp_first))
        assert sipp.wait(timeout=20) == 0, sipp.stderr.read().decode() if sipp.stderr else ""
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait()


async def _call(sip_port: int, media_port: int, rtp_first: int) -> None:
    loop = asyncio.get_running_loop()
    ports = PortAllocator(rtp_first, rtp_first + 1)
    ep = await RtpEndpoint.open(PCMU, allocator=ports, telephone_event_pt=101)
    transport, sip = await loop.create_datagram_endpoint(SipClient, local_addr=("127.0.0.1", 0))
    local = transport.get_extra_info("sockname")[:2]
    peer = ("127.0.0.1", sip_port)
    call_id = f"{uuid.uuid4().hex}@127.0.0.1"
    target = f"sip:+15125550100@127.0.0.1:{sip_port}"
    to = f"<{target}>"
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {ep.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    )
    try:
        invite = request("INVITE", target, local, call_id, 1, to, sdp)
        answer = None
        for _ in range(40):  # SIPp may still be starting: retransmit like Timer A would
            transport.sendto(invite, peer)
            try:
                answer = await asyncio.wait_for(sip.responses.get(), 0.5)
            except TimeoutError:
                continue
            while not answer.startswith("SIP/2.0 200"):
                answer = await asyncio.wait_for(sip.responses.get(), 5)
            break
        assert answer is not None, "SIPp never answered"
        body = answer.split("\r\n\r\n", 1)[1]
        m_port = int(re.search(r"^m=audio (\d+)", body, re.MULTILINE).group(1))  # type: ignore[union-attr]
        c_addr = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE).group(1)  # type: ignore[union-attr]
        assert (c_addr, m_port) == ("127.0.0.1", media_port)
        ep.configure(codec=PCMU, remote=(c_addr, m_port), telephone_event_pt=101)
        to_tagged = header(answer, "To")
        transport.sendto(request("ACK", target, local, call_id, 1, to_tagged), peer)

        catalogue = PromptCatalogue("en")
        prompt = catalogue.encoded(("opt_accept", "opt_decline"), PCMU)
        ep.play(prompt)
        sent_frames = -(-len(prompt) // 160)

        digits: list[DtmfReceived] = []
        finished = False
        deadline = loop.time() + 20
        while not (digits and finished):
            ev = await asyncio.wait_for(ep.events.get(), max(0.1, deadline - loop.time()))
            if isinstance(ev, DtmfReceived):
                digits.append(ev)
            elif isinstance(ev, PlaybackFinished):
                finished = True
        await asyncio.sleep(0.3)  # the tail of the echo
        assert [(d.digit, d.source) for d in digits] == [("1", "rfc4733")]
        echoed = ep.session.received_by_pt.get(0, 0)
        assert echoed >= 0.9 * sent_frames, (echoed, sent_frames)
        assert ep.session.received_by_pt.get(101, 0) == 10  # the whole capture arrived

        transport.sendto(request("BYE", target, local, call_id, 2, to_tagged), peer)
        bye_answer = await asyncio.wait_for(sip.responses.get(), 5)
        while "BYE" not in header(bye_answer, "CSeq"):
            bye_answer = await asyncio.wait_for(sip.responses.get(), 5)
        assert bye_answer.startswith("SIP/2.0 200")
    finally:
        transport.close()
        ep.close()
    assert ports.in_use == 0
