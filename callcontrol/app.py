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
import json
import logging
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
from ivr.tones import ringback_payload
from rating import Product, cents_str

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
from .events import CallAccepted, CallEnded, KeyPressed
from .flow import CallDetails, CallFlow, CallGrant, CallState, FlowSettings, Output
from .outcomes import Disposition
from .sip import (
    AckTimedOut,
    CancelReceived,
    Dialog,
    Endpoint,
    Event,
    Headers,
    MessageRejected,
    NameAddress,
    NegotiatedAudio,
    Request,
    RequestReceived,
    ResponseReceived,
    SdpError,
    SessionDescription,
    SipError,
    SipTransport,
    SipUri,
    TransactionTimedOut,
    TransportError,
    Trunk,
    TrunkPolicy,
    accept_answer,
    answer_offer,
    create_offer,
    make_response,
    new_call_id,
    new_tag,
)

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
            proxies=tuple(config.proxy.sources),
            proxy_source_header=config.proxy.source_header,
        )


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
        self.endpoint = Endpoint(screen=self.policy, trying_delay=0.0)
        self.transport: SipTransport | None = None
        self.ports = PortAllocator(*settings.rtp_ports)
        self.spares = SparePairs(self.ports, settings.media_host)
        kwargs = {"root": catalogue_root} if catalogue_root is not None else {}
        self.catalogues = {lang: PromptCatalogue(lang, **kwargs) for lang in LANGUAGES}
        self.calls: dict[str, Call] = {}
        self.by_carrier_tx: dict[str, Call] = {}
        self.by_carrier_call_id: dict[str, Call] = {}
        self.admission = Admission(settings.ring_timeouts, self.calls, settings.media_host)
        self._flow_settings = {fid: FlowSettings(
            ring_timeout=ring_timeout,
            carrier_response_timeout=settings.carrier_response_timeout,
            heartbeat_interval=settings.heartbeat_seconds,
            menu_choice_timeout=settings.menu_choice_timeout,
            menu_attempts=settings.menu_attempts,
        ) for fid, ring_timeout in settings.ring_timeouts.items()}
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
            ep.respond(call.invite, 180, now, to_tag=call.to_tag,
                       headers=[("Contact", f"<{self._contact_for(call)}>")])
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
            media = call.facility_media
            if media is not None and not media.closed:
                call.ringback = False
                catalogue = self.catalogues.get(out.lang, self.catalogues["en"])
                media.play(catalogue.encoded(out.sequence, media.session.codec))
        elif isinstance(out, PlayRingbackToCaller):
            media = call.facility_media
            if media is not None and not media.closed:
                call.ringback = True
                media.play(ringback_payload(media.session.codec))
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
            self._on_response(event)
        elif isinstance(event, CancelReceived):
            call = self.calls.get(event.invite.call_id)
            if call is not None and call.flow.state is not CallState.ENDED:
                self._feed(call, call.flow.caller_cancelled)
        elif isinstance(event, AckTimedOut):
            call = self.calls.get(event.request.call_id)
            if call is not None and (call.flow.state is CallState.CONNECTED or (
                    call.flow.menu_call and call.flow.state is CallState.MENU)):
                self._feed(call, call.flow.caller_lost)
        elif isinstance(event, (TransactionTimedOut, TransportError)):
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
        if method == "INVITE":
            # Re-INVITEs (session refresh, hold) are not needed to carry a call: the
            # session continues unchanged (RFC 3261 14.1).
            ep.respond(request, 488, now, headers=[("Warning", '399 ics "re-INVITE not '
                                                              'supported"')])
            return
        ep.respond(request, 200, now)

    def _on_response(self, event: ResponseReceived) -> None:
        request = event.request
        response = event.response
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
            self._feed(call, lambda now: flow.carrier_progress(status, now))
            return
        if status >= 300:
            how = outcomes.from_carrier_status(status)
            self._feed(call, lambda now: flow.carrier_failed(how, now))
            return
        # 200 OK: confirm it, then judge its answer.
        try:
            dialog = Dialog.from_uac(request, response)
        except SipError:
            self._ack_and_bye(request, response)
            self._feed(call, lambda now: flow.carrier_failed(outcomes.CARRIER_FAILURE, now))
            return
        self.endpoint.add_dialog(dialog)
        call.carrier_dialog = dialog
        assert call.carrier_address is not None
        self.endpoint.send_ack(dialog.create_ack(request.cseq[0]), call.carrier_address,
                               self.now())
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

    def _ack_and_bye(self, request: Request, response: Any) -> None:
        """A 2xx for an INVITE we no longer want (cancelled, timed out): ACK and BYE it."""
        try:
            dialog = Dialog.from_uac(request, response)
        except SipError:
            return
        now = self.now()
        address = self.settings.carrier
        self.endpoint.send_ack(dialog.create_ack(request.cseq[0]), address, now)
        bye = dialog.create_request("BYE", headers=[("Reason", outcomes.CANCELLED.reason)])
        self.endpoint.send_request(bye, address, now)

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
        auth = call.authorization
        media = call.carrier_media
        assert auth is not None and media is not None
        host, port = self.settings.carrier
        hp = f"[{host}]" if ":" in host else host
        uri = f"sip:{auth.called.e164}@{hp}:{port}"
        offer = create_offer(self.settings.media_host, media.port)
        call.carrier_offer = offer
        h = Headers()
        h.set("from", f"<sip:{call.facility_id}@{self.contact.split('@', 1)[1]}>;tag={new_tag()}")
        h.set("to", f"<{uri}>")
        h.set("call-id", call.carrier_call_id)
        h.set("cseq", "1 INVITE")
        h.set("contact", f"<{self.contact}>")
        h.set("content-type", "application/sdp")
        invite = Request("INVITE", uri, h, offer.serialize())
        call.carrier_address = (host, port)
        call.carrier_invite = invite
        call.carrier_tx = self.endpoint.send_request(invite, (host, port), now)
        self.by_carrier_tx[call.carrier_tx] = call
        self.by_carrier_call_id[call.carrier_call_id] = call

    # -- media -------------------------------------------------------------------------------

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
        ok = make_response(call.invite, 200, to_tag=call.to_tag, headers=[
            ("Contact", f"<{self._contact_for(call)}>"), ("Content-Type", "application/sdp")],
            body=answer.serialize())
        dialog = Dialog.from_uas(call.invite, ok, local_contact=self._contact_for(call))
        self.endpoint.add_dialog(dialog)
        self.endpoint.send_response(ok, now)
        call.facility_dialog = dialog

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
            ok = make_response(call.invite, 200, to_tag=call.to_tag, headers=[
                ("Contact", f"<{self._contact_for(call)}>"),
                ("Content-Type", "application/sdp")],
                body=answer.serialize())
            dialog = Dialog.from_uas(call.invite, ok, local_contact=self._contact_for(call))
            self.endpoint.add_dialog(dialog)
            self.endpoint.send_response(ok, now)
            call.facility_dialog = dialog
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

    async def _heartbeat(self, reservation_id: str, seconds: int) -> None:
        try:
            await self.service.heartbeat(reservation_id, seconds, self.wall_now())
        except Exception as exc:
            log.warning("heartbeat of %s failed: %s", reservation_id, exc)

    # -- the end ----------------------------------------------------------------------------------

    def _ended(self, call: Call, ended: CallEnded) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        # The legs close first: a bridge stopped over closed legs hands them nothing back
        # (no media sessions resumed, serviced and reported on for a moment).
        for media in (call.carrier_media, call.facility_media):
            if media is not None:
                media.close()
        if call.bridge is not None:
            call.bridge.recorder = None  # closed in _finish, once a recording being created exists
            call.bridge.stop()
            call.bridge.on_inactive = None  # the call <-> bridge cycle
        for dialog in (call.carrier_dialog, call.facility_dialog):
            if dialog is not None:
                self.endpoint.remove_dialog(dialog)
        self.calls.pop(call.id, None)
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
            menu_seconds=ended.menu_seconds,
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
            # Facility INVITE in -> carrier INVITE out, as this process saw it.
            "post_dial_delay_ms": (round((call.flow.dial_at - ended.setup_at) * 1000, 2)
                                   if call.flow.dial_at is not None else None),
        }, separators=(",", ":")))


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


def trunks_from_config(config: Any) -> list[Trunk]:
    """Every facility trunk (ids from `trunk_ids`) and the carrier gateway's."""
    host, _, _ = config.sip.carrier_gateway.rpartition(":")
    trunks = [Trunk.from_config(CARRIER_TRUNK, [host.strip("[]")])]
    for tid, _, trunk in trunk_ids(config):
        users = {}
        digest = trunk.digest
        if digest is not None:
            users[digest.username] = digest.password
        trunks.append(Trunk.from_config(tid, [str(n) for n in trunk.networks], users))
    return trunks
