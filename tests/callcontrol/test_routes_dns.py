"""Gateway names resolved through a real DNS server on loopback (dnspython answers)."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rrset
import pytest

from callcontrol.gateways import GatewayResolver
from callcontrol.routes import Gateway, Target

ZONE = {
    ("_sip._udp.carrier.test.", "SRV"): ["10 60 5070 gw-a.carrier.test.",
                                         "10 0 5071 gw-b.carrier.test.",
                                         "20 0 5072 gw-c.carrier.test."],
    ("gw-a.carrier.test.", "A"): ["127.0.0.31"],
    ("gw-b.carrier.test.", "A"): ["127.0.0.32"],
    ("gw-c.carrier.test.", "A"): ["127.0.0.33"],
    ("gw-c.carrier.test.", "AAAA"): ["::1"],
    ("plain.carrier.test.", "A"): ["127.0.0.40", "127.0.0.41"],
}


class DnsServer:
    """Answers the queries of ``ZONE``, NXDOMAIN for names it does not hold."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            self.queries.append(f"{name} {rdtype}")
            reply = dns.message.make_response(query)
            records = ZONE.get((name, rdtype))
            if records:
                reply.answer.append(dns.rrset.from_text_list(name, 60, "IN", rdtype, records))
            elif not any(key[0] == name for key in ZONE):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), addr)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


async def test_srv_records_in_priority_then_weight_order(dns_server: DnsServer) -> None:
    resolver = GatewayResolver((("127.0.0.1", dns_server.port),), rng=random.Random(1))
    targets = await resolver.resolve(Gateway("srv", "carrier.test"))
    # Priority 10 first (weight 60 beats weight 0 nearly always), then priority 20 (A, AAAA).
    assert targets[2:] == [Target("127.0.0.33", 5072), Target("::1", 5072)]
    assert set(targets[:2]) == {Target("127.0.0.31", 5070), Target("127.0.0.32", 5071)}
    firsts = [(await resolver.resolve(Gateway("srv", "carrier.test")))[0].port
              for _ in range(30)]
    assert firsts.count(5070) > 20
    assert "_sip._udp.carrier.test. SRV" in dns_server.queries


async def test_srv_for_tcp_asks_for_tcp_records(dns_server: DnsServer) -> None:
    resolver = GatewayResolver((("127.0.0.1", dns_server.port),))
    # No _sip._tcp records: the name's own addresses on 5060 (it has none: nothing).
    assert await resolver.resolve(Gateway("t", "carrier.test", transport="tcp")) == []
    assert "_sip._tcp.carrier.test. SRV" in dns_server.queries


async def test_a_name_with_a_port_is_its_a_records(dns_server: DnsServer) -> None:
    resolver = GatewayResolver((("127.0.0.1", dns_server.port),))
    # An RRset has no order: compare as sets.
    assert set(await resolver.resolve(Gateway("p", "plain.carrier.test", 5080))) == {
        Target("127.0.0.40", 5080), Target("127.0.0.41", 5080)}
    # No SRV records: A records on 5060.
    assert set(await resolver.resolve(Gateway("p", "plain.carrier.test"))) == {
        Target("127.0.0.40", 5060), Target("127.0.0.41", 5060)}


async def test_an_ip_needs_no_lookup_and_localhost_is_in_the_hosts_file(
        dns_server: DnsServer) -> None:
    resolver = GatewayResolver((("127.0.0.1", dns_server.port),))
    assert await resolver.resolve(Gateway("ip", "192.0.2.7", 5090)) == [
        Target("192.0.2.7", 5090)]
    assert dns_server.queries == []
    local = await resolver.resolve(Gateway("lo", "localhost", 5090))
    assert Target("127.0.0.1", 5090) in local or Target("::1", 5090) in local


async def test_a_name_nobody_knows_resolves_to_nothing(dns_server: DnsServer) -> None:
    resolver = GatewayResolver((("127.0.0.1", dns_server.port),))
    assert await resolver.resolve(Gateway("x", "nowhere.invalid", 5060)) == []
