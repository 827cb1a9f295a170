"""Finding a carrier gateway's addresses in DNS (RFC 3263 4.2, with dnspython).

A gateway given as an IP address is that address. A name with a port is
looked up as A and AAAA records. A name without a port is first looked up as
SIP SRV records for its configured transport (``_sip._udp.NAME``,
``_sip._tcp.NAME``): targets in priority order, weighted within a priority
(RFC 2782), each target's A/AAAA records; with no SRV records, A/AAAA on port
5060. The transport is configured, so NAPTR (RFC 3263 4.1) is not consulted.
A name DNS does not know is tried in the system's hosts file (``localhost``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from .routes import Gateway, Target, weighted_order

log = logging.getLogger("callcontrol.gateways")

SIP_PORT = 5060
_NO_ANSWER = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers)


class GatewayResolver:
    """Resolves gateways; ``servers`` ("IP" or "IP:port") replace the system's resolvers."""

    def __init__(self, servers: tuple[tuple[str, int], ...] = (), *, timeout: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if servers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [host for host, _ in servers]
            resolver.port = servers[0][1]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = timeout
        self.resolver = resolver
        self.rng = rng or random.Random()

    async def resolve(self, gateway: Gateway) -> list[Target]:
        """The gateway's addresses, best first; empty when it cannot be found."""
        transport = gateway.transport
        try:
            ipaddress.ip_address(gateway.host)
        except ValueError:
            pass
        else:
            return [Target(gateway.host, gateway.port or SIP_PORT, transport)]
        try:
            if gateway.port is not None:
                return [Target(ip, gateway.port, transport)
                        for ip in await self.addresses(gateway.host)]
            return await self._srv(gateway.host, transport)
        except dns.exception.DNSException as exc:
            log.warning("gateway %s: %s does not resolve: %s", gateway.name, gateway.host, exc)
            return []

    async def _srv(self, name: str, transport: str) -> list[Target]:
        try:
            answer = await self.resolver.resolve(f"_sip._{transport}.{name}", "SRV")
        except _NO_ANSWER:
            return [Target(ip, SIP_PORT, transport) for ip in await self.addresses(name)]
        records = [r for r in answer if str(r.target) != "."]
        out: list[Target] = []
        for priority in sorted({r.priority for r in records}):
            group = [r for r in records if r.priority == priority]
            keyed = {f"{i}": r for i, r in enumerate(group)}
            for key in weighted_order([(r.weight, k) for k, r in keyed.items()], self.rng):
                record = keyed[key]
                host = str(record.target).rstrip(".")
                out += [Target(ip, record.port, transport) for ip in await self.addresses(host)]
        return out

    async def addresses(self, name: str) -> list[str]:
        """A then AAAA records of ``name``; the hosts file when DNS has neither."""
        found: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = await self.resolver.resolve(name, rdtype)
            except _NO_ANSWER:
                continue
            found += [r.address for r in answer]
        if found:
            return found
        return await _hosts_file(name)


async def _hosts_file(name: str) -> list[str]:
    """``name`` as the system resolves it (for names such as ``localhost``)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            name, None, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    out: list[str] = []
    for _family, _, _, _, sockaddr in infos:
        host = str(sockaddr[0])
        if host not in out:
            out.append(host)
    return out
