"""Load and validate the service configuration: TOML files into typed models.

``load_config(path)`` reads the service file (``configs/demo.toml``), the
facility files its ``facilities`` glob names, each facility's tariff and the
regulation tables its ``regulation`` glob names, and returns one immutable
``ServiceConfig``. Any problem raises ``ConfigError`` naming the file, the
field path and the reason; nothing is returned half-loaded.

Relative paths are relative to the file that holds them. Money is written as
decimal strings ("0.0600"): a TOML float is refused, so no rate is ever
rounded on the way in.
"""

from __future__ import annotations

import glob
import ipaddress
import itertools
import re
import tomllib
from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rating import (
    AncillaryFee,
    AncillaryKind,
    AncillaryTrigger,
    CapSchedule,
    CapTable,
    CapTier,
    DateRange,
    FacilityKind,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    RatedFacility,
    Surcharge,
    Tariff,
)
from rating.money import parse_money, pct_to_scaled, to_units

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path("configs") / "demo.toml"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


def default_config_path() -> Path:
    """``configs/demo.toml`` in the current directory, else the repository's."""
    local = Path.cwd() / DEFAULT_CONFIG
    return local if local.exists() else REPO_ROOT / DEFAULT_CONFIG


# -- field types -----------------------------------------------------------


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


def _rate_units(value: object) -> int:
    return to_units(parse_money(value, places=4, field="rate"), places=4, field="rate")


def _money(value: object) -> Decimal:
    return parse_money(value, places=2, field="amount")


def _percent(value: object) -> int:
    if isinstance(value, float | bool):
        raise ValueError(f"a percentage must be a decimal string, not {value!r}")
    return pct_to_scaled(parse_money(value, places=4, field="percent"))


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone") from None
    return value


def _state(value: str) -> str:
    if len(value) != 2 or not value.isalpha() or not value.isupper():
        raise ValueError(f"{value!r} is not a two-letter upper-case state code")
    return value


RelPath = Annotated[Path, AfterValidator(_resolve_path)]
#: A per-minute rate or unit price, as integer money units (4 places).
RateUnits = Annotated[int, BeforeValidator(_rate_units)]
#: An amount of money moved (2 places).
Money = Annotated[Decimal, BeforeValidator(_money)]
#: A percentage as integer millionths of the base ("8.25" -> 82,500).
PercentScaled = Annotated[int, BeforeValidator(_percent)]
TimeZoneName = Annotated[str, AfterValidator(_zone)]
StateCode = Annotated[str, AfterValidator(_state)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- service sections ------------------------------------------------------


class SipConfig(_Model):
    listen: list[str] = Field(default_factory=lambda: ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"])
    carrier_gateway: str = "127.0.0.1:5090"
    #: On SIGINT/SIGTERM, calls in progress may finish for this long before BYE.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    #: A carrier gateway that sends no response at all to an INVITE this long is given
    #: up: the call moves to the next gateway, or fails (503) when none is left.
    carrier_response_timeout_seconds: float = Field(default=8.0, gt=0, le=64)
    #: RFC 4028 session interval asked of both legs; 0 runs a timer only where a peer asks.
    session_expires_seconds: int = Field(default=0, ge=0)
    #: The smallest session interval accepted: a smaller Session-Expires gets 422.
    #: RFC 4028 puts the floor at 90 s; shorter ones are for tests.
    min_se_seconds: int = Field(default=90, ge=1)

    @field_validator("listen")
    @classmethod
    def _transports(cls, value: list[str]) -> list[str]:
        for item in value:
            transport, _, hostport = item.partition(":")
            host, _, port = hostport.rpartition(":")
            if transport not in ("udp", "tcp") or not host or not port.isdigit():
                raise ValueError(f"{item!r} is not 'udp:HOST:PORT' or 'tcp:HOST:PORT'")
        return value


def split_host_port(address: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port or None).

    A bare IPv6 address (several colons, no brackets) has no port. ``ValueError``
    names what is wrong.
    """
    text = address.strip()
    if not text:
        raise ValueError("an address needs a host")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{address!r} is not [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"{address!r} has no host")
    if ":" in host or text.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{address!r}: {host!r} is not an IPv6 address") from None
    elif not re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?", host):
        raise ValueError(f"{address!r}: {host!r} is not a host name or IP address")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{address!r}: port must be 1-65535")
    return host, int(port_text)


class GatewayConfig(_Model):
    """One carrier gateway (``[[carrier.gateways]]``).

    ``address`` is an IP address or a host name, with or without a port. A
    name without a port is looked up as SIP SRV records for the transport
    (RFC 3263: ``_sip._udp.NAME``), and as A/AAAA records on port 5060 when
    it has none; a name with a port as A/AAAA records.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    address: str
    transport: Literal["udp", "tcp"] = "udp"
    #: Lower is tried first; gateways of one priority share calls by ``weight``.
    priority: int = Field(default=10, ge=0, le=65535)
    weight: int = Field(default=1, ge=0, le=65535)
    #: Calls this gateway may carry at once (no limit when absent).
    max_calls: int | None = Field(default=None, ge=1)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @property
    def host(self) -> str:
        return split_host_port(self.address)[0]

    @property
    def port(self) -> int | None:
        return split_host_port(self.address)[1]


class CarrierConfig(_Model):
    """Carrier routes: the gateways calls are placed through, and how they are watched.

    Without ``gateways`` the one gateway is ``sip.carrier_gateway``.
    """

    gateways: list[GatewayConfig] = Field(default_factory=list)
    #: OPTIONS to every gateway this often (0: no keep-alive, every gateway counts as up).
    keepalive_interval_seconds: float = Field(default=0.0, ge=0)
    #: An OPTIONS unanswered this long counts as a failure.
    keepalive_timeout_seconds: float = Field(default=2.0, gt=0, le=32)
    #: Consecutive failed keep-alives that mark a gateway down (one answer marks it up).
    keepalive_failures: int = Field(default=3, ge=1, le=100)
    #: DNS servers ("IP" or "IP:port") for gateway names; the system's when empty.
    dns_servers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _gateways(self) -> CarrierConfig:
        check_gateways(self.gateways)
        for server in self.dns_servers:
            host, _ = split_host_port(server)
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"dns_servers: {server!r} is not an IP address") from None
        if 0 < self.keepalive_interval_seconds < self.keepalive_timeout_seconds:
            raise ValueError("keepalive_interval_seconds must not be shorter than "
                             "keepalive_timeout_seconds")
        return self


def check_gateways(gateways: list[GatewayConfig]) -> None:
    """Gateway names are unique, and no two gateways share an address and transport."""
    names: set[str] = set()
    places: dict[tuple[str, int | None, str], str] = {}
    for gw in gateways:
        if gw.name in names:
            raise ValueError(f"gateways: the name {gw.name!r} is used twice")
        names.add(gw.name)
        place = (gw.host.lower(), gw.port, gw.transport)
        if place in places:
            raise ValueError(f"gateways: {gw.name!r} has the address of {places[place]!r} "
                             f"({gw.address}, {gw.transport})")
        places[place] = gw.name
    if gateways and all(gw.weight == 0 for gw in gateways):
        raise ValueError("gateways: every weight is 0, so no gateway would get a call")


class HttpConfig(_Model):
    listen: str = "127.0.0.1:8080"


class StoreConfig(_Model):
    kind: Literal["sqlite", "redis"] = "sqlite"
    path: RelPath = Field(default=Path("var/ics.sqlite3"), validate_default=True)
    url: str = "redis://127.0.0.1:6379/0"
    #: Redis Cluster: "host:port" of some masters; when given, ``url`` is not used.
    cluster_nodes: list[str] = Field(default_factory=list)
    #: Key prefix, so several deployments (or tests) can share one Redis.
    prefix: str = Field(default="ics", min_length=1, pattern=r"^[^{}]+$")
    #: Settlements a node could not hand to Redis wait here until it answers again.
    journal_path: RelPath = Field(
        default=Path("var/settlement-journal.sqlite3"), validate_default=True
    )
    #: Redis: days a settled or released reservation and its id claims are kept.
    finished_call_ttl_days: int = Field(default=35, ge=1)

    @field_validator("cluster_nodes")
    @classmethod
    def _host_port(cls, nodes: list[str]) -> list[str]:
        for node in nodes:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"cluster node {node!r} is not host:port")
        return nodes


class NodeConfig(_Model):
    """This ``ics serve`` node among several on a Redis store (the ``[node]`` table).

    The node holds a lease in Redis, renewed every ``lease_renew_seconds``; when
    it has not renewed for ``lease_ttl_seconds`` the lease expires and a
    surviving node adopts its open calls. ``id`` defaults to host:port of the
    node's first SIP address.
    """

    id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[^{}\s]+$")
    lease_renew_seconds: float = Field(default=3.0, gt=0, le=30)
    lease_ttl_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> NodeConfig:
        if self.lease_ttl_seconds < 2 * self.lease_renew_seconds:
            raise ValueError(
                f"lease_ttl_seconds ({self.lease_ttl_seconds:g}) must be at least twice"
                f" lease_renew_seconds ({self.lease_renew_seconds:g}), or one late renewal"
                " makes the node look dead"
            )
        return self


class MediaConfig(_Model):
    rtp_port_min: int = Field(default=20000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20999, ge=1024, le=65535)
    recordings_dir: RelPath = Field(default=Path("var/recordings"), validate_default=True)
    #: Local address RTP is bound to and announced in SDP.
    host: str = "127.0.0.1"
    #: A connected call whose party sends no RTP for this long is ended.
    inactivity_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Acceptance prompt: silence after the options, and how many times they are played.
    menu_choice_timeout_seconds: float = Field(default=6.0, gt=0, le=60)
    menu_attempts: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _port_range(self) -> MediaConfig:
        if self.rtp_port_min > self.rtp_port_max:
            raise ValueError("rtp_port_min must not exceed rtp_port_max")
        return self


class AdminToken(_Model):
    token: str = Field(min_length=8)
    role: Literal["admin", "finance", "facility"]
    facilities: list[str] = Field(default_factory=list)


class SmtpConfig(_Model):
    """The mail relay family alerts go through, and what their links point at."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    #: "starttls" upgrades a plain connection; "tls" connects with TLS; "none" for a
    #: relay on loopback only.
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    sender: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    #: The address families reach the pages at, for the links in the mail.
    public_url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    #: Key that signs unsubscribe links; keep it secret and stable across restarts.
    link_secret: str = Field(min_length=16)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: How often balances and refunds are checked for alerts.
    check_interval_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _security(self) -> SmtpConfig:
        if self.security == "none" and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("security = \"none\" is allowed only for a relay on loopback")
        if bool(self.username) != bool(self.password):
            raise ValueError("give both username and password, or neither")
        return self


class AccountsConfig(_Model):
    deposit_min: Money = Decimal("0.01")
    deposit_max: Money = Decimal("300.00")
    closure_hold_days: int = Field(default=7, ge=0)
    inactivity_flag_days: int = Field(default=180, ge=1)
    refund_review_threshold: Money = Decimal("100.00")
    direct_bill_initial_limit: Money = Decimal("30.00")
    direct_bill_raised_limit: Money = Decimal("50.00")
    direct_bill_on_time_days: int = Field(default=90, ge=1)
    #: A node that dies costs its callers at most this much talk (its calls are
    #: settled from the last heartbeat), so it is never more than 15 s.
    heartbeat_seconds: int = Field(default=15, ge=1, le=15)

    @model_validator(mode="after")
    def _ranges(self) -> AccountsConfig:
        if not Decimal(0) < self.deposit_min <= self.deposit_max:
            raise ValueError("need 0 < deposit_min <= deposit_max")
        if self.direct_bill_initial_limit > self.direct_bill_raised_limit:
            raise ValueError("direct_bill_initial_limit must not exceed direct_bill_raised_limit")
        return self


# -- tariff file -----------------------------------------------------------


class JurisdictionRates(_Model):
    local: RateUnits
    intrastate: RateUnits
    interstate: RateUnits
    international: RateUnits


class ChargeConfig(_Model):
    """A tax, pass-through fee or facility add-on: exactly one of the three bases."""

    name: str = Field(min_length=1)
    category: Literal["mandatory_tax", "authorized_fee", "facility_add_on"]
    percent: PercentScaled | None = None
    per_call: RateUnits | None = None
    per_minute: RateUnits | None = None
    products: list[Product] = Field(default_factory=list)
    jurisdictions: list[Jurisdiction] = Field(default_factory=list)
    allowed_from: date | None = None
    allowed_until: date | None = None
    source: str = ""

    @model_validator(mode="after")
    def _one_basis(self) -> ChargeConfig:
        given = [b for b in ("percent", "per_call", "per_minute") if getattr(self, b) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of percent, per_call, per_minute")
        if self.category == "facility_add_on" and given[0] != "per_minute":
            raise ValueError("a facility add-on is charged per_minute")
        _check_dates(self.allowed_from, self.allowed_until)
        return self

    def build(self) -> Surcharge:
        basis = FeeBasis.PERCENT if self.percent is not None else (
            FeeBasis.PER_CALL if self.per_call is not None else FeeBasis.PER_MINUTE
        )
        value = next(v for v in (self.percent, self.per_call, self.per_minute) if v is not None)
        return Surcharge(
            name=self.name,
            category=FeeCategory(self.category),
            basis=basis,
            value=value,
            products=frozenset(self.products),
            jurisdictions=frozenset(self.jurisdictions),
            allowed=DateRange(self.allowed_from, self.allowed_until),
        )


def _check_dates(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError("allowed_until is before allowed_from")


class AncillaryFeeConfig(_Model):
    name: str = Field(min_length=1)
    kind: AncillaryKind
    charged_on: AncillaryTrigger
    amount: RateUnits
    allowed_from: date | None = None
    allowed_until: date | None = None
    products: list[Product] = Field(default_factory=list)
    source: str = ""

    @model_validator(mode="after")
    def _dates(self) -> AncillaryFeeConfig:
        _check_dates(self.allowed_from, self.allowed_until)
        return self

    def build(self) -> AncillaryFee:
        return AncillaryFee(
            name=self.name,
            kind=self.kind,
            trigger=self.charged_on,
            amount=self.amount,
            allowed=DateRange(self.allowed_from, self.allowed_until),
            products=frozenset(self.products),
        )


def _local_prefix(value: str) -> str:
    if not value.isdigit() or len(value) not in (3, 6):
        raise ValueError(f"{value!r} is not an area code (3 digits) or area code + exchange (6)")
    return value


class TariffConfig(_Model):
    """The TOML form of a tariff (``configs/tariffs/*.toml``)."""

    name: str = Field(min_length=1)
    increment_seconds: Literal[1, 6, 30, 60] = 60
    local_exchanges: list[Annotated[str, AfterValidator(_local_prefix)]] = Field(
        default_factory=list
    )
    rates: dict[Product, JurisdictionRates]
    international_termination: dict[str, RateUnits] = Field(default_factory=dict)
    charges: list[ChargeConfig] = Field(default_factory=list)
    ancillary_fees: list[AncillaryFeeConfig] = Field(default_factory=list)
    source: str = ""

    @field_validator("rates")
    @classmethod
    def _some_product(cls, value: dict[Product, JurisdictionRates]) -> Any:
        if not value:
            raise ValueError("a tariff must rate at least one product")
        return value

    @field_validator("international_termination")
    @classmethod
    def _regions(cls, value: dict[str, int]) -> dict[str, int]:
        for key in value:
            if key != "*" and (len(key) != 2 or not key.isupper()):
                raise ValueError(f"{key!r} is not an ISO region code (e.g. 'MX') or '*'")
        return value

    def build(self) -> Tariff:
        return Tariff(
            name=self.name,
            increment_seconds=self.increment_seconds,
            rates={
                product: {j: getattr(r, str(j)) for j in Jurisdiction}
                for product, r in self.rates.items()
            },
            surcharges=tuple(c.build() for c in self.charges),
            ancillary_fees=tuple(f.build() for f in self.ancillary_fees),
            international_termination=dict(self.international_termination),
            local_prefixes=tuple(self.local_exchanges),
        )


# -- regulation file -------------------------------------------------------


class CapTierConfig(_Model):
    label: str = Field(min_length=1)
    kind: FacilityKind
    min_adp: int = Field(default=0, ge=0)
    max_adp: int | None = Field(default=None, ge=0)
    cap: RateUnits
    add_on_max: RateUnits = 0

    def build(self) -> CapTier:
        return CapTier(self.label, self.kind, self.min_adp, self.max_adp, self.cap, self.add_on_max)


class CapTableConfig(_Model):
    """The TOML form of one order's cap table (``configs/regulation/*.toml``)."""

    name: str = Field(min_length=1)
    order: str = ""
    source: str = Field(min_length=1)
    effective_from: date
    jurisdictions: list[Jurisdiction] = Field(min_length=1)
    ancillary_banned: bool = False
    ancillary_limits: dict[AncillaryKind, RateUnits] = Field(default_factory=dict)
    verification: str = ""
    notes: str = ""
    tiers: list[CapTierConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers_disjoint(self) -> CapTableConfig:
        for kind in FacilityKind:
            bands = sorted(
                (t.min_adp, t.max_adp) for t in self.tiers if t.kind is kind
            )
            for (_, hi), (lo2, _) in itertools.pairwise(bands):
                if hi is None or hi >= lo2:
                    raise ValueError(f"tiers for {kind} overlap")
            for lo, hi in bands:
                if hi is not None and hi < lo:
                    raise ValueError(f"a {kind} tier has max_adp below min_adp")
        return self

    def build(self) -> CapTable:
        return CapTable(
            name=self.name,
            source=self.source,
            effective_from=self.effective_from,
            jurisdictions=frozenset(self.jurisdictions),
            tiers=tuple(t.build() for t in self.tiers),
            ancillary_banned=self.ancillary_banned,
            ancillary_limits=dict(self.ancillary_limits),
            notes=self.notes,
        )


# -- facility file ---------------------------------------------------------


class CallingHours(_Model):
    """A window in the facility's time zone when calls may be placed."""

    days: list[Day] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _order(self) -> CallingHours:
        if self.end <= self.start:
            raise ValueError("end must be after start (split an overnight window in two)")
        return self


class DigestCredentials(_Model):
    realm: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from None
    return value


PinEntry = Literal["header", "menu"]


class TrunkConfig(_Model):
    """A facility trunk, trusted by its source addresses.

    ``pin_entry`` says how a call on it names the person: ``"header"``, the
    facility's system sends ``X-Inmate-PIN`` and the dialled number in the
    Request-URI; ``"menu"``, the phone sends a plain INVITE and the caller
    keys language, PIN and number in the controller's voice menu.
    """

    sources: list[Annotated[str, AfterValidator(_network)]] = Field(min_length=1)
    digest: DigestCredentials | None = None
    pin_entry: PinEntry = "header"

    @property
    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(s, strict=False) for s in self.sources]


class ProxyConfig(_Model):
    """A SIP proxy in front of the nodes (the ``[proxy]`` table), e.g. Kamailio.

    Requests from ``sources`` are screened by the facility address the proxy
    puts in ``source_header``; that header from any other source is refused.
    """

    sources: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)
    source_header: str = Field(default="X-ICS-Source", pattern=r"^[A-Za-z0-9-]+$")


def _check_proxy(proxy: ProxyConfig, facilities: dict[str, FacilityConfig], path: Path) -> None:
    """A proxy's address is never also a facility trunk's: it would pass as the facility."""
    proxies = [ipaddress.ip_network(s, strict=False) for s in proxy.sources]
    for facility in facilities.values():
        for trunk in facility.trunks:
            for net in trunk.networks:
                if any(net.version == p.version and net.overlaps(p) for p in proxies):
                    raise ConfigError(
                        f"{path}: proxy: source {net} is also a trunk source of {facility.id}"
                    )


class PinLockConfig(_Model):
    """PIN guessing: ``failures`` wrong PINs from one station within ``window_minutes``
    lock that station's PIN entry for ``lock_minutes``."""

    failures: int = Field(default=5, ge=1, le=100)
    window_minutes: int = Field(default=10, ge=1, le=24 * 60)
    lock_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)


MenuLanguage = Literal["en", "es"]
#: The languages the shipped prompts speak (ivr/prompts/<lang>).
MENU_LANGUAGES: tuple[MenuLanguage, ...] = ("en", "es")


class CallerMenuConfig(_Model):
    """The voice menu of the facility's menu trunks (``[menu]`` in the facility file).

    ``languages`` are offered in this order (one language: no offer, and it is
    the menu's language until the person's own is known). ``pin_length``, when
    set, ends PIN entry at that many digits (else the caller presses #).
    """

    languages: list[MenuLanguage] = Field(default_factory=lambda: list(MENU_LANGUAGES),
                                          min_length=1)
    pin_length: int | None = Field(default=None, ge=4, le=12)
    limit_seconds: float = Field(default=90.0, gt=0, le=600)
    interdigit_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    no_input_timeout_seconds: float = Field(default=8.0, gt=0, le=60)
    tries: int = Field(default=3, ge=1, le=10)
    pin_lock: PinLockConfig = Field(default_factory=PinLockConfig)

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, value: list[MenuLanguage]) -> list[MenuLanguage]:
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return value


ThreeWayPolicy = Literal["flag", "warn", "disconnect"]


class ThreeWaySensitivityConfig(_Model):
    """``[three_way_sensitivity]`` in a facility file: thresholds of the three-way call
    detector (``ivr.threeway.Sensitivity``); a key left out keeps the detector's default,
    the one that meets the figures in BENCHMARKS.md."""

    tone_min_dbm0: float | None = Field(default=None, ge=-50, le=-10)
    tone_share: float | None = Field(default=None, gt=0.3, le=1)
    dial_tone_seconds: float | None = Field(default=None, ge=0.2, le=5)
    ringback_min_seconds: float | None = Field(default=None, gt=0, le=5)
    ringback_max_seconds: float | None = Field(default=None, gt=0, le=6)
    flash_min_seconds: float | None = Field(default=None, gt=0, le=2)
    flash_max_seconds: float | None = Field(default=None, gt=0, le=3)
    gap_max_dbm0: float | None = Field(default=None, ge=-90, le=-30)
    click_min_dbm0: float | None = Field(default=None, ge=-60, le=0)
    masking_min_dbm0: float | None = Field(default=None, ge=-60, le=0)
    masking_seconds: float | None = Field(default=None, gt=0, le=10)
    dialling_digits: int | None = Field(default=None, ge=1, le=20)
    follow_seconds: float | None = Field(default=None, gt=0, le=60)

    @model_validator(mode="after")
    def _ranges(self) -> ThreeWaySensitivityConfig:
        return check_three_way_ranges(self)

    def settings(self) -> dict[str, float]:
        """The keys given, for ``ivr.threeway.Sensitivity(**...)``."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


#: The detector's defaults for the bounds a facility may set one side of.
_THREE_WAY_DEFAULT_RANGES = {"ringback": (1.5, 2.6), "flash": (0.18, 0.85)}


def check_three_way_ranges(config: ThreeWaySensitivityConfig) -> ThreeWaySensitivityConfig:
    """A facility's three-way ranges must stay ranges, with the detector's default for a
    bound it leaves out."""
    for name, (low_default, high_default) in _THREE_WAY_DEFAULT_RANGES.items():
        low = getattr(config, f"{name}_min_seconds")
        high = getattr(config, f"{name}_max_seconds")
        low = low_default if low is None else low
        high = high_default if high is None else high
        if low >= high:
            raise ValueError(f"{name}_min_seconds ({low}) must be below "
                             f"{name}_max_seconds ({high})")
    return config


DEFAULT_FUNDING_ORDER = [
    Product.SUBSCRIPTION,
    Product.DEBIT,
    Product.ADVANCE_CONNECT,
    Product.DIRECT_BILL,
    Product.SINGLE_CALL,
]


class FacilityConfig(_Model):
    """A facility file (``configs/facilities/*.toml``).

    ``name`` is spoken in the call prompt. ``calling_hours`` are windows in
    the facility's ``timezone`` when calls may be placed; an empty list
    means no restriction by hours. ``funding_order`` is the order in which
    payers are tried. ``rated`` is the facility as the rating engine sees it.
    ``trunks`` are the facility's trunks, from one ``[trunk]`` table or
    several ``[[trunk]]`` entries (no source may be in two trunks);
    ``menu`` configures the voice menu of its ``pin_entry = "menu"`` trunks.
    """

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    kind: FacilityKind
    state: StateCode
    average_daily_population: int = Field(ge=0)
    timezone: TimeZoneName
    tariff: RelPath
    max_call_minutes: int = Field(ge=1, le=240)
    ring_timeout_seconds: int = Field(default=30, ge=5, le=300)
    #: Calls of this facility placed at once (screening to hang-up); none: no limit.
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    refund_window_days: int = Field(default=180, ge=0)
    allowed_list_required: bool = False
    single_call_allowed: bool = True
    funding_order: list[Product] = Field(default_factory=lambda: list(DEFAULT_FUNDING_ORDER))
    calling_hours: list[CallingHours] = Field(default_factory=list)
    # A facility file has either one ``[trunk]`` table or several ``[[trunk]]``
    # entries; the entries are validated as ``trunks`` so errors say which.
    trunk_table: TrunkConfig | None = Field(default=None, alias="trunk")
    trunk_entries: list[TrunkConfig] = Field(default_factory=list, alias="trunks")
    menu: CallerMenuConfig = Field(default_factory=CallerMenuConfig)
    #: What a call that sounds like a three-way call gets: flagged in its CDR, a
    #: spoken warning as well, or the warning and the end of the call.
    three_way_policy: ThreeWayPolicy = "flag"
    three_way_sensitivity: ThreeWaySensitivityConfig = Field(
        default_factory=ThreeWaySensitivityConfig)

    _tariff: TariffConfig = PrivateAttr()
    _rated: RatedFacility = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _trunk_forms(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "trunks" in data:
                raise ValueError("write [trunk] or [[trunk]], not trunks")
            if isinstance(data.get("trunk"), list):
                data = {**data, "trunks": data["trunk"]}
                del data["trunk"]
        return data

    @model_validator(mode="after")
    def _some_trunk(self) -> FacilityConfig:
        if self.trunk_table is None and not self.trunk_entries:
            raise ValueError("a facility needs a [trunk] table or [[trunk]] entries")
        return self

    @property
    def trunks(self) -> tuple[TrunkConfig, ...]:
        """Every trunk of the facility, in file order."""
        if self.trunk_table is not None:
            return (self.trunk_table,)
        return tuple(self.trunk_entries)

    @property
    def trunk(self) -> TrunkConfig:
        """The facility's first trunk: all of it for a facility with one ``[trunk]``.

        Code written before facilities had several trunks reads this; code that
        serves every trunk (and menu trunks) reads ``trunks``.
        """
        return self.trunks[0]

    def calling_windows_on(self, day: Day) -> list[tuple[time, time]]:
        """The calling-hours windows of ``day`` in start order (what the caller's
        menu says when it refuses a call outside them)."""
        return sorted((h.start, h.end) for h in self.calling_hours if day in h.days)

    def trunk_for(self, address: str) -> TrunkConfig | None:
        """The trunk whose sources contain ``address``, if any."""
        ip = ipaddress.ip_address(address)
        return next((t for t in self.trunks if any(ip in n for n in t.networks)), None)

    @field_validator("funding_order")
    @classmethod
    def _distinct(cls, value: list[Product]) -> list[Product]:
        if len(set(value)) != len(value):
            raise ValueError("a product is listed twice")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def tariff_config(self) -> TariffConfig:
        return self._tariff

    @property
    def rated(self) -> RatedFacility:
        """The facility as the rating engine sees it."""
        return self._rated


# -- service file ----------------------------------------------------------


class ServiceFile(_Model):
    """The TOML form of the service file (``configs/demo.toml``)."""

    data_dir: RelPath = Field(default=Path("var"), validate_default=True)
    facilities: list[str] = Field(default_factory=lambda: ["facilities/*.toml"])
    regulation: list[str] = Field(default_factory=lambda: ["regulation/*.toml"])
    sip: SipConfig = Field(default_factory=SipConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    node: NodeConfig = Field(default_factory=NodeConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    carrier: CarrierConfig = Field(default_factory=CarrierConfig)
    admin_tokens: list[AdminToken] = Field(default_factory=list)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)
    smtp: SmtpConfig | None = None

    @field_validator("facilities", "regulation", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class ServiceConfig(_Model):
    """Everything the service needs, validated. Build it with ``load_config``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    path: Path
    data_dir: Path
    sip: SipConfig
    http: HttpConfig
    store: StoreConfig
    node: NodeConfig
    proxy: ProxyConfig
    media: MediaConfig
    carrier: CarrierConfig
    admin_tokens: list[AdminToken]
    accounts: AccountsConfig
    facilities: dict[str, FacilityConfig]
    smtp: SmtpConfig | None = None
    regulation: CapSchedule
    regulation_files: list[Path]

    def facility(self, facility_id: str) -> FacilityConfig:
        """The facility with this id; ``KeyError`` naming the known ids if none."""
        try:
            return self.facilities[facility_id]
        except KeyError:
            known = ", ".join(sorted(self.facilities)) or "none"
            raise KeyError(f"unknown facility {facility_id!r} (known: {known})") from None

    def facility_for_source(self, address: str) -> FacilityConfig | None:
        """The facility one of whose trunks' sources contain ``address``, if any."""
        found = self.trunk_for_source(address)
        return found[0] if found else None

    def trunk_for_source(self, address: str) -> tuple[FacilityConfig, TrunkConfig] | None:
        """The facility and trunk whose sources contain ``address``, if any."""
        for facility in self.facilities.values():
            trunk = facility.trunk_for(address)
            if trunk is not None:
                return facility, trunk
        return None


# -- loading ---------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _describe(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{path}: {loc}: {msg}")
    return "\n".join(lines)


def _validate(model: type[_M], path: Path, data: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None


def _expand(base: Path, patterns: list[str], field: str, source: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(Path(p).resolve() for p in glob.glob(full))
        if not matches:
            raise ConfigError(f"{source}: {field}: {pattern!r} matches no file")
        found.extend(m for m in matches if m not in found)
    return found


def load_tariff(path: Path) -> tuple[TariffConfig, Tariff]:
    """One tariff file, validated; ``ConfigError`` names the file and field."""
    model = _validate(TariffConfig, path, _read_toml(path))
    try:
        return model, model.build()
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_regulation(paths: list[Path]) -> CapSchedule:
    """The cap tables of ``paths`` as one schedule."""
    tables = [(_validate(CapTableConfig, p, _read_toml(p)), p) for p in paths]
    tables.sort(key=lambda item: item[0].effective_from)
    for (a, pa), (b, pb) in itertools.pairwise(tables):
        if a.effective_from == b.effective_from:
            raise ConfigError(
                f"{pb}: effective_from: {b.effective_from} is also the effective date of {pa}"
            )
    return CapSchedule(tuple(t.build() for t, _ in tables))


def load_config(path: str | Path) -> ServiceConfig:
    """Load the service file at ``path`` and everything it includes."""
    path = Path(path).resolve()
    service = _validate(ServiceFile, path, _read_toml(path))
    base = path.parent
    regulation_files = _expand(base, service.regulation, "regulation", path)
    schedule = load_regulation(regulation_files)
    facilities: dict[str, FacilityConfig] = {}
    origin: dict[str, Path] = {}
    for file in _expand(base, service.facilities, "facilities", path):
        facility = _validate(FacilityConfig, file, _read_toml(file))
        if facility.id in facilities:
            raise ConfigError(
                f"{file}: id: {facility.id!r} is already defined in {origin[facility.id]}"
            )
        tariff_model, tariff = load_tariff(facility.tariff)
        try:
            rated = RatedFacility(
                id=facility.id,
                name=facility.name,
                kind=facility.kind,
                state=facility.state,
                average_daily_population=facility.average_daily_population,
                tariff=tariff,
                regulation=schedule,
                max_call_seconds=facility.max_call_minutes * 60,
                single_call_allowed=facility.single_call_allowed,
            )
        except ValueError as exc:
            raise ConfigError(f"{file}: {exc}") from None
        facility._tariff = tariff_model
        facility._rated = rated
        for product in facility.funding_order:
            if product not in tariff.rates:
                raise ConfigError(
                    f"{file}: funding_order: product {product} has no rates in {facility.tariff}"
                )
        facilities[facility.id] = facility
        origin[facility.id] = file
    _check_trunks(facilities, origin)
    _check_proxy(service.proxy, facilities, path)
    for token in service.admin_tokens:
        for fid in token.facilities:
            if fid not in facilities:
                raise ConfigError(f"{path}: admin_tokens: unknown facility {fid!r}")
    return ServiceConfig(
        path=path,
        data_dir=service.data_dir,
        sip=service.sip,
        http=service.http,
        store=service.store,
        node=service.node,
        proxy=service.proxy,
        media=service.media,
        carrier=service.carrier,
        admin_tokens=service.admin_tokens,
        accounts=service.accounts,
        facilities=facilities,
        smtp=service.smtp,
        regulation=schedule,
        regulation_files=regulation_files,
    )


def _trunk_field(facility: FacilityConfig, index: int) -> str:
    """Where a trunk is in its file, as validation errors name it."""
    return "trunk" if facility.trunk_table is not None else f"trunks.{index}"


def _check_trunks(facilities: dict[str, FacilityConfig], origin: dict[str, Path]) -> None:
    """Trunks are identified by source address, so no two trunks (of any facility,
    or of one) may share one."""
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str]] = []
    for fid, facility in facilities.items():
        for index, trunk in enumerate(facility.trunks):
            field = _trunk_field(facility, index)
            for net in trunk.networks:
                for other_net, other, other_field in seen:
                    if net.version == other_net.version and net.overlaps(other_net):
                        where = "" if other == fid else f" of facility {other!r}"
                        raise ConfigError(
                            f"{origin[fid]}: {field}.sources: {net} overlaps {other_net} "
                            f"({other_field}.sources){where}"
                        )
                seen.append((net, fid, field))
