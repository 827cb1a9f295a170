"""Interop with SIPp over real loopback sockets: UAC and UAS scenarios, UDP, TCP, IPv6, loss."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcontrol.sip import Endpoint, Trunk, TrunkPolicy, create_offer, start_agent
from callcontrol.sip.answering_agent import AnsweringAgent
from callcontrol.sip.transport import SipTransport

pytestmark = pytest.mark.e2e
# SIPp is part of the test set-up (scripts/test.sh installs sip-tester): missing, it fails.
assert shutil.which("sipp") is not None, "sipp is missing: install sip-tester"

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtests" / "sipp"
_ROW = re.compile(r"^\s+(\S+)\s+(?:<-+|-+>)\s+(?:E-RTD1\s+)?(\d+)\s+(\d+)(.*)$")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    retransmissions: int
    lost: int
    output: str


async def run_sipp(*args: str, timeout: float = 20.0) -> SippResult:
    """Run SIPp (always bounded by -m and -timeout) and read its final statistics."""
    assert "-m" in args and "-timeout" in args
    process = await asyncio.create_subprocess_exec(
        "sipp", *args, "-nostdin", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = out.decode(errors="replace")
    successful = failed = retrans = lost = 0
    for line in text.splitlines():
        if "Successful call" in line:
            successful = int(line.split("|")[2])
        elif "Failed call" in line:
            failed = int(line.split("|")[2])
    # The message table is printed more than once; the last one is final.
    head, _, table = text.rpartition("Messages  Retrans")
    header = head.rsplit("\n", 1)[-1] + "Messages  Retrans" + table.split("\n", 1)[0]
    lost_column = header.find("Lost") - 4
    for line in table.split("\n\n")[0].splitlines()[1:]:
        match = _ROW.match(line)
        if match:
            retrans += int(match.group(3))
            cell = line[lost_column:].strip() if lost_column > 0 else ""
            lost += int(cell) if cell.isdigit() else 0
    return SippResult(process.returncode or 0, successful, failed, retrans, lost, text)


@pytest.fixture
async def agent() -> AsyncIterator[tuple[AnsweringAgent, SipTransport, int]]:
    port = free_port()
    ua, transport = await start_agent("127.0.0.1", udp_port=port, tcp_port=port)
    yield ua, transport, port
    await transport.close()


def uac_args(scenario: str, port: int, calls: int, transport: str = "u1",
             host: str = "127.0.0.1", local: str = "127.0.0.1") -> list[str]:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ["-sf", str(SCENARIOS / scenario), "-s", "15125550100", target, "-t", transport,
            "-i", local, "-p", str(free_port(local)), "-m", str(calls), "-r", "50",
            "-timeout", "15s", "-timeout_error", "-max_recv_loops", "1000"]


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_calls_our_uas(agent: tuple[AnsweringAgent, SipTransport, int],
                                  transport: str) -> None:
    ua, _, port = agent
    result = await run_sipp(*uac_args("core_uac_basic.xml", port, 40, transport))
    assert result.returncode == 0, result.output[-2000:]
    assert (result.successful, result.failed) == (40, 0)
    assert (ua.counters.invites, ua.counters.answered, ua.counters.byes) == (40, 40, 40)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_in_dialog_requests(agent: tuple[AnsweringAgent, SipTransport, int],
                                       transport: str) -> None:
    ua, _, port = agent
    result = await run_sipp(*uac_args("core_uac_dialog.xml", port, 10, transport))
    assert result.returncode == 0, result.output[-2000:]
    assert result.successful == 10
    assert ua.counters.acked == 20  # the INVITE and the re-INVITE of each call


async def test_sipp_bad_offer_gets_488(agent: tuple[AnsweringAgent, SipTransport, int]) -> None:
    ua, _, port = agent
    result = await run_sipp(*uac_args("core_uac_bad_offer.xml", port, 10))
    assert result.returncode == 0, result.output[-2000:]
    assert result.successful == 10 and ua.counters.answered == 0


async def test_sipp_cancel_while_ringing() -> None:
    port = free_port()
    ua, transport = await start_agent("127.0.0.1", udp_port=port, answer_after=5.0)
    try:
        result = await run_sipp(*uac_args("core_uac_cancel.xml", port, 10))
    finally:
        await transport.close()
    assert result.returncode == 0, result.output[-2000:]
    assert result.successful == 10
    assert (ua.counters.cancelled, ua.counters.answered) == (10, 0)


async def test_sipp_lossy_path_recovers_by_retransmission(
        agent: tuple[AnsweringAgent, SipTransport, int]) -> None:
    ua, _, port = agent
    args = uac_args("core_uac_basic.xml", port, 40)
    result = await run_sipp(*args, "-lost", "10", timeout=40.0)
    assert result.returncode == 0, result.output[-2000:]
    assert (result.successful, result.failed) == (40, 0)
    assert result.lost > 0 and result.retransmissions > 0
    assert ua.counters.byes == 40


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_over_ipv6(transport: str) -> None:
    try:
        port = free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    ua, sip = await start_agent("::1", udp_port=port, tcp_port=port)
    try:
        result = await run_sipp(*uac_args("core_uac_basic.xml", port, 10, transport, "::1",
                                          "::1"))
    finally:
        await sip.close()
    assert result.returncode == 0, result.output[-2000:]
    assert result.successful == 10 and ua.counters.byes == 10


async def test_untrusted_sipp_gets_403_only() -> None:
    policy = TrunkPolicy([Trunk.from_config("tx-state-prison", ["127.0.0.11/32"])])
    port = free_port()
    ua, transport = await start_agent("127.0.0.1", udp_port=port,
                                      endpoint=Endpoint(screen=policy))
    try:
        forbidden = await run_sipp(*uac_args("core_uac_forbidden.xml", port, 10,
                                             local="127.0.0.99"))
        trusted = await run_sipp(*uac_args("core_uac_basic.xml", port, 10, local="127.0.0.11"))
    finally:
        await transport.close()
    assert forbidden.returncode == 0, forbidden.output[-2000:]
    assert forbidden.successful == 10
    # Each INVITE and its ACK: the 403 is stateless, so the ACK is screened (and dropped) too.
    assert policy.untrusted["127.0.0.99"] == 20
    assert trusted.returncode == 0, trusted.output[-2000:]
    assert ua.counters.invites == 10  # only the trusted calls reached the agent


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_our_uac_calls_sipp_uas(transport: str) -> None:
    sipp_port = free_port()
    port = free_port()
    ua, sip = await start_agent("127.0.0.1", udp_port=port,
                                tcp_port=port if transport == "tcp" else None)
    calls = 10
    mode = "u1" if transport == "udp" else "t1"
    server = asyncio.create_task(run_sipp(
        "-sf", str(SCENARIOS / "core_uas.xml"), "-t", mode, "-i", "127.0.0.1",
        "-p", str(sipp_port), "-m", str(calls), "-timeout", "15s", "-timeout_error"))
    try:
        await asyncio.sleep(0.5)
        offer = create_offer("127.0.0.1", 30000).serialize()
        results = []
        for _ in range(calls):
            future = ua.place_call(f"sip:+15125550100@127.0.0.1:{sipp_port}",
                                   ("127.0.0.1", sipp_port), transport=transport, body=offer)
            sip.flush()
            results.append(await asyncio.wait_for(future, 10))
        result = await asyncio.wait_for(server, 20)
    finally:
        await sip.close()
    assert results == [200] * calls
    assert result.returncode == 0, result.output[-2000:]
    assert result.successful == calls
    assert ua.counters.calls_completed == calls
