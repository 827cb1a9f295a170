"""The asyncio wiring of the call controller: SIP transports, media legs and the account store
around one `CallFlow` per call.

Everything here is a thin adapter: a new INVITE is judged by
`callcontrol.admission`, SIP events and media events are turned into flow
inputs, and the flow's actions into SIP messages, prompt playback, bridging
and store calls. What a call is (its PIN, number, funds, state and
deadlines) is the flow's; a `Call` here holds its I/O handles: SIP
transactions and dialogs, media legs, the recorder, tasks and the timer.
Store calls that the caller is waiting on (authorization) run as tasks; the
call's end (settlement, CDR, log line) runs as a task that first waits for
any authorization still in flight, so a call cancelled mid-authorization
still releases its reservation.

A call on a menu trunk (``pin_entry = "menu"``) is answered at once: the
facility leg's media plays the caller's menu prompts and the ringback tone and
hears the caller's keys (RFC 4733, SIP INFO, in-band), and the PIN is checked
here against the store and the station's PIN lock (``accounts.station_guard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

from accounts import (
    AccountsError,
    AccountService,
    AccountStatus,
    Authorization,
    CallRequest,
    NotFound,
    Person,
    Refusal,
    RefusalReason,
    Settlement,
    call_detail_record,
)
from callcontrol.live import LiveCall
from ivr import (
    PCMA,
    PCMU,
    Bridge,
    Codec,
    DtmfReceived,
    MediaError,
    MediaEvent,
    PlaybackFinished,
    PortAllocator,
    PromptCatalogue,
    Recorder,
    RtpEndpoint,
    SparePairs,
    open_recording,
    parse_dtmf_info,
)
from ivr import caller_menu as cm
from ivr.early_media import EarlyMediaRelay
from ivr.threeway import ThreeWaySuspected
from ivr.threeway_watch import WatchedLeg, called_leg_watch
from ivr.tones import ringback_payload
from rating import Product, cents_str
from settings.config import split_host_port

from . import outcomes
from .actions import (
    AnswerCaller,
    AuthorizeCall,
    BlockFacility,
    CancelCarrier,
    CheckCallerPin,
    ConnectCaller,
    DialCarrier,
    HangUpCaller,
    HangUpCarrier,
    PlayLimitWarning,
    PlayRingbackToCaller,
    PlayThreeWayWarning,
    PlayToCalled,
    PlayToCaller,
    RejectCaller,
    RingCaller,
    SendHeartbeat,
    StopCalledPlayback,
    StopCallerPlayback,
)
from .admission import Admission, Turnaway, header_details
from .eager import start_eagerly
from .errors import CallError
from .events import CallAccepted, CallEnded, KeyPressed, ThreeWayDetected
from .flow import CallDetails, CallFlow, CallGrant, CallState, FlowSettings, Output
from .gateways import GatewayResolver
from .outcomes import Disposition
from .routes import Gateway, GatewayDown, KeepAlive, RoutePlan, RouteSelector, fails_over
from .sip import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    Dialog,
    Endpoint,
    Event,
    Headers,
    MessageRejected,
    NameAddress,
    NegotiatedAudio,
    ProvisionalUnacknowledged,
    RefreshDue,
    Request,
    RequestReceived,
    ResponseReceived,
    SdpError,
    SessionDescription,
    SessionExpired,
    SessionTimer,
    SipError,
    SipTransport,
    SipUri,
    TransactionTimedOut,
    TransportError,
    Trunk,
    TrunkPolicy,
    accept_answer,
    answer_offer,
    answer_reoffer,
    capability_headers,
    create_offer,
    make_response,
    new_call_id,
    new_tag,
)
from .sip.reliable import RAck, offers_100rel, rseq_of
from .sip.sdp import sends
from .three_way import ThreeWaySettings, evidence, three_way_settings

log = logging.getLogger("callcontrol")
call_log = logging.getLogger("ics.calls")

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9@._-]")
LANGUAGES = ("en", "es")
#: What the live-calls view calls each state of the flow.
_LIVE_STATE = {
    CallState.COLLECTING: "screening", CallState.AUTHORIZING: "screening",
    CallState.DIALING: "ringing", CallState.RINGING: "ringing",
    CallState.PROMPTING: "prompting", CallState.FAREWELL: "prompting",
    CallState.CONNECTED: "connected", CallState.ENDED: "ended",
    # The live-calls view knows four states: the caller's menu comes before screening.
    CallState.MENU: "screening", CallState.GOODBYE: "prompting",
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Windows = tuple[tuple[clock_time, clock_time], ...]


@dataclass(frozen=True, slots=True)
class MenuSettings:
    """A facility's caller's menu (its ``[menu]`` settings)."""

    languages: tuple[str, ...] = ("en", "es")
    pin_length: int | None = None
    limit_seconds: float = 90.0
    interdigit_timeout: float = 5.0
    no_input_timeout: float = 8.0
    tries: int = 3

    def caller_menu(self) -> cm.CallerMenu:
        return cm.CallerMenu(self.languages, pin_length=self.pin_length,
                             menu_limit=self.limit_seconds, max_tries=self.tries,
                             no_input_timeout=self.no_input_timeout,
                             interdigit_timeout=self.interdigit_timeout)


def trunk_ids(config: Any) -> list[tuple[str, str, Any]]:
    """(trunk id, facility id, trunk config) of every facility trunk: a facility's first
    trunk is known by the facility's id, its others by ``<facility>/<n>``."""
    out = []
    for fid, facility in config.facilities.items():
        for n, trunk in enumerate(facility.trunks):
            out.append((fid if n == 0 else f"{fid}/{n}", fid, trunk))
    return out


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Where the controller listens and reaches the carrier; how long things may take."""

    sip_listen: tuple[tuple[str, str, int], ...]  # (transport, host, port)
    carrier: tuple[str, int]
    media_host: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (20000, 20999)
    recordings_dir: Path = Path("var/recordings")
    heartbeat_seconds: float = 15.0
    inactivity_timeout: float = 60.0
    carrier_response_timeout: float = 8.0
    menu_choice_timeout: float = 6.0
    menu_attempts: int = 3
    ring_timeouts: dict[str, float] = field(default_factory=dict)
    #: Nodes share the store (Redis): another node's calls are in it too, so
    #: recovery only takes reservations silent for ``recovery_stale_after``
    #: seconds, longer than any ring + prompt without a heartbeat.
    shared_store: bool = False
    recovery_stale_after: float = 300.0
    #: Trunk id -> facility id, for trunks not named as their facility (see `trunk_ids`).
    trunk_facility: dict[str, str] = field(default_factory=dict)
    #: Trunks whose callers key their PIN and number in the caller's menu.
    menu_trunks: frozenset[str] = frozenset()
    menus: dict[str, MenuSettings] = field(default_factory=dict)
    #: A facility's calling windows on the day of a time (said with a refusal for the hour).
    calling_windows: dict[str, Callable[[datetime], Windows]] = field(default_factory=dict)
    #: Facilities whose funding order tries the person's Debit account.
    debit_facilities: frozenset[str] = frozenset()
    #: Calls a facility may have placed at once (facilities without a limit are absent).
    max_calls: dict[str, int] = field(default_factory=dict)
    #: The carrier gateways calls are routed over; ``carrier`` alone when empty.
    gateways: tuple[Gateway, ...] = ()
    #: OPTIONS keep-alive of the gateways: (interval, timeout, failures to mark one down).
    keepalive: tuple[float, float, int] | None = None
    #: DNS servers for gateway names (the system's when empty).
    dns_servers: tuple[tuple[str, int], ...] = ()

    @property
    def routes(self) -> tuple[Gateway, ...]:
        """The gateways, or the one ``carrier`` address as a gateway named "carrier"."""
        if self.gateways:
            return self.gateways
        return (Gateway(CARRIER_TRUNK, self.carrier[0], self.carrier[1]),)
    #: RFC 4028 session interval asked of both legs (0: a timer only where a peer asks).
    session_interval: int = 0
    #: The smallest session interval accepted (a smaller one gets 422).
    min_se: int = 90
    #: Each facility's three-way call policy and detector sensitivity.
    three_way: dict[str, ThreeWaySettings] = field(default_factory=dict)
    #: A SIP proxy in front (its source networks) and the header naming the facility's address.
    proxies: tuple[str, ...] = ()
    proxy_source_header: str = "X-ICS-Source"

    @classmethod
    def from_config(cls, config: Any) -> ControllerSettings:
        listen = []
        for item in config.sip.listen:
            transport, _, hostport = item.partition(":")
            host, _, port = hostport.rpartition(":")
            listen.append((transport, host.strip("[]"), int(port)))
        host, _, port = config.sip.carrier_gateway.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"sip.carrier_gateway must be HOST:PORT, not {config.sip.carrier_gateway!r}"
            )
        media = config.media
        trunks = trunk_ids(config)
        return cls(
            sip_listen=tuple(listen),
            carrier=(host.strip("[]"), int(port)),
            media_host=media.host,
            rtp_ports=(media.rtp_port_min, media.rtp_port_max),
            recordings_dir=Path(media.recordings_dir),
            heartbeat_seconds=float(config.accounts.heartbeat_seconds),
            inactivity_timeout=media.inactivity_timeout_seconds,
            carrier_response_timeout=config.sip.carrier_response_timeout_seconds,
            menu_choice_timeout=media.menu_choice_timeout_seconds,
            menu_attempts=media.menu_attempts,
            ring_timeouts={fid: float(f.ring_timeout_seconds)
                           for fid, f in config.facilities.items()},
            shared_store=config.store.kind != "sqlite",
            recovery_stale_after=max(
                300.0, 10 * float(config.accounts.heartbeat_seconds),
                2 * max((float(f.ring_timeout_seconds) for f in config.facilities.values()),
                        default=0.0) + 120.0,
            ),
            trunk_facility={tid: fid for tid, fid, _ in trunks if tid != fid},
            menu_trunks=frozenset(tid for tid, _, t in trunks if t.pin_entry == "menu"),
            menus={fid: MenuSettings(
                languages=tuple(f.menu.languages), pin_length=f.menu.pin_length,
                limit_seconds=f.menu.limit_seconds,
                interdigit_timeout=f.menu.interdigit_timeout_seconds,
                no_input_timeout=f.menu.no_input_timeout_seconds, tries=f.menu.tries,
            ) for fid, f in config.facilities.items()},
            calling_windows={fid: _windows_of(f) for fid, f in config.facilities.items()},
            debit_facilities=frozenset(fid for fid, f in config.facilities.items()
                                       if Product.DEBIT in f.funding_order),
            max_calls={fid: f.max_concurrent_calls for fid, f in config.facilities.items()
                       if f.max_concurrent_calls is not None},
            **_carrier_settings(config.carrier),
            session_interval=config.sip.session_expires_seconds,
            min_se=config.sip.min_se_seconds,
            three_way=three_way_settings(config),
            proxies=tuple(config.proxy.sources),
            proxy_source_header=config.proxy.source_header,
        )


def _carrier_settings(carrier: Any) -> dict[str, Any]:
    """The ``[carrier]`` section as `ControllerSettings` fields."""
    keepalive = None
    if carrier.keepalive_interval_seconds > 0:
        keepalive = (carrier.keepalive_interval_seconds, carrier.keepalive_timeout_seconds,
                     carrier.keepalive_failures)
    servers = []
    for server in carrier.dns_servers:
        host, port = split_host_port(server)
        servers.append((host, port or 53))
    return {
        "gateways": tuple(Gateway(g.name, g.host, g.port, g.transport, g.priority, g.weight,
                                  g.max_calls) for g in carrier.gateways),
        "keepalive": keepalive,
        "dns_servers": tuple(servers),
    }


class Call:
    """The adapter side of one call: its SIP legs, media, recording and tasks.

    The call itself (who calls whom, the funds held, what happens next) is
    ``flow``'s; the read-only properties below are its facts.
    """

    def __init__(self, request: Request, event: RequestReceived, flow: CallFlow,
                 offer: SessionDescription, started: datetime) -> None:
        self.id = request.call_id
        self.invite = request
        self.source = event.source
        self.transport = event.transport
        self.connection = event.connection
        self.flow = flow
        self.offer = offer
        self.started = started
        self.to_tag = new_tag()
        self.facility_dialog: Dialog | None = None
        self.facility_media: RtpEndpoint | None = None
        self.auth_task: asyncio.Future[None] | None = None
        self.carrier_call_id = new_call_id()
        self.carrier_invite: Request | None = None
        self.carrier_tx: str | None = None
        self.carrier_offer: SessionDescription | None = None
        self.carrier_dialog: Dialog | None = None
        self.carrier_media: RtpEndpoint | None = None
        self.carrier_address: tuple[str, int] | None = None
        self.carrier_transport = "udp"
        #: Early dialogs of the carrier INVITE (by the 18x's To tag), which PRACKs go in,
        #: and the last RSeq PRACKed in each (RFC 3262).
        self.carrier_early: dict[str, Dialog] = {}
        self.carrier_racked: dict[str, int] = {}
        #: The gateways this call may try, and the one it is on (`RoutePlan.current`).
        self.route: RoutePlan | None = None
        #: The gateway that carried the call's last attempt (for the CDR).
        self.gateway = ""
        self.bridge: Bridge | None = None
        self.recorder: Recorder | None = None
        self.recording_open: asyncio.Task[Recorder | None] | None = None
        self.recording_path: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        #: The phone the call comes from: the From URI's user part.
        self.station = _station_of(request)
        #: A menu call: the ringback tone loops on the facility leg.
        self.ringback = False
        #: A menu call whose carrier sent early media (183 with SDP): the caller hears it
        #: instead of the ringback tone, until the answer.
        self.early_media: EarlyMediaRelay | None = None
        # Session timers (RFC 4028) per leg, and what a same-session re-INVITE is
        # answered with: our SDP unchanged.
        self.facility_timer: SessionTimer | None = None
        self.carrier_timer: SessionTimer | None = None
        self.session_handles: dict[str, asyncio.TimerHandle] = {}
        self.refresh_txs: set[str] = set()
        self.facility_sdp = b""
        self.carrier_sdp = b""
        self.facility_origin: str | None = None
        self.carrier_origin: str | None = None
        self.carrier_allows_update = False
        #: Legs with a re-INVITE of ours (an offer) in flight: a peer's offer meanwhile
        #: is glare, answered 491 (RFC 3261 14.2).
        self.offering: set[str] = set()
        #: Our offers sent in a 2xx to a re-INVITE that had none, by leg: the answer
        #: comes in the ACK (RFC 3261 14.2, RFC 3264 5).
        self.offered_in_2xx: dict[str, SessionDescription] = {}
        #: Our SDP direction towards each leg (not sendrecv while a party holds).
        self.directions = {"facility": "sendrecv", "carrier": "sendrecv"}
        #: The called leg under the three-way detector while bridged.
        self.three_way_leg: WatchedLeg | None = None

    @property
    def facility_id(self) -> str:
        return self.flow.facility_id

    @property
    def pin(self) -> str:
        return self.flow.pin

    @property
    def dialled(self) -> str:
        return self.flow.dialled

    @property
    def authorization(self) -> Authorization | None:
        return self.flow.authorization


class CallController:
    """Carries every call of one node.

    It implements the HTTP service's ``LiveCalls`` protocol with
    `callcontrol.live.LiveCall` snapshots.
    """

    def __init__(
        self,
        settings: ControllerSettings,
        service: AccountService,
        trunks: Sequence[Trunk],
        *,
        metrics: Any = None,
        catalogue_root: Path | None = None,
        realm: str = "ics",
    ) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.policy = TrunkPolicy(trunks, realm=realm, invite_rate=1000.0, invite_burst=2000.0,
                                  proxies=settings.proxies,
                                  source_header=settings.proxy_source_header)
        self.endpoint = Endpoint(screen=self.policy, trying_delay=0.0, min_se=settings.min_se,
                                 session_interval=settings.session_interval)
        self.transport: SipTransport | None = None
        self.ports = PortAllocator(*settings.rtp_ports)
        self.spares = SparePairs(self.ports, settings.media_host)
        kwargs = {"root": catalogue_root} if catalogue_root is not None else {}
        self.catalogues = {lang: PromptCatalogue(lang, **kwargs) for lang in LANGUAGES}
        self.calls: dict[str, Call] = {}
        self.by_carrier_tx: dict[str, Call] = {}
        self.by_carrier_call_id: dict[str, Call] = {}
        #: Our refresh requests in flight: transaction id -> (call, leg).
        self.refreshes: dict[str, tuple[Call, str]] = {}
        self.admission = Admission(settings.ring_timeouts, self.calls, settings.media_host)
        self._flow_settings = {fid: FlowSettings(
            ring_timeout=ring_timeout,
            carrier_response_timeout=settings.carrier_response_timeout,
            heartbeat_interval=settings.heartbeat_seconds,
            menu_choice_timeout=settings.menu_choice_timeout,
            menu_attempts=settings.menu_attempts,
            three_way_policy=settings.three_way.get(fid, ThreeWaySettings()).policy,
        ) for fid, ring_timeout in settings.ring_timeouts.items()}
        self.routes = RouteSelector(settings.routes)
        self.resolver = GatewayResolver(settings.dns_servers)
        self.keepalive: KeepAlive | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        #: OPTIONS keep-alive transaction id -> gateway name.
        self._probes: dict[str, str] = {}
        self._trunks = list(trunks)
        self.contact = "sip:ics@127.0.0.1"
        self._contacts: dict[str, str] = {}
        self.bound: list[tuple[str, str, int]] = []
        self._finishing: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wall_offset = 0.0
        self.stats = {"started": 0, "ended": 0}

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every configured SIP address (binding port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wall_offset = time.time() - loop.time()
        self.transport = SipTransport(self.endpoint, self._on_sip_event)
        self.spares.fill()
        for transport, host, port in self.settings.sip_listen:
            if transport == "udp":
                bound = await self.transport.listen_udp(host, port)
            else:
                bound = await self.transport.listen_tcp(host, port)
            self.bound.append((transport, bound[0], bound[1]))
            h = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            if transport == "udp" and self.contact == "sip:ics@127.0.0.1":
                self.contact = f"sip:ics@{h}:{bound[1]}"
            if transport == "tcp" and "tcp" not in self._contacts:
                self._contacts["tcp"] = f"sip:ics@{h}:{bound[1]};transport=tcp"
        await self.resolve_gateways()
        keepalive = self.settings.keepalive
        if keepalive is not None:
            interval, timeout, failures = keepalive
            self.keepalive = KeepAlive(self.routes, interval=interval, timeout=timeout,
                                       failures=failures, now=loop.time())
            self._arm_keepalive()

    async def resolve_gateways(self) -> None:
        """Look the gateways up (names in DNS); in-dialog requests from their addresses
        are trusted as the carrier's."""
        for gateway in self.routes.gateways:
            targets = await self.resolver.resolve(gateway)
            self.routes.set_targets(gateway.name, targets)
            if not targets:
                log.warning("carrier gateway %s (%s) has no address", gateway.name, gateway.host)
            if self.metrics is not None:
                self.metrics.gateway_state(gateway.name, self.routes.is_up(gateway.name))
        hosts = sorted({t.host for g in self.routes.gateways for t in self.routes.targets(g.name)})
        if hosts:
            others = [t for t in self._trunks if t.id != CARRIER_TRUNK]
            carrier = Trunk.from_config(CARRIER_TRUNK, hosts)
            old = self.policy
            self.policy = TrunkPolicy([carrier, *others], realm=old.authenticator.realm,
                                      authenticator=old.authenticator,
                                      invite_rate=old.invite_rate,
                                      invite_burst=old.invite_burst,
                                      proxies=self.settings.proxies,
                                      source_header=self.settings.proxy_source_header)
            self.policy.draining = old.draining
            self.endpoint.screen = self.policy

    @property
    def carrier_ready(self) -> bool:
        """Some carrier gateway is up (for ``/readyz``)."""
        return self.routes.any_up

    # -- gateway keep-alive ------------------------------------------------------------

    def _arm_keepalive(self) -> None:
        if self.keepalive is None or self._loop is None:
            return
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        self._keepalive_timer = self._loop.call_at(self.keepalive.get_timer(),
                                                   self._on_keepalive_timer)

    def _on_keepalive_timer(self) -> None:
        keepalive = self.keepalive
        assert keepalive is not None
        now = self.now()
        for name, target in keepalive.handle_timer(now):
            options = Request("OPTIONS", f"sip:{_hostport(target.host, target.port)}", Headers())
            options.headers.set("from", f"<{self.contact}>;tag={new_tag()}")
            options.headers.set("to", f"<sip:{_hostport(target.host, target.port)}>")
            options.headers.set("call-id", new_call_id())
            options.headers.set("cseq", "1 OPTIONS")
            try:
                tx = self.endpoint.send_request(options, (target.host, target.port), now,
                                                transport=target.transport)
            except SipError as exc:
                log.warning("keep-alive to gateway %s not sent: %s", name, exc)
                keepalive.failed(name, now)
                continue
            self._probes[tx] = name
        self._gateway_changes()
        self._flush()
        self._arm_keepalive()

    def _probe_done(self, transaction_id: str, status: int | None) -> None:
        name = self._probes.pop(transaction_id, None)
        if name is None or self.keepalive is None:
            return
        if status is None:
            self.keepalive.failed(name, self.now())
        else:
            self.keepalive.answered(name, status, self.now())
        self._gateway_changes()

    def _gateway_changes(self) -> None:
        if self.keepalive is None:
            return
        for change in self.keepalive.take_changes():
            down = isinstance(change, GatewayDown)
            log.warning("carrier gateway %s is %s", change.gateway, "down" if down else "up")
            if self.metrics is not None:
                self.metrics.gateway_state(change.gateway, not down)

    async def recover(self) -> int:
        """Settle reservations of calls a previous run left behind (crash); returns how many.

        On a shared store this also takes the calls of a node that died for good,
        once they have been silent for ``recovery_stale_after``; ``ics serve``
        repeats it periodically there.
        """
        stale_after = (timedelta(seconds=self.settings.recovery_stale_after)
                       if self.settings.shared_store else None)
        done = await self.service.recover(self.wall_now(), live_call_ids=set(self.calls),
                                          stale_after=stale_after)
        for settlement in done:
            log.warning("recovered call %s from its last heartbeat (%s s)",
                        settlement.reservation.call_id, settlement.reservation.talked_seconds)
        return len(done)

    async def drain(self, grace: float) -> None:
        """Stop taking calls; let calls finish for ``grace`` seconds, then end the rest."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.calls and loop.time() < deadline:
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        for call in list(self.calls.values()):
            self._hang_up(call, outcomes.SHUTTING_DOWN)
        self._flush()
        # BYEs out; wait for every settlement and CDR to be written.
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)

    async def close(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.spares.close()
        if self.transport is not None:
            await self.transport.close()

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    @property
    def connected_calls(self) -> int:
        """Calls whose called party accepted and that are still up."""
        return sum(1 for call in self.calls.values() if call.flow.state is CallState.CONNECTED)

    @property
    def draining(self) -> bool:
        """New INVITEs are answered 503 (the node is shutting down)."""
        return self.admission.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.admission.draining = value
        # A proxy's OPTIONS probe fails too, so it sends new calls to other nodes.
        self.policy.draining = value

    # -- helpers ----------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def wall(self, t: float) -> datetime:
        return datetime.fromtimestamp(t + self._wall_offset, UTC)

    def wall_now(self) -> datetime:
        return datetime.now(UTC)

    def _contact_for(self, call: Call) -> str:
        """Our Contact towards the facility: on the transport its INVITE came over."""
        return self._contacts.get(call.transport, self.contact)

    def _catalogue(self, call: Call) -> PromptCatalogue | None:
        """The prompts in the call's language, once authorization chose it."""
        grant = call.flow.grant
        return self.catalogues[grant.language] if grant is not None else None

    def _flush(self) -> None:
        if self.transport is not None:
            self.transport.flush()

    def _spawn(self, coro: Any, *, now: bool = False) -> asyncio.Future[Any]:
        """Run a call's coroutine as a task; ``now``: up to its first suspension at once."""
        task = start_eagerly(coro) if now else asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    # -- LiveCalls ----------------------------------------------------------------

    def list_calls(self) -> Sequence[LiveCall]:
        out = []
        for call in self.calls.values():
            auth = call.authorization
            flow = call.flow
            state = flow.state
            out.append(LiveCall(
                call_id=call.id,
                facility=call.facility_id,
                pin=call.pin,
                number=auth.called.e164 if auth is not None else call.dialled,
                state=_LIVE_STATE[state],
                started_at=call.started,
                product=str(auth.product) if auth is not None else None,
                answered_at=self.wall(flow.accept_at) if flow.accept_at is not None else None,
                recorded=not (auth.privileged if auth is not None else False),
                max_seconds=auth.max_seconds if auth is not None else None,
            ))
        out.sort(key=lambda c: c.started_at)
        return out

    async def hang_up(self, call_id: str, reason: str) -> bool:
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._hang_up(call, outcomes.by_operator(reason))
        self._flush()
        return True

    def _hang_up(self, call: Call, how: Disposition) -> None:
        if call.flow.state is not CallState.ENDED:
            self._feed(call, lambda now: call.flow.hang_up(how, now))

    # -- feeding the flow -----------------------------------------------------------

    def _feed(self, call: Call, step: Any) -> None:
        """Run one flow input, carry out its outputs, re-arm the call's timer."""
        now = self.now()
        try:
            outputs = step(now)
        except CallError as exc:
            log.debug("call %s: %s", call.id, exc)
            return
        self._apply(call, outputs)
        self._arm(call)

    def _arm(self, call: Call) -> None:
        when = call.flow.get_timer() if call.flow.state is not CallState.ENDED else None
        if when == call.timer_at:
            return
        if call.timer is not None:
            call.timer.cancel()
        call.timer_at = when
        call.timer = self._loop.call_at(when, self._on_timer, call) if (
            when is not None and self._loop is not None) else None

    def _on_timer(self, call: Call) -> None:
        call.timer = None
        call.timer_at = None
        self._feed(call, call.flow.handle_timer)
        self._flush()

    def _apply(self, call: Call, outputs: list[Output]) -> None:
        for out in outputs:
            try:
                self._do(call, out)
            except (SipError, MediaError, OSError, ValueError) as exc:
                log.warning("call %s: %s failed: %s", call.id, type(out).__name__, exc)

    def _do(self, call: Call, out: Output) -> None:
        now = self.now()
        ep = self.endpoint
        if isinstance(out, AuthorizeCall):
            # At once: screening, the hold and a spare media port rarely suspend, and
            # waiting for the loop's next turn would add that turn to the post-dial delay.
            call.auth_task = self._spawn(self._authorize(call, out.details), now=True)
        elif isinstance(out, RingCaller):
            contact = [("Contact", f"<{self._contact_for(call)}>")]
            if offers_100rel(call.invite):
                ep.respond_reliably(call.invite, 180, now, to_tag=call.to_tag, headers=contact)
            else:
                ep.respond(call.invite, 180, now, to_tag=call.to_tag, headers=contact)
        elif isinstance(out, RejectCaller):
            ep.respond(call.invite, out.status, now, to_tag=call.to_tag,
                       headers=[("Reason", out.reason)])
        elif isinstance(out, DialCarrier):
            self._dial(call, now)
        elif isinstance(out, CancelCarrier):
            if call.carrier_tx is not None:
                ep.cancel(call.carrier_tx, now)
        elif isinstance(out, PlayToCalled):
            media, catalogue = call.carrier_media, self._catalogue(call)
            if media is not None and catalogue is not None and not media.closed:
                media.play(catalogue.encoded(out.sequence, media.session.codec))
        elif isinstance(out, StopCalledPlayback):
            if call.carrier_media is not None:
                call.carrier_media.stop_playback()
        elif isinstance(out, ConnectCaller):
            if out.answered:
                self._spawn(self._bridge_menu_call(call, out.record))
            else:
                self._spawn(self._connect(call, out.record))
        elif isinstance(out, AnswerCaller):
            self._answer_menu_call(call, now)
        elif isinstance(out, PlayToCaller):
            self._end_early_media(call)
            media = call.facility_media
            if media is not None and not media.closed:
                call.ringback = False
                catalogue = self.catalogues.get(out.lang, self.catalogues["en"])
                media.play(catalogue.encoded(out.sequence, media.session.codec))
        elif isinstance(out, PlayRingbackToCaller):
            self._ringback(call)
        elif isinstance(out, StopCallerPlayback):
            call.ringback = False
            if call.facility_media is not None:
                call.facility_media.stop_playback()
        elif isinstance(out, CheckCallerPin):
            self._spawn(self._check_pin(call, out.pin))
        elif isinstance(out, HangUpCarrier):
            self._bye(call.carrier_dialog, out.reason, now, None)
            call.carrier_dialog = None
        elif isinstance(out, HangUpCaller):
            self._bye(call.facility_dialog, out.reason, now, call.connection)
            call.facility_dialog = None
        elif isinstance(out, PlayLimitWarning):
            self._warn(call)
        elif isinstance(out, PlayThreeWayWarning):
            self._warn_three_way(call)
        elif isinstance(out, ThreeWayDetected):
            self._three_way_detected(call, out)
        elif isinstance(out, SendHeartbeat):
            if call.authorization is not None:
                self._spawn(self._heartbeat(call.authorization.reservation_id,
                                            out.talked_seconds))
        elif isinstance(out, BlockFacility):
            if call.authorization is not None:
                self._spawn(self.service.block_facility_for_number(
                    call.authorization.called.e164, call.facility_id))
        elif isinstance(out, KeyPressed):
            if self.metrics is not None:
                self.metrics.ivr_key_pressed(out.digit)
        elif isinstance(out, CallAccepted):
            log.debug("call %s accepted", call.id)
        elif isinstance(out, CallEnded):
            self._ended(call, out)

    # -- SIP events -------------------------------------------------------------------

    def _on_sip_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            method = event.request.method
            if self.metrics is not None:
                self.metrics.sip_message("in", method)
            if event.dialog is None and method == "INVITE":
                self._on_invite(event)
            else:
                self._on_request(event)
        elif isinstance(event, ResponseReceived):
            if event.transaction_id in self.refreshes:
                self._on_refresh_answer(event)
                return
            self._on_response(event)
            self._carrier_session(event)
        elif isinstance(event, CancelReceived):
            call = self.calls.get(event.invite.call_id)
            if call is not None and call.flow.state is not CallState.ENDED:
                self._feed(call, call.flow.caller_cancelled)
        elif isinstance(event, ProvisionalUnacknowledged):
            call = self.calls.get(event.call_id)
            if call is not None and call.flow.state in (
                    CallState.DIALING, CallState.RINGING, CallState.PROMPTING):
                log.info("call %s: the facility never PRACKed our 180: rejected", call.id)
                self._hang_up(call, outcomes.PRACK_MISSING)
        elif isinstance(event, AckReceived):
            if event.request.body:
                self._on_answer_in_ack(event.request)
        elif isinstance(event, AckTimedOut):
            call = self.calls.get(event.request.call_id)
            if call is not None and (call.flow.state is CallState.CONNECTED or (
                    call.flow.menu_call and call.flow.state is CallState.MENU)):
                self._feed(call, call.flow.caller_lost)
        elif isinstance(event, (TransactionTimedOut, TransportError)):
            if event.request.method == "OPTIONS":
                self._probe_done(event.transaction_id, None)
                return
            refresh = self.refreshes.pop(event.transaction_id, None)
            if refresh is not None:
                call, leg = refresh
                timer = self._leg(call, leg)[0]
                if timer is not None and call.flow.state is not CallState.ENDED:
                    self._session_actions(call, leg, timer.refresh_failed(self.now()))
                return
            call = self.by_carrier_tx.get(event.transaction_id)
            if call is not None and event.request.method == "INVITE" and call.flow.state in (
                    CallState.DIALING, CallState.RINGING):
                flow, silent = call.flow, isinstance(event, TransactionTimedOut)
                self._feed(call, lambda now: flow.carrier_unreachable(now, timed_out=silent))
        elif isinstance(event, MessageRejected):
            log.debug("SIP message from %s rejected (%s): %s", event.source, event.status,
                      event.detail)

    def _on_invite(self, event: RequestReceived) -> None:
        request = event.request
        now = self.now()
        trunk_id = event.trunk_id
        facility = self.settings.trunk_facility.get(trunk_id, trunk_id) if trunk_id else None
        verdict = self.admission.judge(request, facility, now)
        if isinstance(verdict, Turnaway):
            self.endpoint.respond(request, verdict.status, now, verdict.phrase, to_tag=new_tag(),
                                  headers=verdict.headers)
            return
        facility_id = verdict.facility_id
        menu = None
        if trunk_id in self.settings.menu_trunks:
            menu = self.settings.menus.get(facility_id, MenuSettings()).caller_menu()
        flow = CallFlow(facility_id, now, self._flow_settings[facility_id], caller_menu=menu)
        call = Call(request, event, flow, verdict.offer, self.wall_now())
        self.calls[call.id] = call
        self.stats["started"] += 1
        if self.metrics is not None:
            self.metrics.call_started(facility_id)
        if menu is not None:
            # The caller keys what they ask for; the answer waits for the leg's media.
            self._spawn(self._start_menu_call(call), now=True)
            return
        # A header trunk's INVITE says what the caller asks for.
        self._apply(call, flow.call_requested(header_details(request, verdict.uri), now))
        self._arm(call)

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        now = self.now()
        ep = self.endpoint
        method = request.method
        call = self.calls.get(request.call_id)
        from_carrier = False
        if call is None:
            call = self.by_carrier_call_id.get(request.call_id)
            from_carrier = call is not None
        if method == "BYE":
            ep.respond(request, 200, now)
            if event.dialog is not None:
                ep.remove_dialog(event.dialog)
            if call is None or call.flow.state is CallState.ENDED:
                return
            if from_carrier:
                call.carrier_dialog = None
                self._feed(call, call.flow.called_hung_up)
            else:
                call.facility_dialog = None
                if call.flow.state is CallState.CONNECTED or call.flow.menu_call:
                    self._feed(call, call.flow.caller_hung_up)
            return
        if method == "INFO":
            digit = None
            menu_caller = (call is not None and not from_carrier and call.flow.menu_call
                           and call.flow.state is CallState.MENU)
            if (from_carrier or menu_caller) and request.body:
                try:
                    info = parse_dtmf_info(request.headers.get("content-type") or "",
                                           request.body)
                    digit = info.digit
                except ValueError as exc:
                    ep.respond(request, 400, now, f"Bad Request ({exc})")
                    return
            ep.respond(request, 200, now)
            if digit is not None and call is not None:
                d = digit
                if menu_caller:
                    self._feed(call, lambda now: call.flow.caller_digit(d, now))
                else:
                    self._feed(call, lambda now: call.flow.digit(d, now, "sip-info"))
                self._flush()
            return
        if call is not None and method in ("INVITE", "UPDATE"):
            if self._answer_refresh(call, from_carrier, request, now):
                return
            if request.body:
                self._answer_new_offer(call, from_carrier, request, now)
                return
            if method == "INVITE":
                self._offer_in_answer(call, from_carrier, request, now)
                return
        if method == "INVITE" or (method == "UPDATE" and request.body):
            # A new offer mid-call (hold, new media) is refused; the session continues
            # unchanged (RFC 3261 14.1, RFC 3311 5.2).
            ep.respond(request, 488, now, headers=[("Warning", '399 ics "mid-call offers '
                                                              'not supported"')])
            return
        if method == "OPTIONS":
            ep.respond(request, 200, now, headers=capability_headers(ep.allow, ep.supported))
            return
        ep.respond(request, 200, now)

    def _on_response(self, event: ResponseReceived) -> None:
        request = event.request
        response = event.response
        if request.method == "OPTIONS":
            if response.status >= 200:
                self._probe_done(event.transaction_id, response.status)
            return
        if request.method != "INVITE":
            return
        call = self.by_carrier_tx.get(event.transaction_id)
        status = response.status
        if call is None or call.flow.state not in (CallState.DIALING, CallState.RINGING):
            if 200 <= status < 300:
                self._ack_and_bye(request, response)
            return
        flow = call.flow
        if status < 200:
            self._prack(call, request, response)
            if status in (180, 183) and response.body and flow.menu_call:
                self._early_media(call, response)
            self._feed(call, lambda now: flow.carrier_progress(status, now))
            return
        if call.early_media is not None:
            # The answer (or the end): the carrier's early media stops; a menu caller
            # hears the ringback tone again while the called party is prompted (or the
            # next gateway is tried; an outcome spoken to the caller replaces it).
            self._end_early_media(call)
            self._ringback(call)
        if status >= 300:
            how = outcomes.from_carrier_status(status)
            again = fails_over(status)
            self._feed(call, lambda now: flow.carrier_failed(how, now, fail_over=again))
            return
        # 200 OK: confirm it, then judge its answer.
        try:
            dialog = Dialog.from_uac(request, response)
        except SipError:
            self._ack_and_bye(request, response)
            self._feed(call, lambda now: flow.carrier_failed(outcomes.CARRIER_FAILURE, now))
            return
        early = call.carrier_early.get(dialog.id[2])
        if early is not None:
            # The PRACKs used CSeq numbers of this dialog already.
            dialog.local_cseq = max(dialog.local_cseq, early.local_cseq)
        self.endpoint.add_dialog(dialog)
        call.carrier_dialog = dialog
        # The ACK goes where the dialog says: the first Route (a record-routing proxy of
        # the carrier) or the called party's Contact (RFC 3261 13.2.2.4).
        host, port, transport = dialog.next_hop()
        self.endpoint.send_ack(dialog.create_ack(request.cseq[0]), (host, port), self.now(),
                               transport=transport)
        try:
            assert call.carrier_offer is not None
            negotiated = accept_answer(call.carrier_offer, SessionDescription.parse(response.body))
        except (SdpError, ValueError) as exc:
            log.info("call %s: carrier answer unusable: %s", call.id, exc)
            self._feed(call, flow.carrier_answer_unusable)
            return
        assert call.carrier_media is not None
        _configure_leg(call.carrier_media, negotiated)
        self._feed(call, flow.carrier_answered)

    def _prack(self, call: Call, request: Request, response: Any) -> None:
        """PRACK a reliable provisional response of the carrier, once per RSeq, in the
        early dialog it created (RFC 3262 4)."""
        try:
            rseq = rseq_of(response)
        except SipError as exc:
            log.info("call %s: carrier provisional response not acknowledged: %s", call.id, exc)
            return
        tag = response.to_tag
        if rseq is None or not tag or rseq <= call.carrier_racked.get(tag, 0):
            return  # unreliable, or a retransmission (our PRACK's own transaction resends it)
        early = call.carrier_early.get(tag)
        if early is None:
            try:
                early = Dialog.from_uac(request, response)
            except SipError as exc:
                log.info("call %s: cannot PRACK the carrier: %s", call.id, exc)
                return
            call.carrier_early[tag] = early
        call.carrier_racked[tag] = rseq
        prack = early.create_request("PRACK", headers=[
            ("RAck", RAck(rseq, request.cseq[0], "INVITE").serialize())])
        host, port, transport = early.next_hop()
        self.endpoint.send_request(prack, (host, port), self.now(), transport=transport)

    def _ack_and_bye(self, request: Request, response: Any) -> None:
        """A 2xx for an INVITE we no longer want (cancelled, timed out, a gateway given up
        for the next): ACK and BYE it, where the 2xx's dialog says."""
        try:
            dialog = Dialog.from_uac(request, response)
        except SipError:
            return
        now = self.now()
        host, port, transport = dialog.next_hop()
        self.endpoint.send_ack(dialog.create_ack(request.cseq[0]), (host, port), now,
                               transport=transport)
        bye = dialog.create_request("BYE", headers=[("Reason", outcomes.CANCELLED.reason)])
        self.endpoint.send_request(bye, (host, port), now, transport=transport)

    def _bye(self, dialog: Dialog | None, reason: str, now: float,
             connection: int | None) -> None:
        if dialog is None:
            return
        self.endpoint.remove_dialog(dialog)
        bye = dialog.create_request("BYE", headers=[("Reason", reason)])
        host, port, transport = dialog.next_hop()
        self.endpoint.send_request(bye, (host, port), now, transport=transport,
                                   connection=connection if transport != "udp" else None)

    # -- authorization and the carrier leg ------------------------------------------------

    def _at_limit(self, call: Call) -> bool:
        """The call's facility already has its limit of calls placed (screening onwards)."""
        limit = self.settings.max_calls.get(call.facility_id)
        if limit is None:
            return False
        placed = sum(1 for other in self.calls.values()
                     if other is not call and other.facility_id == call.facility_id
                     and other.flow.state in _PLACED)
        return placed >= limit

    async def _authorize(self, call: Call, details: CallDetails) -> None:
        if self._at_limit(call):
            flow = call.flow
            self._feed(call, lambda now: flow.refused(outcomes.FACILITY_BUSY, now,
                                                      spoken=cm.Refusal.FACILITY_BUSY))
            self._flush()
            return
        if not self.routes.any_usable:
            # Every gateway is down or at its limit: nothing is held for a call that
            # cannot be placed.
            flow = call.flow
            self._feed(call, lambda now: flow.refused(outcomes.GATEWAYS_BUSY, now))
            self._flush()
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        request = CallRequest(call_id=call.id, facility_id=call.facility_id, pin=details.pin,
                              dialled=details.dialled, at=self.wall_now(),
                              use_debit=details.use_debit, station=call.station)
        # The carrier leg's RTP ports, opened while the payer is found and funds are
        # held: a pair bound ahead, else bound on the spot (a media host given as an
        # address never makes this wait for the loop).
        def on_event(ev: MediaEvent) -> None:
            self._on_carrier_media(call, ev)

        opening: asyncio.Future[RtpEndpoint] = start_eagerly(RtpEndpoint.open(
            PCMU, host=self.settings.media_host, spares=self.spares, on_event=on_event,
            inactivity_timeout=0,
        ))
        try:
            await self._authorize_with(call, request, started, opening)
        finally:
            if call.carrier_media is None:
                opening.add_done_callback(_close_unused_leg)

    async def _authorize_with(self, call: Call, request: CallRequest, started: float,
                              opening: asyncio.Future[RtpEndpoint]) -> None:
        loop = asyncio.get_running_loop()
        result: Authorization | Refusal | None
        try:
            result = await self.service.authorize(request)
        except AccountsError as exc:
            log.warning("call %s: authorization failed: %s", call.id, exc)
            result = None
        except Exception:
            # Whatever broke, the caller gets a 503 rather than silence.
            log.exception("call %s: authorization failed", call.id)
            result = None
        if self.metrics is not None:
            self.metrics.observe_authorization(loop.time() - started)
        flow = call.flow
        if isinstance(result, Authorization):
            flow.funds_held(result)
            if self.metrics is not None:
                self.metrics.reservation_made(call.facility_id, str(result.product),
                                              result.reservation.amount_units)
        if flow.state is not CallState.AUTHORIZING:
            return  # cancelled meanwhile: the end of the call releases the hold
        if result is None:
            self._feed(call, lambda now: flow.refused(outcomes.INTERNAL_FAILURE, now))
            self._flush()
            return
        if isinstance(result, Refusal):
            how = outcomes.from_refusal(result)
            reason = result.reason
            hours: Windows = ()
            if flow.menu_call and reason is RefusalReason.OUTSIDE_HOURS:
                windows = self.settings.calling_windows.get(call.facility_id)
                hours = windows(self.wall_now()) if windows is not None else ()
            self._feed(call, lambda now: flow.refused(how, now, reason=reason, hours=hours))
            self._flush()
            return
        try:
            media = await asyncio.shield(opening)
        except MediaError as exc:
            log.warning("call %s: no media port for the carrier leg: %s", call.id, exc)
            self._feed(call, lambda now: flow.refused(outcomes.INTERNAL_FAILURE, now))
            self._flush()
            return
        if flow.state is not CallState.AUTHORIZING:
            return  # the caller closes the unused leg
        call.carrier_media = media
        lang = result.language if result.language in self.catalogues else "en"
        grant = CallGrant.from_authorization(result, lang)
        self._feed(call, lambda now: flow.authorized(grant, now))
        self._flush()

    def _dial(self, call: Call, now: float) -> None:
        """INVITE the next gateway of the call's route (the first, on the first attempt)."""
        auth = call.authorization
        media = call.carrier_media
        assert auth is not None and media is not None
        if call.route is None:
            call.route = self.routes.plan()
        elif call.carrier_tx is not None:
            # A gateway given up: its late answers find no call (a 2xx is ACKed and BYEd).
            if call.early_media is not None:
                self._end_early_media(call)
                self._ringback(call)
            self.by_carrier_tx.pop(call.carrier_tx, None)
            self.by_carrier_call_id.pop(call.carrier_call_id, None)
            call.carrier_call_id = new_call_id()
            call.carrier_early.clear()
            call.carrier_racked.clear()
            if self.metrics is not None and call.gateway:
                self.metrics.carrier_failover(call.gateway)
        picked = call.route.next()
        if picked is None:
            # Every gateway went down or filled up since the call was authorized.
            loop = asyncio.get_running_loop()
            loop.call_soon(self._no_gateway_left, call)
            return
        gateway, target = picked
        call.flow.routes_left = call.route.remaining
        call.gateway = gateway.name
        if self.metrics is not None:
            self.metrics.gateway_calls(gateway.name, self.routes.calls(gateway.name))
        host, port = target.host, target.port
        uri = f"sip:{auth.called.e164}@{_hostport(host, port)}"
        if target.transport != "udp":
            uri += f";transport={target.transport}"
        offer = create_offer(self.settings.media_host, media.port)
        call.carrier_offer = offer
        h = Headers()
        h.set("from", f"<sip:{call.facility_id}@{self.contact.split('@', 1)[1]}>;tag={new_tag()}")
        h.set("to", f"<{uri}>")
        h.set("call-id", call.carrier_call_id)
        h.set("cseq", "1 INVITE")
        h.set("contact", f"<{self._contacts.get(target.transport, self.contact)}>")
        # Supported (timer, 100rel) is the endpoint's: it adds it to every request it sends.
        h.set("content-type", "application/sdp")
        invite = Request("INVITE", uri, h, offer.serialize())
        call.carrier_address = (host, port)
        call.carrier_transport = target.transport
        call.carrier_invite = invite
        call.carrier_tx = self.endpoint.send_request(invite, (host, port), now,
                                                     transport=target.transport)
        self.by_carrier_tx[call.carrier_tx] = call
        self.by_carrier_call_id[call.carrier_call_id] = call

    def _no_gateway_left(self, call: Call) -> None:
        flow = call.flow
        if flow.state in (CallState.DIALING, CallState.RINGING):
            if call.carrier_tx is not None:
                self.endpoint.cancel(call.carrier_tx, self.now())
            self._feed(call, lambda now: flow.carrier_failed(outcomes.GATEWAYS_BUSY, now))
            self._flush()

    # -- media -------------------------------------------------------------------------------

    def _ringback(self, call: Call) -> None:
        """A menu caller waits for the called party: the carrier's early media if it sends
        any, else our ringback tone (looped)."""
        media = call.facility_media
        if media is None or media.closed:
            return
        if call.early_media is not None:
            call.ringback = False
            media.stop_playback()
            call.early_media.start()
            return
        call.ringback = True
        media.play(ringback_payload(media.session.codec))

    def _early_media(self, call: Call, response: Any) -> None:
        """A 180/183 with SDP on a menu call: point the carrier leg at the carrier's media
        and relay it to the caller (at once if the ringback tone plays, else when it would
        start). Nothing is answered or billed: the answer is the 200 OK."""
        if call.early_media is not None or call.carrier_media is None or \
                call.facility_media is None or call.carrier_offer is None:
            return
        try:
            negotiated = accept_answer(call.carrier_offer, SessionDescription.parse(response.body))
        except (SdpError, ValueError) as exc:
            log.info("call %s: carrier early media unusable: %s", call.id, exc)
            return
        _configure_leg(call.carrier_media, negotiated)
        call.early_media = EarlyMediaRelay(call.carrier_media, call.facility_media)
        if call.ringback:
            self._ringback(call)

    def _end_early_media(self, call: Call) -> None:
        if call.early_media is not None:
            call.early_media.stop()
            call.early_media = None

    def _on_carrier_media(self, call: Call, event: MediaEvent) -> None:
        if isinstance(event, DtmfReceived):
            if call.flow.state is CallState.PROMPTING:
                d, src = event.digit, event.source
                self._feed(call, lambda now: call.flow.digit(d, now, src))
                self._flush()
        elif isinstance(event, PlaybackFinished) and call.flow.state in (
                CallState.PROMPTING, CallState.FAREWELL):
            self._feed(call, call.flow.prompt_finished)
            self._flush()

    def _on_facility_media(self, call: Call, event: MediaEvent) -> None:
        """On a header call the facility leg plays nothing of its own and its keys mean
        nothing; on a menu call it carries the caller's menu until the legs are bridged."""
        flow = call.flow
        if not flow.menu_call or call.bridge is not None:
            return
        if isinstance(event, DtmfReceived):
            d = event.digit
            self._feed(call, lambda now: flow.caller_digit(d, now))
            self._flush()
        elif isinstance(event, PlaybackFinished):
            media = call.facility_media
            if call.ringback and media is not None and not media.closed:
                media.play(ringback_payload(media.session.codec))  # the cadence loops
                return
            self._feed(call, flow.caller_prompt_finished)
            self._flush()

    # -- the caller's menu (menu trunks) -----------------------------------------------

    async def _start_menu_call(self, call: Call) -> None:
        """Open the facility leg's media, then answer the caller and start the menu."""
        try:
            media = await RtpEndpoint.open(
                PCMU, host=self.settings.media_host, spares=self.spares,
                on_event=lambda ev: self._on_facility_media(call, ev), inactivity_timeout=0,
            )
        except MediaError as exc:
            log.warning("call %s: no media port for the caller's menu: %s", call.id, exc)
            how = outcomes.INTERNAL_FAILURE
            self.endpoint.respond(call.invite, how.status, self.now(), to_tag=call.to_tag,
                                  headers=[("Reason", how.reason)])
            self._feed(call, lambda now: call.flow.hang_up(how, now))
            self._flush()
            return
        if call.flow.state is not CallState.MENU:
            media.close()
            return
        call.facility_media = media
        self._feed(call, call.flow.start_menu)
        self._flush()

    def _answer_menu_call(self, call: Call, now: float) -> None:
        """200 OK with our SDP answer, so the caller hears the menu."""
        media = call.facility_media
        assert media is not None
        answer, negotiated = answer_offer(call.offer, self.settings.media_host, media.port)
        _configure_leg(media, negotiated)
        call.facility_sdp = answer.serialize()
        ok = make_response(call.invite, 200, to_tag=call.to_tag, headers=[
            ("Contact", f"<{self._contact_for(call)}>"), ("Content-Type", "application/sdp"),
            *self._facility_session(call, now)], body=call.facility_sdp)
        dialog = Dialog.from_uas(call.invite, ok, local_contact=self._contact_for(call))
        self.endpoint.add_dialog(dialog)
        self.endpoint.send_response(ok, now)
        call.facility_dialog = dialog
        self._arm_sessions(call)

    async def _check_pin(self, call: Call, pin: str) -> None:
        """The station's lock first, then the PIN at this facility; a wrong PIN is counted."""
        fid, at = call.facility_id, self.wall_now()
        # A phone that names no user in its From is known by its address.
        station = call.station or call.source[0]
        service = self.service
        result: cm.PinResult
        try:
            if await service.station_lock(fid, station, at) is not None:
                result = cm.PinLocked()
            else:
                person = await self._person(fid, pin)
                if person is None:
                    lock = await service.pin_failed(fid, station, at)
                    if self.metrics is not None:
                        self.metrics.pin_failed(fid)
                        if lock is not None:
                            self.metrics.station_locked(fid)
                    result = cm.PinInvalid() if lock is None else cm.PinLocked()
                elif _suspended(person, at):
                    result = cm.PinSuspended()
                else:
                    language = person.language if person.language in self.catalogues else "en"
                    result = cm.PinValid(language, await self._debit_balance(fid, pin, at))
        except Exception as exc:
            # Unanswered, the menu ends the call with "call failed" after its answer timeout.
            log.warning("call %s: PIN check failed: %s", call.id, exc)
            return
        if call.flow.state is CallState.MENU:
            self._feed(call, lambda now: call.flow.pin_checked(result, now))
            self._flush()

    async def _person(self, facility_id: str, pin: str) -> Person | None:
        try:
            return await self.service.store.get_person(facility_id, pin)
        except NotFound:
            return None

    async def _debit_balance(self, facility_id: str, pin: str, at: datetime) -> Decimal | None:
        """What the person's own Debit account can spend, in whole cents, if it can pay
        (menu calls ask for it as ``X-Payer: debit`` does); None otherwise."""
        if facility_id not in self.settings.debit_facilities:
            return None
        try:
            # The number is not known yet: the Debit account is the person's, whatever it is.
            candidates = await self.service.store.payer_candidates(facility_id, pin, "", at)
        except AccountsError as exc:
            log.debug("no balance for the caller's menu: %s", exc)
            return None
        account = candidates.debit
        if account is None or account.status is not AccountStatus.OPEN:
            return None
        spendable = account.balance_units - account.floor_units
        if spendable <= 0:
            return None
        return Decimal(cents_str(spendable - spendable % 100))

    async def _bridge_menu_call(self, call: Call, record: bool) -> None:
        """The called party accepted a menu call: the caller's leg is answered; bridge."""
        media = call.facility_media
        if call.flow.state is not CallState.CONNECTED or media is None or \
                call.carrier_media is None:
            return
        call.ringback = False
        media.stop_playback()
        await self._record_and_bridge(call, record, self.now())

    async def _connect(self, call: Call, record: bool) -> None:
        """Answer the facility and bridge the legs (the called party accepted)."""
        flow = call.flow
        try:
            # A spare pair is taken at once: open() then returns without suspending.
            media = await RtpEndpoint.open(
                PCMU, host=self.settings.media_host, spares=self.spares,
                on_event=lambda ev: self._on_facility_media(call, ev), inactivity_timeout=0,
            )
        except MediaError as exc:
            log.warning("call %s: no media port for the facility leg: %s", call.id, exc)
            self._feed(call, lambda now: flow.media_lost(now, before_acceptance_answer=True))
            self._flush()
            return
        if flow.state is not CallState.CONNECTED or call.carrier_media is None:
            media.close()
            return
        call.facility_media = media
        now = self.now()
        try:
            answer, negotiated = answer_offer(call.offer, self.settings.media_host, media.port)
            _configure_leg(media, negotiated)
            call.facility_sdp = answer.serialize()
            ok = make_response(call.invite, 200, to_tag=call.to_tag, headers=[
                ("Contact", f"<{self._contact_for(call)}>"),
                ("Content-Type", "application/sdp"), *self._facility_session(call, now)],
                body=call.facility_sdp)
            dialog = Dialog.from_uas(call.invite, ok, local_contact=self._contact_for(call))
            self.endpoint.add_dialog(dialog)
            self.endpoint.send_response(ok, now)
            call.facility_dialog = dialog
            self._arm_sessions(call)
        except SipError as exc:
            log.warning("call %s: cannot answer the facility: %s", call.id, exc)
            self._feed(call, lambda now: flow.media_lost(now, before_acceptance_answer=True))
            self._flush()
            return
        await self._record_and_bridge(call, record, now)

    async def _record_and_bridge(self, call: Call, record: bool, now: float) -> None:
        flow = call.flow
        media = call.facility_media
        assert media is not None and call.carrier_media is not None
        auth = call.authorization
        if record and auth is not None and not auth.privileged:
            # Creating the file can wait on the disk (other recordings' syncs hold its
            # journal): that happens off the event loop, which carries every other call.
            self._flush()  # the 200 OK goes out meanwhile
            call.recording_open = asyncio.get_running_loop().create_task(asyncio.to_thread(
                open_recording, self.settings.recordings_dir,
                _UNSAFE_FILE_CHARS.sub("_", call.id), privileged=False,
                codecs=(media.session.codec, call.carrier_media.session.codec), now=now))
            call_id = call.id
            call.recording_open.add_done_callback(
                lambda task: _log_recording_failure(call_id, task))
            self._take_recorder(call, await _opened_recorder(call))
            if flow.state is not CallState.CONNECTED or call.carrier_media is None:
                return  # ended meanwhile: its settlement closes the recording
        self._start_bridge(call)
        self._flush()

    def _take_recorder(self, call: Call, recorder: Recorder | None) -> None:
        if recorder is not None and call.recorder is None:
            call.recorder = recorder
            call.recording_path = str(recorder.path)

    def _start_bridge(self, call: Call) -> None:
        assert call.facility_media is not None and call.carrier_media is not None
        call.bridge = Bridge(call.facility_media, call.carrier_media, recorder=call.recorder,
                             inactivity_timeout=self.settings.inactivity_timeout,
                             on_inactive=lambda leg: self._on_inactive(call))
        call.bridge.start()
        self._watch_called_leg(call)

    def _on_inactive(self, call: Call) -> None:
        if call.flow.state is CallState.CONNECTED:
            self._feed(call, call.flow.media_lost)
            self._flush()

    def _warn(self, call: Call) -> None:
        """One minute left: both parties hear the warning; the bridge and recording go on."""
        bridge, catalogue = call.bridge, self._catalogue(call)
        a, b = call.facility_media, call.carrier_media
        if bridge is None or not bridge.running or catalogue is None or a is None or b is None:
            return
        warning = ("one_minute_warning",)
        bridge.announce(catalogue.encoded(warning, a.session.codec),
                        catalogue.encoded(warning, b.session.codec))

    # -- three-way calling ---------------------------------------------------------------

    def _watch_called_leg(self, call: Call) -> None:
        """Every connected call's called leg goes through the three-way detector,
        recorded or not, privileged or not (it keeps no audio)."""
        if call.bridge is None or self._loop is None:
            return
        accepted = call.flow.accept_at
        start = self.now() - accepted if accepted is not None else 0.0
        settings = self.settings.three_way.get(call.facility_id, ThreeWaySettings())
        call.three_way_leg = called_leg_watch(self._loop).watch(
            call.bridge, lambda suspected: self._on_three_way(call, suspected),
            sensitivity=settings.sensitivity, start=start)

    def _unwatch_called_leg(self, call: Call) -> None:
        if call.three_way_leg is not None and self._loop is not None:
            called_leg_watch(self._loop).release(call.three_way_leg)
            call.three_way_leg = None

    def _on_three_way(self, call: Call, suspected: ThreeWaySuspected) -> None:
        signals = evidence(suspected)
        self._feed(call, lambda now: call.flow.three_way_suspected(signals, now))
        self._flush()

    def _three_way_detected(self, call: Call, detected: ThreeWayDetected) -> None:
        if self.metrics is not None:
            self.metrics.three_way_call(call.facility_id, detected.action)
        call_log.info(json.dumps({"event": "three_way_call", "call_id": call.id,
                                  "facility": call.facility_id, "action": detected.action,
                                  "signals": detected.signals}, separators=(",", ":")))

    def _warn_three_way(self, call: Call) -> None:
        """Both parties hear that three-way calling is not allowed; the flow hears when
        it ended (or at once, if it cannot be played)."""
        bridge, catalogue = call.bridge, self._catalogue(call)
        a, b = call.facility_media, call.carrier_media
        if bridge is None or not bridge.running or catalogue is None or a is None or b is None:
            self._feed(call, call.flow.three_way_warning_played)
            return
        warning = ("three_way_warning",)
        done = bridge.announce(catalogue.encoded(warning, a.session.codec),
                               catalogue.encoded(warning, b.session.codec))

        def played(_: asyncio.Future[None]) -> None:
            self._feed(call, call.flow.three_way_warning_played)
            self._flush()

        done.add_done_callback(played)

    async def _heartbeat(self, reservation_id: str, seconds: int) -> None:
        try:
            await self.service.heartbeat(reservation_id, seconds, self.wall_now())
        except Exception as exc:
            log.warning("heartbeat of %s failed: %s", reservation_id, exc)

    # -- session timers (RFC 4028) ---------------------------------------------------------

    def _leg(self, call: Call, leg: str) -> tuple[SessionTimer | None, Dialog | None]:
        if leg == "facility":
            return call.facility_timer, call.facility_dialog
        return call.carrier_timer, call.carrier_dialog

    def _facility_session(self, call: Call, now: float) -> list[tuple[str, str]]:
        """The session-timer headers of the facility's 2xx; the leg's timer starts with it."""
        timer, headers = SessionTimer.answering(call.invite, now, min_se=self.endpoint.min_se,
                                                interval=self.settings.session_interval)
        call.facility_timer = timer
        call.facility_origin = _origin_of(call.invite.body)
        return headers

    def _carrier_session(self, event: ResponseReceived) -> None:
        """The 2xx that confirmed the carrier leg starts its timer, if it names one."""
        response = event.response
        if event.request.method != "INVITE" or not 200 <= response.status < 300:
            return
        call = self.by_carrier_tx.get(event.transaction_id)
        if call is None or call.carrier_dialog is None or call.carrier_timer is not None:
            return
        call.carrier_allows_update = "UPDATE" in response.headers.get_list("allow")
        call.carrier_origin = _origin_of(response.body)
        if call.carrier_offer is not None:
            call.carrier_sdp = call.carrier_offer.serialize()
        try:
            call.carrier_timer = SessionTimer.answered(response, self.now(),
                                                       min_se=self.endpoint.min_se)
        except SipError as exc:
            log.info("call %s: carrier session timer ignored: %s", call.id, exc)
            return
        self._arm_sessions(call)

    def _arm_sessions(self, call: Call) -> None:
        for leg in ("facility", "carrier"):
            handle = call.session_handles.pop(leg, None)
            if handle is not None:
                handle.cancel()
            timer, dialog = self._leg(call, leg)
            if timer is not None and dialog is not None and self._loop is not None:
                call.session_handles[leg] = self._loop.call_at(
                    timer.get_timer() or 0.0, self._on_session_timer, call, leg)

    def _on_session_timer(self, call: Call, leg: str) -> None:
        call.session_handles.pop(leg, None)
        timer = self._leg(call, leg)[0]
        if timer is None or call.flow.state is CallState.ENDED:
            return
        self._session_actions(call, leg, timer.handle_timer(self.now()))
        self._flush()

    def _session_actions(self, call: Call, leg: str,
                         actions: list[RefreshDue | SessionExpired]) -> None:
        for action in actions:
            if isinstance(action, SessionExpired):
                self._session_expired(call, leg, action)
                return
            self._send_refresh(call, leg)
        self._arm_sessions(call)

    def _session_expired(self, call: Call, leg: str, expired: SessionExpired) -> None:
        alive = expired.alive_at
        if call.bridge is not None:
            alive = max(alive, call.bridge.heard_at)
        log.info("call %s: %s leg: %s", call.id, leg, expired.reason)
        self._feed(call, lambda now: call.flow.session_expired(now, alive_at=alive))

    def _send_refresh(self, call: Call, leg: str) -> None:
        """A session refresh: UPDATE where the peer allows it, else a re-INVITE offering
        our SDP unchanged."""
        timer, dialog = self._leg(call, leg)
        if timer is None or dialog is None:
            return
        if leg == "facility":
            allows_update = "UPDATE" in call.invite.headers.get_list("allow")
            sdp = call.facility_sdp
        else:
            allows_update = call.carrier_allows_update
            sdp = call.carrier_sdp
        if allows_update:
            request = dialog.create_request("UPDATE", headers=timer.refresh_headers())
        else:
            request = dialog.create_request("INVITE", headers=timer.refresh_headers(),
                                            body=sdp, content_type="application/sdp")
            call.offering.add(leg)
        host, port, transport = dialog.next_hop()
        connection = call.connection if leg == "facility" and transport != "udp" else None
        tx = self.endpoint.send_request(request, (host, port), self.now(), transport=transport,
                                        connection=connection)
        self.refreshes[tx] = (call, leg)
        call.refresh_txs.add(tx)

    def _on_refresh_answer(self, event: ResponseReceived) -> None:
        status = event.response.status
        if status < 200:
            return
        call, leg = self.refreshes.pop(event.transaction_id)
        call.refresh_txs.discard(event.transaction_id)
        if event.request.method == "INVITE":
            call.offering.discard(leg)
        timer, dialog = self._leg(call, leg)
        now = self.now()
        if event.request.method == "INVITE" and status < 300 and dialog is not None:
            host, port, transport = dialog.next_hop()
            connection = call.connection if leg == "facility" and transport != "udp" else None
            self.endpoint.send_ack(dialog.create_ack(event.request.cseq[0]), (host, port), now,
                                   transport=transport, connection=connection)
        if timer is None or call.flow.state is CallState.ENDED:
            return
        if status < 300:
            timer.refreshed(now, event.response)
            self._arm_sessions(call)
        else:
            # RFC 3261 14.1: after a 491, the owner of the Call-ID waits 2.1-4 s, the
            # other side 0-2 s (we chose the carrier leg's Call-ID).
            retry = random.uniform(2.1, 4.0) if leg == "carrier" else random.uniform(0.0, 2.0)
            self._session_actions(call, leg, timer.refresh_failed(now, event.response,
                                                                  retry_in=retry))

    def _answer_refresh(self, call: Call, from_carrier: bool, request: Request,
                        now: float) -> bool:
        """Answer a refresh from a party: an UPDATE without an offer, or a re-INVITE whose
        offer is the session unchanged (same SDP origin and version), with our SDP as it
        was. False for anything else (a new offer)."""
        leg = "carrier" if from_carrier else "facility"
        timer = self._leg(call, leg)[0]
        if request.method == "INVITE":
            origin = call.carrier_origin if from_carrier else call.facility_origin
            if origin is None or _origin_of(request.body) != origin:
                return False
            sdp = call.carrier_sdp if from_carrier else call.facility_sdp
            headers = [("Content-Type", "application/sdp")]
        elif request.body:
            return False
        else:
            sdp, headers = b"", []
        contact = self.contact if from_carrier else self._contact_for(call)
        if timer is not None:
            headers += timer.refreshed(now, request, we_answered=True)
        self.endpoint.respond(request, 200, now, headers=[("Contact", f"<{contact}>"), *headers],
                              body=sdp)
        self._arm_sessions(call)
        return True

    # -- offers mid-call: hold, resume, new media, codec change ------------------------------

    def _answer_new_offer(self, call: Call, from_carrier: bool, request: Request,
                          now: float) -> None:
        """A re-INVITE or UPDATE with a new offer from a party. The controller terminates
        media, so the offer is answered from that leg alone (never forwarded): the leg
        is pointed at the new address and codec, the bridge follows, and a hold
        (sendonly/inactive) mutes the direction and the recording. No money moves."""
        leg = "carrier" if from_carrier else "facility"
        ep = self.endpoint
        media = call.carrier_media if from_carrier else call.facility_media
        ours = call.carrier_sdp if from_carrier else call.facility_sdp
        if media is None or media.closed or not ours:
            ep.respond(request, 488, now, headers=[("Warning", '399 ics "no session to change"')])
            return
        if leg in call.offering:
            ep.respond(request, 491, now)  # glare: our own offer is out on this leg
            return
        try:
            answer, negotiated = answer_reoffer(SessionDescription.parse(request.body),
                                                SessionDescription.parse(ours), media.port)
        except SdpError as exc:
            ep.respond(request, 488, now, f"Not Acceptable Here ({exc})",
                       headers=[("Warning", f'399 ics "{exc}"')])
            return
        _configure_leg(media, negotiated)
        body = answer.serialize()
        if from_carrier:
            call.carrier_sdp, call.carrier_origin = body, _origin_of(request.body)
        else:
            call.facility_sdp, call.facility_origin = body, _origin_of(request.body)
        call.directions[leg] = negotiated.direction
        if call.bridge is not None:
            call.bridge.retarget()
            call.bridge.set_directions(sends(call.directions["facility"]),
                                       sends(call.directions["carrier"]))
        timer = self._leg(call, leg)[0]
        headers = [("Contact", f"<{self.contact if from_carrier else self._contact_for(call)}>"),
                   ("Content-Type", "application/sdp")]
        if timer is not None:
            headers += timer.refreshed(now, request, we_answered=True)
        ep.respond(request, 200, now, headers=headers, body=body)
        self._arm_sessions(call)
        log.info("call %s: %s leg renegotiated: %s %s at %s:%d", call.id, leg,
                 negotiated.codec, negotiated.direction, negotiated.remote_address,
                 negotiated.remote_port)

    def _offer_in_answer(self, call: Call, from_carrier: bool, request: Request,
                         now: float) -> None:
        """A re-INVITE without an offer (often a session refresh): the 2xx carries our
        offer, our SDP on the leg as it is (RFC 3264 8: unchanged, so the same version),
        and the answer comes in the ACK (`_on_answer_in_ack`)."""
        leg = "carrier" if from_carrier else "facility"
        media = call.carrier_media if from_carrier else call.facility_media
        ours = call.carrier_sdp if from_carrier else call.facility_sdp
        if media is None or media.closed or not ours:
            self.endpoint.respond(request, 488, now,
                                  headers=[("Warning", '399 ics "no session to change"')])
            return
        if leg in call.offering:
            self.endpoint.respond(request, 491, now)  # glare: our own offer is out on this leg
            return
        try:
            offer = SessionDescription.parse(ours)
        except SdpError as exc:  # our own SDP: never expected
            self.endpoint.respond(request, 500, now, f"Server Internal Error ({exc})")
            return
        call.offered_in_2xx[leg] = offer
        timer = self._leg(call, leg)[0]
        headers = [("Contact", f"<{self.contact if from_carrier else self._contact_for(call)}>"),
                   ("Content-Type", "application/sdp")]
        if timer is not None:
            headers += timer.refreshed(now, request, we_answered=True)
        self.endpoint.respond(request, 200, now, headers=headers, body=ours)
        self._arm_sessions(call)

    def _on_answer_in_ack(self, ack: Request) -> None:
        """The answer to the offer our 2xx made: the leg takes what it agreed (a hold, a
        new address or codec) as for an offer it made itself. An answer we cannot take
        leaves the session as it was (there is no request left to refuse)."""
        call = self.calls.get(ack.call_id)
        from_carrier = False
        if call is None:
            call = self.by_carrier_call_id.get(ack.call_id)
            from_carrier = call is not None
        if call is None or call.flow.state is CallState.ENDED:
            return
        leg = "carrier" if from_carrier else "facility"
        offer = call.offered_in_2xx.pop(leg, None)
        media = call.carrier_media if from_carrier else call.facility_media
        if offer is None or media is None or media.closed:
            return
        try:
            negotiated = accept_answer(offer, SessionDescription.parse(ack.body))
        except SdpError as exc:
            log.warning("call %s: %s leg's answer in its ACK refused, session unchanged: %s",
                        call.id, leg, exc)
            return
        _configure_leg(media, negotiated)
        if from_carrier:
            call.carrier_origin = _origin_of(ack.body)
        else:
            call.facility_origin = _origin_of(ack.body)
        call.directions[leg] = negotiated.direction
        if call.bridge is not None:
            call.bridge.retarget()
            call.bridge.set_directions(sends(call.directions["facility"]),
                                       sends(call.directions["carrier"]))
        log.info("call %s: %s leg renegotiated in its ACK: %s %s at %s:%d", call.id, leg,
                 negotiated.codec, negotiated.direction, negotiated.remote_address,
                 negotiated.remote_port)

    # -- the end ----------------------------------------------------------------------------------

    def _ended(self, call: Call, ended: CallEnded) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        self._end_early_media(call)
        for handle in call.session_handles.values():
            handle.cancel()
        call.session_handles.clear()
        for tx in call.refresh_txs:
            self.refreshes.pop(tx, None)
        # The legs close first: a bridge stopped over closed legs hands them nothing back
        # (no media sessions resumed, serviced and reported on for a moment).
        for media in (call.carrier_media, call.facility_media):
            if media is not None:
                media.close()
        self._unwatch_called_leg(call)
        if call.bridge is not None:
            call.bridge.recorder = None  # closed in _finish, once a recording being created exists
            call.bridge.stop()
            call.bridge.on_inactive = None  # the call <-> bridge cycle
        for dialog in (call.carrier_dialog, call.facility_dialog):
            if dialog is not None:
                self.endpoint.remove_dialog(dialog)
        self.calls.pop(call.id, None)
        if call.route is not None:
            call.route.finish()
            if self.metrics is not None and call.gateway:
                self.metrics.gateway_calls(call.gateway, self.routes.calls(call.gateway))
        if call.carrier_tx is not None:
            self.by_carrier_tx.pop(call.carrier_tx, None)
        self.by_carrier_call_id.pop(call.carrier_call_id, None)
        task = asyncio.get_running_loop().create_task(self._finish(call, ended))
        self._finishing.add(task)
        task.add_done_callback(self._finish_done)

    def _finish_done(self, task: asyncio.Task[None]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("settling a call failed", exc_info=task.exception())

    async def _finish(self, call: Call, ended: CallEnded) -> None:
        """Close the recording, settle (or release) the reservation, write the CDR, log."""
        if call.recording_open is not None:
            # A call can end while its recording file is being created.
            self._take_recorder(call, await _opened_recorder(call))
        recorder = call.recorder
        if recorder is not None and not recorder.closed:
            # Closing writes the last audio to the page cache and queues the file's
            # fsync for the recording sync thread: nothing here waits for the disk.
            recorder.close(ended.end_at)
        if call.auth_task is not None and not call.auth_task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(call.auth_task)
        auth = call.authorization
        settlement: Settlement | None = None
        at = self.wall(ended.end_at)
        if auth is not None:
            talked = ended.talked_seconds if ended.accept_at is not None else 0
            try:
                settlement = await self.service.settle(auth.reservation_id, talked, at)
            except Exception as exc:
                # Left open: the next start-up's recovery settles it from its heartbeat.
                log.error("call %s: settlement failed: %s", call.id, exc)
            if settlement is not None and self.metrics is not None:
                self.metrics.settlement_made(
                    call.facility_id, str(auth.product),
                    settlement.quote.total_units if settlement.quote is not None else 0)
        record = call_detail_record(
            call_id=call.id, facility_id=call.facility_id, pin=call.pin, number=call.dialled,
            authorization=auth, settlement=settlement, setup_at=self.wall(ended.setup_at),
            answer_at=self.wall(ended.answer_at) if ended.answer_at is not None else None,
            accept_at=self.wall(ended.accept_at) if ended.accept_at is not None else None,
            end_at=at, talked_seconds=ended.talked_seconds, outcome=ended.outcome,
            disconnect_reason=ended.text, disconnect_side=ended.side,
            recording_path=call.recording_path, station=call.station,
            menu_seconds=ended.menu_seconds, gateway=call.gateway, three_way=ended.three_way,
        )
        try:
            await self.service.record_call(record)
        except Exception as exc:
            log.error("call %s: CDR not written: %s", call.id, exc)
        self.stats["ended"] += 1
        if self.metrics is not None:
            self.metrics.call_ended(call.facility_id, str(ended.outcome))
        call_log.info(json.dumps({
            "event": "call_ended",
            "call_id": call.id,
            "facility": call.facility_id,
            "pin": call.pin,
            "number": record.number_e164,
            "outcome": str(ended.outcome),
            "status": ended.status,
            "reason": ended.text,
            "side": ended.side,
            "product": record.product or None,
            "talked_seconds": record.talked_seconds,
            "total": cents_str(record.total_units),
            "recording": record.recording_path,
            "gateway": call.gateway or None,
            # Facility INVITE in -> carrier INVITE out, as this process saw it.
            "post_dial_delay_ms": (round((call.flow.dial_at - ended.setup_at) * 1000, 2)
                                   if call.flow.dial_at is not None else None),
        }, separators=(",", ":")))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
def _origin_of(sdp: bytes) -> str | None:
    """The ``o=`` line of an SDP body: the same line means the same session version."""
    for line in sdp.split(b"\n"):
        if line.startswith(b"o="):
            return line.strip().decode("utf-8", "replace")
    return None


def _station_of(request: Request) -> str:
    """The From URI's user part: the phone (station) the call comes from."""
    try:
        uri = NameAddress.parse(request.headers.get("from") or "").uri
        return SipUri.parse(uri).user or ""
    except (SipError, ValueError):
        return ""


def _suspended(person: Person, at: datetime) -> bool:
    """Released, or under a restriction in force: the menu says "not allowed"."""
    if person.released_at is not None and person.released_at <= at:
        return True
    return any(r.until is None or at < r.until for r in person.restrictions)


def _windows_of(facility: Any) -> Callable[[datetime], Windows]:
    def windows(at: datetime) -> Windows:
        local = at.astimezone(facility.zone)
        return tuple(facility.calling_windows_on(_WEEKDAYS[local.weekday()]))
    return windows


def _close_unused_leg(opening: asyncio.Future[RtpEndpoint]) -> None:
    """A carrier leg bound for a call that was refused or ended before dialling."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def _opened_recorder(call: Call) -> Recorder | None:
    """The call's recorder once its file is created; None if it could not be."""
    assert call.recording_open is not None
    try:
        return await asyncio.shield(call.recording_open)
    except (OSError, ValueError):
        return None  # logged once, by _log_recording_failure


def _log_recording_failure(call_id: str, task: asyncio.Task[Recorder | None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("call %s: recording could not start: %s", call_id, exc)


def _configure_leg(media: RtpEndpoint, negotiated: NegotiatedAudio) -> None:
    """Point a leg opened before its SDP was settled at what the peer agreed to."""
    codec = {"PCMU": PCMU, "PCMA": PCMA}.get(negotiated.codec)
    if codec is None or codec.payload_type != negotiated.payload_type:
        codec = Codec(negotiated.codec, negotiated.payload_type)
    media.configure(codec=codec, remote=(negotiated.remote_address, negotiated.remote_port),
                    telephone_event_pt=negotiated.telephone_event)


#: Trunk id of the carrier gateway: trusted for in-dialog requests (BYE, INFO), never a caller.
CARRIER_TRUNK = "carrier"


#: A call counts against its facility's limit from screening until it ends.
_PLACED = frozenset({CallState.AUTHORIZING, CallState.DIALING, CallState.RINGING,
                     CallState.PROMPTING, CallState.FAREWELL, CallState.CONNECTED})


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def trunks_from_config(config: Any) -> list[Trunk]:
    """Every facility trunk (ids from `trunk_ids`) and the carrier gateways' (their IP
    addresses; the controller adds the addresses of gateway names once resolved)."""
    hosts = [g.host for g in config.carrier.gateways if _is_ip(g.host)]
    if not config.carrier.gateways:
        host, _, _ = config.sip.carrier_gateway.rpartition(":")
        hosts = [host.strip("[]")]
    trunks = [Trunk.from_config(CARRIER_TRUNK, hosts)] if hosts else []
    for tid, _, trunk in trunk_ids(config):
        users = {}
        digest = trunk.digest
        if digest is not None:
            users[digest.username] = digest.password
        trunks.append(Trunk.from_config(tid, [str(n) for n in trunk.networks], users))
    return trunks
