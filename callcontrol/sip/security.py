"""Trunk security policy: who may talk to us (source CIDR, digest), at what INVITE rate.

A sans-IO request screen for `Endpoint(screen=...)`: every new request is
screened before any transaction user sees it, so an untrusted source can get
nothing but 403.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .dialog import new_tag
from .digest import DigestAuthenticator
from .endpoint import DEFAULT_ALLOW, DEFAULT_SUPPORTED, capability_headers
from .events import Address
from .message import Request, Response, make_response

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Trunk id of a trusted SIP proxy's own requests (its probes), never a caller.
PROXY_TRUNK = "proxy"


@dataclass(frozen=True, slots=True)
class Trunk:
    """A facility trunk: trusted source networks and, optionally, digest users."""

    id: str
    networks: tuple[IPNetwork, ...]
    users: Mapping[str, str] = field(default_factory=dict)
    realm: str | None = None
    """Digest realm of this trunk (the policy's default realm when None)."""

    @classmethod
    def from_config(cls, trunk_id: str, cidrs: Iterable[str],
                    users: Mapping[str, str] | None = None, realm: str | None = None) -> Trunk:
        """Build from text; a bad CIDR raises `ValueError` naming it."""
        networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as exc:
                raise ValueError(f"trunk {trunk_id}: bad source network {cidr!r}: {exc}") from None
        if not networks:
            raise ValueError(f"trunk {trunk_id}: no source network")
        return cls(trunk_id, tuple(networks), dict(users or {}), realm)

    @property
    def requires_digest(self) -> bool:
        return bool(self.users)


@dataclass(frozen=True, slots=True)
class Screening:
    """The verdict on one request: pass it on (``trunk_id``), answer it, or drop it."""

    trunk_id: str | None
    response: Response | None = None
    drop: bool = False
    detail: str = ""


class TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class TrunkPolicy:
    """Screens requests by source address, digest credentials and INVITE rate.

    - untrusted source: 403 (ACK dropped), counted per source in ``untrusted``;
    - new INVITE over ``invite_rate`` per second (burst ``invite_burst``) from one
      source: 503 with Retry-After;
    - out-of-dialog OPTIONS from a trusted trunk or proxy: 200 (keep-alive pings),
      503 while ``draining`` (a load balancer's probe then takes the node out);
    - new INVITE on a trunk with users: 401 challenge until digest checks out.

    Behind a SIP proxy (``proxies``: its source networks), a request's trunk is
    found by the address the proxy names in ``source_header`` (the facility's
    real source), never by the proxy's own. That header is trusted only from a
    proxy: from anywhere else it is forged, and the request gets 403.
    """

    def __init__(
        self,
        trunks: Iterable[Trunk],
        *,
        realm: str = "ics",
        authenticator: DigestAuthenticator | None = None,
        invite_rate: float = 100.0,
        invite_burst: float = 200.0,
        retry_after: int = 5,
        allow: Iterable[str] = DEFAULT_ALLOW,
        supported: Iterable[str] = DEFAULT_SUPPORTED,
        proxies: Iterable[str] = (),
        source_header: str = "X-ICS-Source",
    ) -> None:
        self.trunks = list(trunks)
        ids = [t.id for t in self.trunks]
        if len(set(ids)) != len(ids):
            raise ValueError("trunk ids must be unique")
        self.authenticator = authenticator or DigestAuthenticator(realm)
        self._authenticators = {self.authenticator.realm: self.authenticator}
        for trunk in self.trunks:
            if trunk.realm and trunk.realm not in self._authenticators:
                self._authenticators[trunk.realm] = DigestAuthenticator(
                    trunk.realm, secret=self.authenticator.secret,
                    nonce_lifetime=self.authenticator.nonce_lifetime,
                    algorithms=self.authenticator.algorithms)
        self.invite_rate = invite_rate
        self.invite_burst = invite_burst
        self.retry_after = retry_after
        self.capabilities = capability_headers(allow, supported)
        self.untrusted: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.auth_failures: Counter[str] = Counter()
        self._buckets: dict[str, TokenBucket] = {}
        self._cache: dict[str, Trunk | None] = {}
        self.proxies = Trunk.from_config(PROXY_TRUNK, proxies) if proxies else None
        self.source_header = source_header.lower()
        #: The node is shutting down: OPTIONS probes are answered 503.
        self.draining = False
        self.forged: Counter[str] = Counter()
        # Most specific network first, so a /32 inside another trunk's /24 wins.
        self._table = sorted(
            ((net, trunk) for trunk in self.trunks for net in trunk.networks),
            key=lambda item: -item[0].prefixlen,
        )

    #: Per-source counters stop growing past this many sources; the rest count under "*".
    max_tracked_sources = 10_000

    @property
    def untrusted_total(self) -> int:
        return sum(self.untrusted.values())

    def _count(self, counter: Counter[str], host: str) -> None:
        if host not in counter and len(counter) >= self.max_tracked_sources:
            host = "*"
        counter[host] += 1

    def trunk_for(self, host: str) -> Trunk | None:
        """The trunk a source address belongs to, or None."""
        if host in self._cache:
            return self._cache[host]
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        found: Trunk | None = None
        for net, trunk in self._table:
            if ip.version == net.version and ip in net:
                found = trunk
                break
        if len(self._cache) > 65_536:
            self._cache.clear()
        self._cache[host] = found
        return found

    def _through_proxy(self, host: str) -> bool:
        if self.proxies is None:
            return False
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.proxies.networks)

    def screen(self, request: Request, source: Address, now: float) -> Screening:
        host = source[0]
        method = request.method
        named = request.headers.get(self.source_header)
        if self._through_proxy(host):
            if named is None:
                # The proxy's own requests: its probes, and what it relays of a
                # transaction it started (a CANCEL it builds itself).
                if method == "OPTIONS" and request.to_tag is None:
                    return self._ping(request, PROXY_TRUNK)
                if method in ("ACK", "CANCEL"):
                    return Screening(PROXY_TRUNK)
                return Screening(None, self._reject(request, 403, [
                    ("Reason", 'Q.850;cause=21;text="call rejected: no source from the proxy"')]),
                    detail=f"proxy {host} named no source")
            host = named.strip()
        elif named is not None:
            self._count(self.forged, host)
            if method == "ACK":
                return Screening(None, drop=True, detail=f"ACK with a forged source from {host}")
            return Screening(None, self._reject(request, 403, [
                ("Reason", 'Q.850;cause=21;text="call rejected: untrusted source"')]),
                detail=f"forged source header from {host}")
        trunk = self.trunk_for(host)
        if trunk is None:
            self._count(self.untrusted, host)
            if method == "ACK":
                return Screening(None, drop=True, detail=f"ACK from untrusted {host}")
            return Screening(None, self._reject(request, 403, [
                ("Reason", 'Q.850;cause=21;text="call rejected: untrusted source"')]),
                detail=f"untrusted source {host}")
        in_dialog = request.to_tag is not None
        if in_dialog or method in ("ACK", "CANCEL"):
            return Screening(trunk.id)
        if method == "OPTIONS":
            return self._ping(request, trunk.id)
        if method == "INVITE":
            if not self._take_token(host, now):
                self._count(self.rate_limited, host)
                return Screening(
                    trunk.id,
                    self._reject(request, 503, [
                        ("Retry-After", str(self.retry_after)),
                        ("Reason", 'Q.850;cause=42;text="switching equipment congestion"')]),
                    detail=f"INVITE rate limit exceeded by {host}",
                )
            if trunk.requires_digest:
                authenticator = self._authenticators[trunk.realm or self.authenticator.realm]
                outcome = authenticator.verify(request, trunk.users, now)
                if not outcome.ok:
                    if request.headers.get("authorization") is not None:
                        self._count(self.auth_failures, host)
                    challenge = authenticator.challenge_headers(now, stale=outcome.stale)
                    return Screening(trunk.id, self._reject(request, 401, challenge),
                                     detail=f"digest: {outcome.reason}")
        return Screening(trunk.id)

    def _ping(self, request: Request, trunk_id: str) -> Screening:
        if self.draining:
            return Screening(trunk_id, self._reject(request, 503, [
                ("Retry-After", str(self.retry_after)),
                ("Reason", 'Q.850;cause=41;text="node shutting down"')]), detail="draining")
        return Screening(trunk_id, make_response(request, 200, to_tag=new_tag(),
                                                 headers=self.capabilities), detail="ping")

    def _reject(self, request: Request, status: int,
                headers: list[tuple[str, str]] | None = None) -> Response:
        return make_response(request, status, to_tag=new_tag(), headers=headers or ())

    def _take_token(self, host: str, now: float) -> bool:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) > 65_536:
                self._buckets.clear()
            bucket = self._buckets[host] = TokenBucket(self.invite_burst, now)
        else:
            bucket.tokens = min(self.invite_burst,
                                bucket.tokens + max(0.0, now - bucket.stamp) * self.invite_rate)
            bucket.stamp = max(bucket.stamp, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
