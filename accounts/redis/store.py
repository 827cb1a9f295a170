"""The shared account store: Redis (or Redis Cluster), every money-moving step one atomic write.

Layout. Every record lives under a hash tag naming its owner, so that each
script touches keys of one cluster slot only and runs unchanged on Redis
Cluster:

* ``{a:<account>}``: the account hash (cached balance, held, status...), its
  numbers, its ledger stream, the reservations holding its money, its refunds,
  invoices and used idempotency keys;
* ``{n:<number>}``: what belongs to a called number: which account of each
  product pays for it, its subscriptions, Single Call and subscription
  reservations, receivables, self-blocks and the ledger of those;
* ``{p:<facility>:<pin>}``: a person and their allowed numbers;
* ``{f:<facility>}``: the facility's blocked numbers and prefixes, and its
  PIN-guessing counts and locks (``pin-failures:<station>``,
  ``station-lock:<station>``, ``station-locks``), which expire by themselves
  with their window or lock.

Ids that must be unique across owners (reservation, call, refund, receivable,
subscription and invoice ids, idempotency keys) are claimed with ``SET NX``
before the owner's script runs, and released again if the script refuses.
Registries of owners (``accounts``, ``tags`` ...) are plain sets written
before the records they list, so a crash leaves at most a name that points
at nothing, never a record nobody can find.

Money. Each money step is read, plan, apply: the store reads the records
the step needs (a reservation this node made is known without a read),
``accounts.postings`` plans the step, and the plan is applied by one generic
script (``scripts/apply.lua``, see ``accounts.redis.apply``) that checks the
records are still in the state the plan expects and then writes, all in one
atomic step. Where other nodes move a record concurrently (a balance under
holds), the plan's guard is checked by the script itself (the balance stays
at least the floor); where a record was read and changed meanwhile (a refund
decided twice), the script refuses and the store reads and plans again, at
most ``PLAN_ATTEMPTS`` times. The ledger of each tag is a Redis Stream: one
entry per transaction, appended by the same write that moves the cached
balance, never edited.
``book_balance`` and ``book_totals`` sum the entries themselves, and
``ics accounts verify`` checks every cached balance against its stream.

Round trips. On a standalone Redis the steps of a call share one pipelined
connection (``accounts.redis.lane``): screening reads the call's payers in the
same round trip (the payer records last seen for the call are guessed, and
read again only if the payer index changed), the hold is one write with its
id claims beside it, and settlement one write planned from the reservation
this node holds: three round trips a call.
Administrative operations, and everything on Redis Cluster, go through
redis-py.

Retries. Each script call carries a fresh token; a script that finds its own
token already applied answers as if it just ran, so a command the client
re-sends after a lost reply never moves money twice.

Outages. Redis unreachable raises ``StoreUnavailable`` (the service refuses
new calls with 503) and calls ``on_unavailable``. With a ``journal_path``, a
settlement of a reservation this node made, and a call record, are written
to a local journal instead (``accounts.settlement_journal``) and replayed
exactly once when Redis answers again, before anything else when the store
is opened.

Expiry. What only a finished call needs is kept ``finished_call_ttl_days``
(35 by default) after its reservation is settled or released, then Redis
deletes it: the reservation hash (with its settle token), the call's claim
under the payer's tag, and the global ``loc:res:<id>`` and ``loc:call:<id>``
claims. The settlement's write sets the expiry in the same step that
closes the reservation, so a reservation is never open and expiring; on a
standalone Redis the claims expire in that write too,
on a cluster (where they live in other slots) by an ``EXPIRE`` sent right
after it and again on any replayed settle. The period outlasts any retry,
journal replay or dispute: a settle re-sent within it is answered as a replay
and moves no money; after it, an unknown reservation. Nothing that carries
money ever expires: balances, ledger streams, open reservations,
subscriptions, receivables, refunds, invoices, call records and idempotency
keys of payments stay. (Stores written by earlier versions kept the call
claims as fields of one ``{tag}:calls`` hash, which never expired; nothing
reads it any more, and it can be deleted.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from accounts.cdr import CallDetailRecord, CdrFilter
from accounts.errors import (
    AccountsError,
    DuplicateRequest,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    NotFound,
    StoreUnavailable,
    UnknownAccount,
)
from accounts.model import (
    Account,
    AccountStatus,
    Book,
    Invoice,
    LedgerTransaction,
    Leg,
    Person,
    Receivable,
    ReceivableStatus,
    Refund,
    RefundStatus,
    Reservation,
    ReservationStatus,
    Restriction,
    Subscription,
)
from accounts.postings import (
    BalanceChange,
    CallCharge,
    Plan,
    ReceivableChange,
    RefundChange,
    ReservationChange,
    SecondsChange,
    Step,
    plan_receivable_settlement,
    plan_refund_create,
    plan_refund_decision,
    plan_reserve,
    plan_settle,
    plan_subscription_purchase,
)
from accounts.records import (
    new_subscription_fields,
    receivable_fields,
    receivable_from,
    refund_fields,
    refund_from,
    subscription_from,
)
from accounts.redis.apply import AtomicWrite, PlanConflict, answer
from accounts.redis.call_scripts import hold_args, settle_args
from accounts.redis.lane import Lane
from accounts.settlement_journal import JournaledSettlement, ReplayReport, SettlementJournal
from accounts.station_locks import PinGuardPolicy, StationLock
from accounts.store import (
    MUTABLE_ACCOUNT_FIELDS,
    AccountStore,
    PayerCandidates,
    ScreeningFacts,
    cdr_from_json,
    cdr_json,
    check_account_legs,
    check_station_key,
    ts,
)
from accounts.store import restriction_id as id_of
from rating import Product

log = logging.getLogger("accounts.redis")

SCRIPTS_DIR = Path(__file__).with_name("scripts")
#: ``apply`` applies any plan; ``hold`` and ``settle`` are a call's two, by position.
SCRIPT_NAMES = (
    "apply", "claim", "create", "heartbeat", "hold",
    "pin_failure", "restriction", "settle", "update",
)  # fmt: skip
ALL_FACILITIES = "*"
#: Reservation records kept in memory per node, so settle needs no read first.
RESERVATION_CACHE_SIZE = 50_000
#: Which accounts and subscriptions may pay for a (facility, PIN, number), as last
#: read on this node: the guess lets one round trip read the payers with the index.
PAYER_GUESS_SIZE = 200_000
#: Reads and plans of a step whose records changed under it, before it gives up.
PLAN_ATTEMPTS = 3
#: Days a settled or released reservation and its id claims are kept by default.
FINISHED_CALL_TTL_DAYS = 35
#: Payer reads made with a call's screening are used by that call's next step only
#: if it comes within this many seconds (it normally comes at once).
PREFETCH_AGE = 1.0
_ID_BITS = 32

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


#: The steps of a call. Any other operation of this node (a deposit, a block, an
#: account change...) drops the payer reads made with screenings, so a call after
#: it reads them again. A menu call's PIN-guessing steps change no payer either.
_CALL_STEPS = frozenset(
    {
        "station_lock",
        "record_pin_failure",
        "screening_facts",
        "payer_candidates",
        "reserve",
        "settle",
        "heartbeat",
        "get_reservation",
        "get_account",
        "get_subscription",
        "add_cdr",
    }
)


def _guarded(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Turn "Redis cannot be reached or answered with an error" into ``StoreUnavailable``."""
    call_step = operation in _CALL_STEPS

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            if not call_step:
                store = args[0]
                assert isinstance(store, RedisAccountStore)
                store._prefetched.clear()
            try:
                return await fn(*args, **kwargs)
            except (RedisError, OSError) as exc:
                store = args[0]
                assert isinstance(store, RedisAccountStore)
                raise store._unavailable(operation, exc) from exc

        return guarded

    return decorate


def _script_failed(exc: BaseException) -> bool:
    """Redis ran the script and the script itself failed (as opposed to Redis being away)."""
    cause = exc.__cause__
    return (
        isinstance(cause, ResponseError)
        and not isinstance(cause, NoScriptError)
        and "@user_script" in str(cause)
    )


def _s(value: object) -> str:
    """A field value as Redis keeps it: '' for None, fixed-width UTC text for times."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dt_req(value: str) -> datetime:
    return datetime.fromisoformat(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp would round them)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _opt(value: str | None) -> str | None:
    return value if value else None


def _int_opt(value: str | None) -> int | None:
    return int(value) if value else None


def _pairs(fields: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        out.extend((name, _s(value)))
    return out


#: One encoder for every compact document: ``json.dumps`` with options builds one per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _tx_json(tx: LedgerTransaction, tx_id: int | None = None, at: str | None = None) -> str:
    """The entry's text; ``tx_id`` names a planned transaction that has no id yet, ``at``
    is ``ts(tx.at)`` when the caller has it already."""
    return _compact(
        {
            "id": tx.id if tx_id is None else tx_id,
            "kind": tx.kind,
            "at": ts(tx.at) if at is None else at,
            "account_id": tx.account_id,
            "idempotency_key": tx.idempotency_key,
            "call_id": tx.call_id,
            "seconds": tx.seconds,
            "memo": tx.memo,
            # A book is a StrEnum: JSON writes its text as it is.
            "legs": [[leg.book, leg.ref, leg.amount_units] for leg in tx.legs],
        }
    )


def _tx_from(text: str) -> LedgerTransaction:
    d = json.loads(text)
    return LedgerTransaction(
        kind=d["kind"],
        at=_dt_req(d["at"]),
        legs=tuple(Leg(Book(b), ref, int(amount)) for b, ref, amount in d["legs"]),
        account_id=d["account_id"],
        idempotency_key=d["idempotency_key"],
        call_id=d["call_id"],
        seconds=d["seconds"],
        memo=d["memo"],
        id=d["id"],
    )


#: Account ids, subscription ids and the Direct Bill account id that may pay for a call.
_Payers = tuple[tuple[str, ...], tuple[str, ...], str]


def _hash(reply: Any) -> dict[str, str]:
    """HGETALL as a dict from either client (redis-py answers a dict, the lane a flat list)."""
    if isinstance(reply, dict):
        return reply
    it = iter(reply)
    return dict(zip(it, it, strict=True))


class _Script:
    """A Lua script run by EVALSHA over the lane (or redis-py), loaded when Redis lacks it."""

    def __init__(self, store: RedisAccountStore, source: str) -> None:
        self.store = store
        self.source = source
        # The name Redis knows the script by, not a security measure.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.fallback = store._client_for_scripts.register_script(source)

    async def __call__(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        lane = self.store._lane
        if lane is None:
            return await self.fallback(keys=list(keys), args=list(args))
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        (reply,) = await lane.execute([command])
        if isinstance(reply, NoScriptError):
            # The server restarted and forgot its scripts.
            _, reply = await lane.execute([("SCRIPT", "LOAD", self.source), command])
        if isinstance(reply, Exception):
            raise reply
        return reply


def _new_record(w: AtomicWrite, key: str, what: str, token: str, fields: list[str]) -> None:
    """Create a record that must not exist yet; its token makes a repeat a replay."""
    w.replay(key, "token", token)
    w.equals(key, "token", "", "dup", f"{what} already exists")
    w.hset(key, ["token", token, *fields])


def _record_moved(
    w: AtomicWrite,
    key: str,
    what: str,
    expected: str,
    token_field: str,
    token: str,
    fields: list[str],
) -> None:
    """Move a record on in its lifecycle if it is still in the state it was read in
    (``PlanConflict`` otherwise); its token makes a repeat a replay."""
    w.exists(key, "notfound", f"no {what}")
    w.replay(key, token_field, token)
    w.equals(key, "status", expected)
    w.hset(key, [*fields, token_field, token])


def _settled_fields(r: Reservation, token: str) -> list[str]:
    """A settled reservation's new fields; the token makes a repeat of the write a replay.
    (``settle.lua`` sets the same fields, a call's settlement by position.)"""
    return [
        "status", str(r.status),
        "settled_at", ts(r.settled_at) if r.settled_at else "",
        "talked_seconds", str(r.talked_seconds or 0),
        "charged", str(r.charged_units or 0),
        "settle_token", token,
    ]  # fmt: skip


def _call_fields(plan: Plan) -> list[str]:
    """A talked call's marks on its account: last call and activity, the inactivity flag
    cleared. (``settle.lua`` sets the same fields, a call's settlement by position.)"""
    facility = plan.balance.call_facility if plan.balance is not None else None
    if facility is None:
        return []
    stamp = ts(plan.at)
    return [
        "last_call_at", stamp,
        "last_call_facility", facility,
        "last_activity_at", stamp,
        "inactive_flagged_at", "",
    ]  # fmt: skip


def _person_tag(facility_id: str, pin: str) -> str:
    # The length keeps "a:b" + "c" apart from "a" + "b:c".
    return f"p:{len(facility_id)}:{facility_id}:{pin}"


class RedisAccountStore(AccountStore):
    """``AccountStore`` on one Redis server (``url``) or a Redis Cluster (``cluster_nodes``).

    ``on_unavailable(operation)`` is called each time Redis cannot be reached
    (wire it to the ``ics_store_errors_total`` metric); ``unavailable_count``
    counts the same events.
    """

    def __init__(
        self,
        url: str | None = "redis://127.0.0.1:6379/0",
        *,
        cluster_nodes: Sequence[str] = (),
        prefix: str = "ics",
        on_unavailable: Callable[[str], None] | None = None,
        connect_timeout: float = 1.0,
        command_timeout: float = 2.0,
        journal_path: str | Path | None = None,
        on_journaled: Callable[[str], None] | None = None,
        replay_interval: float = 1.0,
        finished_call_ttl_days: int = FINISHED_CALL_TTL_DAYS,
    ) -> None:
        if isinstance(finished_call_ttl_days, bool) or finished_call_ttl_days < 1:
            raise ValueError(
                "finished_call_ttl_days must be a whole number >= 1,"
                f" not {finished_call_ttl_days!r}"
            )
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be non-empty and free of braces, not {prefix!r}")
        if not cluster_nodes and not url:
            raise ValueError("give a Redis url or cluster nodes")
        self.url = url
        self.cluster_nodes = tuple(cluster_nodes)
        self.prefix = prefix
        self.on_unavailable = on_unavailable
        self.unavailable_count = 0
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._client: Any = None
        self._client_for_scripts: Any = None
        self._lane: Lane | None = None
        self._scripts: dict[str, Any] = {}
        self._payer_guess: dict[tuple[str, str, str], _Payers] = {}
        self._prefetched: dict[tuple[str, str, str], tuple[Any, float, Any, list[Any]]] = {}
        self._node = 0
        self._ids = itertools.count(1)
        self._token_prefix = secrets.token_hex(12)
        self._tokens = itertools.count(1)
        self._known_tags: set[str] = set()
        self._reservations: dict[str, Reservation] = {}
        self._tags: dict[str, str] = {}
        self._sub_numbers: dict[str, str] = {}
        self.journal = SettlementJournal(journal_path) if journal_path is not None else None
        self.on_journaled = on_journaled
        self.replay_interval = replay_interval
        #: Seconds a settled or released reservation and its id claims are kept.
        self.finished_call_ttl = int(finished_call_ttl_days) * 86_400
        self._replayer: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls, config: Any, *, on_unavailable: Callable[[str], None] | None = None
    ) -> RedisAccountStore:
        """From the ``[store]`` table: ``url``, or ``cluster_nodes`` = ["host:port", ...],
        ``prefix``, ``journal_path`` and ``finished_call_ttl_days``."""
        nodes = tuple(getattr(config, "cluster_nodes", ()) or ())
        return cls(
            config.url,
            cluster_nodes=nodes,
            prefix=getattr(config, "prefix", "ics") or "ics",
            on_unavailable=on_unavailable,
            journal_path=getattr(config, "journal_path", None),
            finished_call_ttl_days=getattr(
                config, "finished_call_ttl_days", FINISHED_CALL_TTL_DAYS
            ),
        )

    # -- plumbing ------------------------------------------------------------------
    @property
    def is_cluster(self) -> bool:
        return bool(self.cluster_nodes)

    def _unavailable(self, operation: str, exc: BaseException) -> StoreUnavailable:
        self.unavailable_count += 1
        if self.on_unavailable is not None:
            self.on_unavailable(operation)
        where = ",".join(self.cluster_nodes) if self.is_cluster else self.url
        return StoreUnavailable(f"Redis at {where} unavailable during {operation}: {exc}")

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StoreUnavailable("the account store is not open")
        return self._client

    def _new_client(self) -> Any:
        retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        common: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.command_timeout,
            "retry": retry,
        }
        if self.is_cluster:
            nodes = []
            for node in self.cluster_nodes:
                host, _, port = node.rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"cluster node must be host:port, not {node!r}")
                nodes.append(ClusterNode(host.strip("[]"), int(port)))
            return RedisCluster(startup_nodes=nodes, **common)
        assert self.url is not None
        return Redis.from_url(self.url, health_check_interval=0, **common)

    @_guarded("open")
    async def open(self) -> None:
        if self._client is not None:
            return
        client = self._new_client()
        lane = None
        if not self.is_cluster:
            lane = Lane.for_client(
                client, connect_timeout=self.connect_timeout, timeout=self.command_timeout
            )
        try:
            if self.is_cluster:
                await client.initialize()
            self._client_for_scripts = client
            self._lane = lane
            self._scripts = {
                name: _Script(self, (SCRIPTS_DIR / f"{name}.lua").read_text())
                for name in SCRIPT_NAMES
            }
            # A node number unique forever makes transaction ids unique across nodes
            # without a round trip per transaction.
            self._node = int(await client.incr(self._k("nodes")))
        except BaseException:
            self._lane = None
            if lane is not None:
                lane.close()
            await client.aclose()
            raise
        self._ids = itertools.count(1)
        self._token_prefix = secrets.token_hex(12)
        self._tokens = itertools.count(1)
        self._client = client
        if self.journal is not None:
            self.journal.open()
            # Settlements journaled before a restart are applied before the store is
            # used: a start-up recovery must not settle them again from a heartbeat.
            await self.replay_journal()
            self._replayer = asyncio.get_running_loop().create_task(self._replay_loop())

    async def close(self) -> None:
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        if self.journal is not None:
            self.journal.close()
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        if self._client is not None:
            client, self._client = self._client, None
            # Closing a connection to a server that is gone is not an error.
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _t(self, tag: str, *parts: str) -> str:
        """A key under a hash tag: every key of one tag lands in one cluster slot."""
        if len(parts) == 1:
            return f"{self.prefix}:{{{tag}}}:{parts[0]}"
        return ":".join((self.prefix, "{" + tag + "}", *parts))

    def _pipe(self) -> Any:
        if self.is_cluster:
            return self.client.pipeline()
        return self.client.pipeline(transaction=False)

    async def _listed(
        self, kind: str, owner: str | None, owner_set: str, index: str, record: str
    ) -> list[dict[str, str]]:
        """The hashes of records listed in one owner's set, or in the store-wide index.

        Records live under their owner's hash tag (``{kind:owner}``): an owner's
        set holds their ids, the index (``index``) holds JSON ``[owner, id]``
        pairs of every owner. Hashes that vanished meanwhile are left out.
        """
        if owner is not None:
            members = await self.client.smembers(self._t(f"{kind}:{owner}", owner_set))
            pairs = [(owner, rid) for rid in members]
        else:
            pairs = [tuple(json.loads(m)) for m in await self.client.smembers(self._k(index))]
        if not pairs:
            return []
        pipe = self._pipe()
        for who, rid in pairs:
            pipe.hgetall(self._t(f"{kind}:{who}", record, rid))
        return [h for h in await pipe.execute() if h]

    async def _batch(self, commands: Sequence[Sequence[object]]) -> list[Any]:
        """Replies to independent commands sent in one round trip; the first error raised."""
        if self._lane is not None:
            replies = await self._lane.execute(commands)
        else:
            pipe = self._pipe()
            for command in commands:
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[object]) -> list[Any]:
        result = await self._scripts[name](keys=list(keys), args=[_s(a) for a in args])
        return list(result)

    def _next_id(self) -> int:
        n = next(self._ids)
        if n >= 1 << _ID_BITS:
            raise StoreUnavailable("transaction ids of this node are used up; reopen the store")
        return (self._node << _ID_BITS) | n

    def _token(self) -> str:
        """A token no other script call ever carries: random per opening, then counted."""
        return f"{self._token_prefix}.{next(self._tokens):x}"

    async def _register_tags(self, *tags: str) -> None:
        """List tags that hold ledgers or reservations, once per tag per node."""
        new = [t for t in tags if t not in self._known_tags]
        if new:
            await self.client.sadd(self._k("tags"), *new)
            self._known_tags.update(new)

    async def _claim_id(self, kind: str, ident: str, value: str) -> bool:
        """Claim a globally unique id; True if it is ours (new, or ours already)."""
        old = await self.client.set(self._k("loc", kind, ident), value, nx=True, get=True)
        return old is None or old == value

    async def _release_id(self, kind: str, ident: str, value: str) -> None:
        key = self._k("loc", kind, ident)
        if await self.client.get(key) == value:
            await self.client.delete(key)

    async def _locate(self, kind: str, ident: str) -> str | None:
        value = await self.client.get(self._k("loc", kind, ident))
        return str(value) if value is not None else None

    async def _located(self, kind: str, ident: str, owner_kind: str, what: str) -> dict[str, str]:
        """The hash of a record found through its id's claim, which names its owner: the
        record is ``kind`` ``ident`` under the owner's tag ``{owner_kind:owner}``."""
        owner = await self._locate(kind, ident)
        key = self._t(f"{owner_kind}:{owner}", kind, ident)
        h = await self.client.hgetall(key) if owner else {}
        if not h:
            raise NotFound(f"no {what} {ident!r}")
        return dict(h)

    @_guarded("is_empty")
    async def is_empty(self) -> bool:
        pipe = self._pipe()
        pipe.scard(self._k("accounts"))
        pipe.scard(self._k("people"))
        accounts, people = await pipe.execute()
        return int(accounts) + int(people) == 0

    # -- accounts --------------------------------------------------------------------
    def _acct(self, account_id: str) -> str:
        return self._t(f"a:{account_id}", "acct")

    def _nums(self, account_id: str) -> str:
        return self._t(f"a:{account_id}", "nums")

    def _idx(self, number: str) -> str:
        return self._t(f"n:{number}", "idx")

    @staticmethod
    def _account_from(h: dict[str, str], numbers: Iterable[str]) -> Account:
        return Account(
            id=h["id"],
            product=Product(h["product"]),
            status=AccountStatus(h["status"]),
            numbers=tuple(sorted(numbers)),
            facility_id=_opt(h.get("facility_id")),
            pin=_opt(h.get("pin")),
            credit_limit_units=int(h.get("credit_limit") or 0),
            holder_name=h.get("holder_name", ""),
            created_at=_dt_req(h["created_at"]),
            last_activity_at=_dt(h.get("last_activity_at")),
            last_call_at=_dt(h.get("last_call_at")),
            last_call_facility=_opt(h.get("last_call_facility")),
            closure_due_at=_dt(h.get("closure_due_at")),
            inactive_flagged_at=_dt(h.get("inactive_flagged_at")),
            balance_units=int(h.get("balance") or 0),
            held_units=int(h.get("held") or 0),
        )

    async def _accounts(self, ids: Sequence[str]) -> dict[str, Account]:
        if not ids:
            return {}
        pipe = self._pipe()
        for account_id in ids:
            pipe.hgetall(self._acct(account_id))
            pipe.smembers(self._nums(account_id))
        raw = await pipe.execute()
        found: dict[str, Account] = {}
        for n, account_id in enumerate(ids):
            h, numbers = raw[2 * n], raw[2 * n + 1]
            if h:
                found[account_id] = self._account_from(h, numbers)
        return found

    async def _account(self, account_id: str) -> Account:
        found = await self._accounts([account_id])
        if account_id not in found:
            raise UnknownAccount(f"no account {account_id!r}")
        return found[account_id]

    @_guarded("create_account")
    async def create_account(self, account: Account) -> Account:
        a = account
        await self.client.sadd(self._k("accounts"), a.id)
        token = self._token()
        fields = {
            "id": a.id,
            "product": str(a.product),
            "status": str(a.status),
            "facility_id": a.facility_id,
            "pin": a.pin,
            "credit_limit": a.credit_limit_units,
            "holder_name": a.holder_name,
            "created_at": a.created_at,
            "last_activity_at": a.created_at,
            "last_call_at": None,
            "last_call_facility": None,
            "closure_due_at": None,
            "inactive_flagged_at": None,
            "balance": 0,
            "held": 0,
            "paid": 0,
        }
        numbers = sorted(set(a.numbers))
        answer(
            await self._run(
                "create",
                [self._acct(a.id), self._nums(a.id)],
                [token, len(numbers), *numbers, *_pairs(fields)],
            ),
            f"account {a.id!r}",
        )
        claimed: list[str] = []
        try:
            for number in numbers:
                await self._claim_number(a.id, str(a.product), number)
                claimed.append(number)
            if a.product is Product.DEBIT:
                if a.facility_id is None or a.pin is None:
                    raise InvalidRequest("a Debit account needs its owner's facility and PIN")
                owns = self._t(_person_tag(a.facility_id, a.pin), "owns")
                answer(
                    await self._run("claim", [owns], ["debit", a.id, 0]),
                    f"person {a.facility_id}/{a.pin} already has a Debit account",
                )
        except AccountsError:
            # Undo the half-made account: it has no ledger yet, so nothing is lost.
            for number in claimed:
                await self._run("claim", [self._idx(number)], [str(a.product), a.id, 1])
            pipe = self._pipe()
            pipe.delete(self._acct(a.id))
            pipe.delete(self._nums(a.id))
            pipe.srem(self._k("accounts"), a.id)
            await pipe.execute()
            raise
        return await self._account(a.id)

    async def _claim_number(self, account_id: str, product: str, number: str) -> None:
        result = await self._run("claim", [self._idx(number)], [product, account_id, 0])
        if result[0] != "ok":
            raise InvalidState(f"{number} already has a {product} account")

    @_guarded("get_account")
    async def get_account(self, account_id: str) -> Account:
        return await self._account(account_id)

    @_guarded("list_accounts")
    async def list_accounts(
        self,
        *,
        product: str | None = None,
        status: AccountStatus | None = None,
        number_e164: str | None = None,
    ) -> list[Account]:
        if number_e164 is not None:
            ids = sorted(set((await self.client.hgetall(self._idx(number_e164))).values()))
        else:
            ids = sorted(await self.client.smembers(self._k("accounts")))
        found = await self._accounts(ids)
        out = []
        for account_id in ids:
            account = found.get(account_id)
            if account is None:
                continue
            if product is not None and str(account.product) != str(product):
                continue
            if status is not None and account.status != status:
                continue
            if number_e164 is not None and number_e164 not in account.numbers:
                continue
            out.append(account)
        return out

    @_guarded("update_account")
    async def update_account(self, account_id: str, **changes: object) -> Account:
        unknown = set(changes) - MUTABLE_ACCOUNT_FIELDS
        if unknown:
            raise InvalidRequest(f"account fields cannot be changed: {sorted(unknown)}")
        columns = {"credit_limit_units": "credit_limit"}
        fields: dict[str, object] = {}
        for name, value in changes.items():
            if name == "status":
                value = AccountStatus(str(value))
            fields[columns.get(name, name)] = value
        if fields:
            result = await self._run("update", [self._acct(account_id)], _pairs(fields))
            if result[0] == "notfound":
                raise UnknownAccount(f"no account {account_id!r}")
        return await self._account(account_id)

    @_guarded("attach_number")
    async def attach_number(self, account_id: str, number_e164: str) -> Account:
        account = await self._account(account_id)
        await self._claim_number(account_id, str(account.product), number_e164)
        await self.client.sadd(self._nums(account_id), number_e164)
        return await self._account(account_id)

    @_guarded("detach_number")
    async def detach_number(self, account_id: str, number_e164: str) -> Account:
        account = await self._account(account_id)
        if not await self.client.srem(self._nums(account_id), number_e164):
            raise NotFound(f"{number_e164} is not attached to {account_id!r}")
        await self._run("claim", [self._idx(number_e164)], [str(account.product), account_id, 1])
        return await self._account(account_id)

    # -- ledger ------------------------------------------------------------------------
    def _ledger(self, tag: str) -> str:
        return self._t(tag, "ledger")

    def _account_of_legs(self, tx: LedgerTransaction) -> str | None:
        check_account_legs(tx)  # so all of them are on tx.account_id, if any
        return next((leg.ref for leg in tx.legs if leg.book in (Book.ACCOUNT, Book.HOLD)), None)

    @_guarded("post")
    async def post(
        self, tx: LedgerTransaction, *, floors: dict[str, int] | None = None
    ) -> LedgerTransaction:
        account_id = self._account_of_legs(tx)
        owner = account_id if account_id is not None else tx.account_id
        tag = f"a:{owner}" if owner is not None else "x:general"
        floor: int | None = None
        for floor_account, value in (floors or {}).items():
            if floor_account != account_id:
                raise InvalidRequest(
                    f"a floor applies to the account the legs move, not {floor_account!r}"
                )
            floor = value
        posted = replace(tx, id=self._next_id())
        token = self._token()
        key = tx.idempotency_key or ""
        await self._register_tags(tag)
        if key and not await self._claim_id("idem", key, token):
            raise DuplicateRequest(f"idempotency key {key!r} was already used")
        delta = sum(leg.amount_units for leg in tx.legs if leg.book is Book.ACCOUNT)
        held = sum(leg.amount_units for leg in tx.legs if leg.book is Book.HOLD)
        w = AtomicWrite()
        if key:
            idem = self._t(tag, "idem")
            w.replay(idem, key, token)
            w.equals(idem, key, "", "dup", f"idempotency key {key} was already used")
        if account_id:
            acct = self._acct(account_id)
            w.exists(acct, "unknown_account", "no account")
            if floor is not None:
                w.at_least(acct, (("balance", 1),), floor - delta, "insufficient",
                           f"would fall below its floor of {floor} units")  # fmt: skip
            w.incr(acct, "balance", delta).incr(acct, "held", held)
            if tx.kind in ("deposit", "payment"):
                w.hset(acct, ["last_activity_at", ts(tx.at), "inactive_flagged_at", ""])
            if tx.kind == "payment":
                w.incr(acct, "paid", delta)
        w.append(self._ledger(tag), _tx_json(posted))
        if key:
            w.hset(self._t(tag, "idem"), [key, token])
        try:
            answer(
                await self._scripts["apply"](w.keys, w.args),
                f"account {account_id!r}" if account_id else f"transaction {tx.kind!r}",
            )
        except AccountsError:
            if key:
                await self._release_id("idem", key, token)
            raise
        return posted

    async def _ledger_entries(self, tags: Iterable[str]) -> list[LedgerTransaction]:
        tags = list(tags)
        if not tags:
            return []
        pipe = self._pipe()
        for tag in tags:
            pipe.xrange(self._ledger(tag))
        out: list[LedgerTransaction] = []
        for entries in await pipe.execute():
            out.extend(_tx_from(fields["t"]) for _, fields in entries)
        return out

    async def _all_tags(self) -> list[str]:
        return sorted(await self.client.smembers(self._k("tags")))

    @_guarded("transactions")
    async def transactions(
        self,
        *,
        account_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str | None = None,
    ) -> list[LedgerTransaction]:
        if account_id is not None:
            found = [
                tx
                for tx in await self._ledger_entries([f"a:{account_id}"])
                if tx.account_id == account_id
            ]
        else:
            found = await self._ledger_entries(await self._all_tags())
        out = [
            tx
            for tx in found
            if (since is None or tx.at >= since)
            and (until is None or tx.at < until)
            and (kind is None or tx.kind == kind)
        ]
        out.sort(key=lambda tx: (tx.at, tx.id or 0))
        return out

    async def _tags_of_book(self, book: str, ref: str) -> list[str]:
        """The ledgers that can hold entries of one book, as narrow as the book allows."""
        if book in (Book.ACCOUNT, Book.HOLD):
            return [f"a:{ref}"]
        if book == Book.REFUND_PAYABLE:
            owner = await self._locate("refund", ref)
            return [f"a:{owner}"] if owner else []
        if book == Book.RECEIVABLE:
            number = await self._locate("rcv", ref)
            return [f"n:{number}"] if number else []
        return await self._all_tags()

    @_guarded("book_balance")
    async def book_balance(self, book: str, ref: str) -> int:
        total = 0
        for tx in await self._ledger_entries(await self._tags_of_book(str(book), ref)):
            for leg in tx.legs:
                if leg.book == book and leg.ref == ref:
                    total += leg.amount_units
        return total

    @_guarded("book_totals")
    async def book_totals(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = {}
        for tx in await self._ledger_entries(await self._all_tags()):
            for leg in tx.legs:
                k = (str(leg.book), leg.ref)
                totals[k] = totals.get(k, 0) + leg.amount_units
        return totals

    @_guarded("ledger_of_account")
    async def ledger_of_account(self, account_id: str) -> list[LedgerTransaction]:
        """Every entry of one account's stream, in append order (for verification)."""
        return await self._ledger_entries([f"a:{account_id}"])

    # -- plans applied ---------------------------------------------------------------------
    async def _apply(
        self,
        plan: Plan,
        tag: str,
        what: str,
        *,
        idempotency_key: str = "",
        token: str | None = None,
    ) -> list[Any]:
        write = self._plan_write(plan, tag, idempotency_key=idempotency_key, token=token)
        return answer(await self._scripts["apply"](write.keys, write.args), what)

    async def _replanned(
        self,
        read: Callable[[], Awaitable[R]],
        plan_of: Callable[[R], Plan],
        tag_of: Callable[[R], str],
        what: str,
    ) -> None:
        """Read, plan, apply; while the record changes between the read and the
        write, read and plan again, ``PLAN_ATTEMPTS`` times at most."""
        for attempt in range(1, PLAN_ATTEMPTS + 1):
            record = await read()
            try:
                await self._apply(plan_of(record), tag_of(record), what)
                return
            except PlanConflict:
                if attempt == PLAN_ATTEMPTS:
                    raise

    def _plan_write(
        self,
        plan: Plan,
        tag: str,
        *,
        idempotency_key: str = "",
        token: str | None = None,
    ) -> AtomicWrite:
        """A postings plan as one atomic write on the keys of ``tag``.

        First the step's own record: a repeat of this very write (a command
        re-sent after a lost reply carries the same token) answers "replayed"
        and writes nothing; a new record must not exist yet, a read one must
        still be in the state it was read in (else ``PlanConflict``: read and
        plan again). Then the guards on what other nodes change concurrently,
        checked on the server as the write happens: the account is open and
        keeps its floor, the subscription has the seconds. The writes follow.
        """
        w = AtomicWrite()
        token = token or self._token()
        if plan.balance is not None and plan.seconds is not None:
            raise InvalidRequest("a reservation is held by an account or a subscription, not both")
        if plan.reservation is not None:
            self._reservation_change(w, plan.reservation, tag, token)
        if plan.refund is not None:
            self._refund_change(w, plan.refund, tag, token)
        if plan.receivable is not None:
            self._receivable_change(w, plan.receivable, tag, token)
        if plan.new_subscription is not None:
            self._new_subscription(w, plan.new_subscription, tag, token)
        if idempotency_key:
            idem = self._t(tag, "idem")
            w.equals(idem, idempotency_key, "", "dup",
                     f"idempotency key {idempotency_key} was already used")  # fmt: skip
            w.hset(idem, [idempotency_key, token])
        if plan.balance is not None:
            self._balance_change(w, plan.balance, plan)
        if plan.seconds is not None:
            self._seconds_change(w, plan.seconds, tag)
        if plan.transaction is not None:
            w.append(self._ledger(tag), _tx_json(plan.transaction, self._next_id()))
        return w

    def _reservation_change(
        self, w: AtomicWrite, change: ReservationChange, tag: str, token: str
    ) -> None:
        r = change.record
        res, call = self._res(tag, r.id), self._t(tag, "call", r.call_id)
        if change.expected is None:
            # Already text: this runs for every call.
            _new_record(w, res, f"reservation {r.id}", token, self._new_reservation_fields(r))
            w.absent(call, "dup", f"call {r.call_id} already has a reservation")
            w.sadd(self._t(tag, "open"), r.id)
            w.set(call, r.id)
            return
        held = change.expected_held_units
        # The answer carries the last heartbeat, which only this record knows.
        w.read(res, "heartbeat_seconds").read(res, "heartbeat_at")
        w.exists(res, "notfound", f"no reservation {r.id}")
        w.replay(res, "settle_token", token)
        w.equals(res, "status", str(change.expected), "state",
                 f"reservation {r.id} is already settled")  # fmt: skip
        w.equals(res, "amount", str(held), "invalid",
                 f"reservation {r.id} does not hold {held} units")  # fmt: skip
        w.hset(res, _settled_fields(r, token))
        w.srem(self._t(tag, "open"), r.id)
        # The finished call's keys expire; its global claims live in other slots
        # on a cluster, and are expired there after the write.
        expiring = () if self.is_cluster else self._claims_of(r)
        for key in (res, call, *expiring):
            w.expire(key, self.finished_call_ttl)

    def _refund_change(self, w: AtomicWrite, change: RefundChange, tag: str, token: str) -> None:
        f = change.record
        key = self._refund_key(f.account_id, f.id)
        if change.expected is None:
            _new_record(w, key, f"refund {f.id}", token, _pairs(refund_fields(f)))
            w.sadd(self._t(tag, "refunds"), f.id)
            return
        _record_moved(w, key, "refund", str(change.expected), "decide_token", token,
                      ["status", str(f.status), "decided_at", _s(f.decided_at)])  # fmt: skip

    def _receivable_change(
        self, w: AtomicWrite, change: ReceivableChange, tag: str, token: str
    ) -> None:
        c = change.record
        key = self._t(tag, "rcv", c.id)
        if change.expected is None:
            w.absent(key, "dup", f"receivable {c.id} exists")
            w.hset(key, _pairs(receivable_fields(c)))
            w.sadd(self._t(tag, "rcvs"), c.id)
            return
        _record_moved(w, key, "receivable", str(change.expected), "settle_token", token,
                      ["status", str(c.status), "settled_at", _s(c.settled_at)])  # fmt: skip
        # A number with a failed receivable may not call on Single Call.
        if c.status is ReceivableStatus.FAILED:
            w.sadd(self._t(tag, "failed"), c.id)
        else:
            w.srem(self._t(tag, "failed"), c.id)

    def _new_subscription(self, w: AtomicWrite, s: Subscription, tag: str, token: str) -> None:
        key = self._t(tag, "sub", s.id)
        _new_record(w, key, f"subscription {s.id}", token, _pairs(new_subscription_fields(s)))
        w.sadd(self._t(tag, "subs"), s.id)

    def _balance_change(self, w: AtomicWrite, change: BalanceChange, plan: Plan) -> None:
        key = self._acct(change.account_id)
        if change.must_be_open or change.floor_units is not None:
            w.exists(key, "unknown_account", "no account")
        if change.must_be_open:
            w.equals(key, "status", str(AccountStatus.OPEN), "state", "account is not open")
        if change.floor_units is not None:
            # Other nodes' holds move the balance: the floor is a condition on the server.
            moved = -change.balance_units
            message = (
                f"cannot hold {moved} units"
                if plan.step is Step.RESERVE
                else f"balance is smaller than {moved} units"
            )
            w.at_least(key, (("balance", 1),), change.floor_units + moved, "insufficient", message)
        w.incr(key, "balance", change.balance_units).incr(key, "held", change.held_units)
        w.hset(key, _call_fields(plan))

    def _seconds_change(self, w: AtomicWrite, change: SecondsChange, tag: str) -> None:
        key = self._t(tag, "sub", change.subscription_id)
        w.exists(key, "notfound", "no subscription")
        if change.needs_seconds:
            w.at_least(
                key,
                (("covered_seconds", 1), ("used_seconds", -1), ("held_seconds", -1)),
                change.needs_seconds, "insufficient",
                f"subscription cannot cover {change.needs_seconds} s",
            )  # fmt: skip
        w.incr(key, "held_seconds", change.held_seconds)
        w.incr(key, "used_seconds", change.used_seconds)

    # -- reservations ------------------------------------------------------------------
    def _res(self, tag: str, reservation_id: str) -> str:
        return self._t(tag, "res", reservation_id)

    def _new_reservation_fields(self, r: Reservation, created: str | None = None) -> list[str]:
        # Already text: this runs for every call.
        return [
            "d", self._reservation_data(r, created),
            "amount", str(r.amount_units),
            "max_seconds", str(r.max_seconds),
            "status", str(r.status),
            "heartbeat_seconds", "0",
            "heartbeat_at", "",
        ]  # fmt: skip

    def _payer_key(self, plan: Plan, tag: str, nobody: str) -> str:
        """The hash whose money or seconds a call's plan moves (``nobody`` when none)."""
        if plan.balance is not None:
            return self._acct(plan.balance.account_id)
        if plan.seconds is not None:
            return self._t(tag, "sub", plan.seconds.subscription_id)
        return nobody

    def _ledger_entry(self, plan: Plan, stamp: str) -> str:
        """The plan's ledger entry ('' when none); ``stamp`` is ``ts(plan.at)``."""
        tx = plan.transaction
        if tx is None:
            return ""
        return _tx_json(tx, self._next_id(), stamp if tx.at is plan.at else None)

    def _hold_command(self, plan: Plan, tag: str) -> tuple[list[str], list[str]]:
        """``hold.lua``'s keys and arguments for a reservation plan."""
        assert plan.reservation is not None
        r = plan.reservation.record
        res = self._res(tag, r.id)
        stamp = ts(plan.at)
        keys = [
            res,
            self._t(tag, "call", r.call_id),
            self._t(tag, "open"),
            self._ledger(tag),
            self._payer_key(plan, tag, res),
        ]
        args = hold_args(
            plan,
            token=self._token(),
            ledger_entry=self._ledger_entry(plan, stamp),
            reservation_fields=self._new_reservation_fields(
                r, stamp if r.created_at is plan.at else None
            ),
        )
        return keys, args

    def _settle_command(self, plan: Plan, tag: str) -> tuple[list[str], list[str]]:
        """``settle.lua``'s keys and arguments for a settlement plan."""
        assert plan.reservation is not None
        r = plan.reservation.record
        res = self._res(tag, r.id)
        receivable, receivables, new_receivable = res, res, []
        if plan.receivable is not None:
            c = plan.receivable.record
            receivable, receivables = self._t(tag, "rcv", c.id), self._t(tag, "rcvs")
            new_receivable = _pairs(receivable_fields(c))
        # The finished call's keys expire; its global claims live in other slots
        # on a cluster, and are expired there after the write.
        expiring = () if self.is_cluster else self._claims_of(r)
        keys = [
            res,
            self._t(tag, "open"),
            self._ledger(tag),
            self._payer_key(plan, tag, res),
            receivable,
            receivables,
            self._t(tag, "call", r.call_id),
            *expiring,
        ]
        token, stamp = self._token(), ts(plan.at)
        args = settle_args(
            plan,
            token=token,
            ledger_entry=self._ledger_entry(plan, stamp),
            keep_seconds=self.finished_call_ttl,
            settled_at=stamp,
            receivable_fields=new_receivable,
        )
        return keys, args

    @staticmethod
    def _reservation_data(r: Reservation, created: str | None = None) -> str:
        """The fields a reservation never changes, as one value (fewer to send and parse);
        ``created`` is ``ts(r.created_at)`` when the caller has it already."""
        return _compact(
            [
                r.id,
                r.call_id,
                str(r.product),
                r.facility_id,
                r.number_e164,
                r.pin,
                ts(r.created_at) if created is None else created,
                r.account_id,
                r.subscription_id,
                r.owner,
                r.jurisdiction,
                r.privileged,
                r.station,
            ]
        )

    @staticmethod
    def _reservation_from(h: dict[str, str]) -> Reservation:
        d = json.loads(h["d"])
        rid, call_id, product, facility, number, pin, created, account, sub = d[:9]
        # Holds written before the owner and CDR fields were stored have nine fields.
        owner, jurisdiction, privileged, station = d[9:13] if len(d) >= 13 else ("", "", False, "")
        return Reservation(
            id=rid,
            call_id=call_id,
            product=Product(product),
            facility_id=facility,
            number_e164=number,
            pin=pin,
            created_at=_dt_req(created),
            max_seconds=int(h["max_seconds"]),
            amount_units=int(h["amount"]),
            account_id=account,
            subscription_id=sub,
            status=ReservationStatus(h["status"]),
            heartbeat_seconds=int(h.get("heartbeat_seconds") or 0),
            heartbeat_at=_dt(h.get("heartbeat_at")),
            settled_at=_dt(h.get("settled_at")),
            talked_seconds=_int_opt(h.get("talked_seconds")),
            charged_units=_int_opt(h.get("charged")),
            owner=owner,
            jurisdiction=jurisdiction,
            privileged=bool(privileged),
            station=station,
        )

    def _remember(self, reservation: Reservation, tag: str) -> None:
        if len(self._reservations) >= RESERVATION_CACHE_SIZE:
            oldest = next(iter(self._reservations))
            del self._reservations[oldest]
            self._tags.pop(oldest, None)
        self._reservations[reservation.id] = reservation
        self._tags[reservation.id] = tag

    def _forget(self, reservation_id: str) -> None:
        self._reservations.pop(reservation_id, None)
        self._tags.pop(reservation_id, None)

    async def _subscription_number(self, subscription_id: str) -> str:
        number = self._sub_numbers.get(subscription_id)
        if number is None:
            number = await self._locate("sub", subscription_id)
            if number is None:
                raise NotFound(f"no subscription {subscription_id!r}")
            self._sub_numbers[subscription_id] = number
        return number

    @_guarded("reserve")
    async def reserve(self, reservation: Reservation, *, floor_units: int) -> Reservation:
        """Plan the hold and apply it in one round trip, with no read before it.

        What other nodes change meanwhile (the balance, the account's status,
        the subscription's seconds) is the plan's guard, checked by the write
        itself: two nodes holding on one account can never overspend it.
        """
        r = reservation
        plan = plan_reserve(r, floor_units=floor_units)
        if r.account_id is not None:
            tag = f"a:{r.account_id}"
        elif r.subscription_id is not None:
            tag = f"n:{await self._subscription_number(r.subscription_id)}"
        else:
            tag = f"n:{r.number_e164}"
        keys, args = self._hold_command(plan, tag)
        # The ids are claimed globally beside the script, in the same round trip: a
        # reservation or call id is unique per payer inside the script, and the
        # global claim catches the (never expected) reuse across payers.
        script = self._scripts["hold"]
        claims: list[tuple[object, ...]] = [
            ("SET", self._k("loc", "res", r.id), tag, "NX", "GET"),
            ("SET", self._k("loc", "call", r.call_id), r.id, "NX", "GET"),
        ]
        if tag not in self._known_tags:
            claims.append(("SADD", self._k("tags"), tag))
        if self._lane is not None:
            # One write for everything.
            reply, *replies = await self._lane.execute(
                [("EVALSHA", script.sha, len(keys), *keys, *args), *claims]
            )
            for value in replies:
                if isinstance(value, Exception):
                    raise value
            if isinstance(reply, NoScriptError):
                reply = await script(keys, args)
            elif isinstance(reply, Exception):
                raise reply
            result = list(reply)
            old_res, old_call = replies[0], replies[1]
        else:
            # A cluster pipeline does not carry scripts: the two go side by side.
            reply, claimed = await asyncio.gather(script(keys, args), self._batch(claims))
            result = list(reply)
            old_res, old_call = claimed[0], claimed[1]
        self._known_tags.add(tag)
        clash = (old_res is not None and old_res != tag) or (
            old_call is not None and old_call != r.id
        )
        if result[0] != "ok" or clash:
            pipe = self._pipe()
            if old_res is None:
                pipe.delete(self._k("loc", "res", r.id))
            if old_call is None:
                pipe.delete(self._k("loc", "call", r.call_id))
            await pipe.execute()
        if result[0] == "ok" and clash:
            # Held under an id another payer holds already: give it straight back.
            self._remember(r, tag)
            await self.settle(r.id, talked_seconds=0, charge_legs=(), at=r.created_at)
            raise DuplicateRequest(f"reservation {r.id!r} or call {r.call_id!r} already exists")
        if result[0] == "unknown_account":
            raise UnknownAccount(f"no account {r.account_id!r}")
        if result[0] == "state":
            raise InvalidState(f"account {r.account_id!r} is {result[2]}")
        if result[0] != "ok":
            answer(result, f"reservation {r.id!r} of call {r.call_id!r}")
        self._remember(r, tag)
        return r

    async def _reservation_tag(self, reservation_id: str) -> str:
        tag = self._tags.get(reservation_id)
        if tag is None:
            tag = await self._locate("res", reservation_id)
            if tag is None:
                raise NotFound(f"no reservation {reservation_id!r}")
        return tag

    async def _read_reservation(self, reservation_id: str) -> tuple[Reservation, str]:
        tag = await self._reservation_tag(reservation_id)
        h = await self.client.hgetall(self._res(tag, reservation_id))
        if not h:
            raise NotFound(f"no reservation {reservation_id!r}")
        r = self._reservation_from(h)
        if r.status is ReservationStatus.OPEN:
            self._remember(r, tag)
        return r, tag

    @_guarded("heartbeat")
    async def heartbeat(self, reservation_id: str, seconds: int, at: datetime) -> Reservation:
        if seconds < 0:
            raise InvalidRequest("heartbeat seconds must not be negative")
        tag = await self._reservation_tag(reservation_id)
        result = answer(
            await self._run("heartbeat", [self._res(tag, reservation_id)], [seconds, at]),
            f"reservation {reservation_id!r}",
        )
        cached = self._reservations.get(reservation_id)
        if cached is None:
            return (await self._read_reservation(reservation_id))[0]
        updated = replace(
            cached, heartbeat_seconds=int(result[2]), heartbeat_at=_dt_req(ts(at))
        )
        self._reservations[reservation_id] = updated
        return updated

    async def settle(
        self,
        reservation_id: str,
        *,
        talked_seconds: int,
        charge_legs: Sequence[Leg],
        at: datetime,
        receivable_id: str | None = None,
    ) -> Reservation:
        """Settle in Redis; while Redis is unreachable, journal it on this node.

        A settlement is journaled only for a reservation this node made (it
        knows what is held). The journaled reservation is answered as settled:
        the journal is on disk and is replayed exactly once when Redis returns.
        """
        try:
            return await self._settle_remote(
                reservation_id,
                talked_seconds=talked_seconds,
                charge_legs=charge_legs,
                at=at,
                receivable_id=receivable_id,
            )
        except StoreUnavailable:
            cached = self._reservations.get(reservation_id)
            if self.journal is None or cached is None:
                raise
            self.journal.append_settlement(
                JournaledSettlement(
                    reservation_id, talked_seconds, tuple(charge_legs), at, receivable_id
                )
            )
            if self.on_journaled is not None:
                self.on_journaled(reservation_id)
            return replace(
                cached,
                status=ReservationStatus.SETTLED,
                settled_at=_dt_req(ts(at)),
                talked_seconds=talked_seconds,
                charged_units=sum(leg.amount_units for leg in charge_legs),
            )

    @_guarded("settle")
    async def _settle_remote(
        self,
        reservation_id: str,
        *,
        talked_seconds: int,
        charge_legs: Sequence[Leg],
        at: datetime,
        receivable_id: str | None = None,
    ) -> Reservation:
        """Read (a hold this node made is known without a read), plan, apply.

        The write checks that the reservation is still open and holds what it
        held when planned, so a settlement another node made meanwhile (a
        recovery) is refused, not repeated.
        """
        charge = CallCharge.checked(talked_seconds, charge_legs)
        r = self._reservations.get(reservation_id)
        tag = self._tags.get(reservation_id)
        if r is None or tag is None:
            r, tag = await self._read_reservation(reservation_id)
        plan = plan_settle(r, charge, at=at, receivable_id=receivable_id)
        keys, args = self._settle_command(plan, tag)
        number = tag.removeprefix("n:")
        receivable = plan.receivable.record.id if plan.receivable is not None else None
        if receivable is not None:
            pipe = self._pipe()
            pipe.set(self._k("loc", "rcv", receivable), number, nx=True, get=True)
            pipe.sadd(self._k("receivables"), json.dumps([number, receivable]))
            old, _ = await pipe.execute()
            if old is not None and old != number:
                raise DuplicateRequest(f"receivable {receivable!r} exists")
        try:
            result = list(await self._scripts["settle"](keys, args))
            if result[0] != "ok":
                answer(result, f"reservation {reservation_id!r}")
        except InvalidState:
            self._forget(reservation_id)
            raise
        except AccountsError:
            if receivable is not None:
                await self._release_id("rcv", receivable, number)
            raise
        self._forget(reservation_id)
        if self.is_cluster:
            # Not atomic with the settlement: if this is lost the claims stay (a
            # few bytes, no money); a replayed settle sends it again.
            await self._batch(
                [("EXPIRE", key, self.finished_call_ttl) for key in self._claims_of(r)]
            )
        assert plan.reservation is not None
        settled = plan.reservation.record
        # The time as the store keeps it: UTC (a microsecond is the finest either way).
        settled_at = at if at.tzinfo is UTC else at.astimezone(UTC)
        beat, beat_at = int(result[2] or 0), _dt(result[3])
        if (
            settled_at is settled.settled_at
            and beat == settled.heartbeat_seconds
            and beat_at == settled.heartbeat_at
        ):
            return settled  # as this node knew it: the common case, and no copy
        return replace(
            settled, settled_at=settled_at, heartbeat_seconds=beat, heartbeat_at=beat_at
        )

    def _claims_of(self, r: Reservation) -> tuple[str, str]:
        """The global claims of a reservation's and its call's ids."""
        return self._k("loc", "res", r.id), self._k("loc", "call", r.call_id)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        """The reservation; while Redis is unreachable, this node's own copy of it
        (as it was last seen here) when settlements are journaled."""
        try:
            return await self._get_reservation(reservation_id)
        except StoreUnavailable:
            cached = self._reservations.get(reservation_id)
            if self.journal is None or cached is None:
                raise
            return cached

    @_guarded("get_reservation")
    async def _get_reservation(self, reservation_id: str) -> Reservation:
        return (await self._read_reservation(reservation_id))[0]

    @_guarded("open_reservations")
    async def open_reservations(self) -> list[Reservation]:
        tags = await self._all_tags()
        if not tags:
            return []
        pipe = self._pipe()
        for tag in tags:
            pipe.smembers(self._t(tag, "open"))
        keys: list[str] = []
        for tag, members in zip(tags, await pipe.execute(), strict=True):
            keys.extend(self._res(tag, rid) for rid in members)
        if not keys:
            return []
        pipe = self._pipe()
        for key in keys:
            pipe.hgetall(key)
        found = [self._reservation_from(h) for h in await pipe.execute() if h]
        return sorted(
            (r for r in found if r.status is ReservationStatus.OPEN), key=lambda r: r.id
        )

    # -- refunds ---------------------------------------------------------------------------
    def _refund_key(self, account_id: str, refund_id: str) -> str:
        return self._t(f"a:{account_id}", "refund", refund_id)

    async def _refund(self, refund_id: str) -> Refund:
        return refund_from(await self._located("refund", refund_id, "a", "refund"))

    @_guarded("create_refund")
    async def create_refund(self, refund: Refund, *, at: datetime) -> Refund:
        f = refund
        plan = plan_refund_create(f, at=at)
        tag = f"a:{f.account_id}"
        await self._register_tags(tag)
        if not await self._claim_id("refund", f.id, f.account_id):
            raise DuplicateRequest(f"refund {f.id!r} already exists")
        await self.client.sadd(self._k("refunds"), json.dumps([f.account_id, f.id]))
        try:
            await self._apply(plan, tag, f"refund {f.id!r} of account {f.account_id!r}")
        except (UnknownAccount, InsufficientFunds):
            await self._release_id("refund", f.id, f.account_id)
            raise
        return await self._refund(f.id)

    @_guarded("decide_refund")
    async def decide_refund(self, refund_id: str, status: RefundStatus, *, at: datetime) -> Refund:
        await self._replanned(
            lambda: self._refund(refund_id),
            lambda refund: plan_refund_decision(refund, RefundStatus(status), at=at),
            lambda refund: f"a:{refund.account_id}",
            f"refund {refund_id!r}",
        )
        return await self._refund(refund_id)

    @_guarded("get_refund")
    async def get_refund(self, refund_id: str) -> Refund:
        return await self._refund(refund_id)

    @_guarded("list_refunds")
    async def list_refunds(
        self, *, status: RefundStatus | None = None, account_id: str | None = None
    ) -> list[Refund]:
        hashes = await self._listed("a", account_id, "refunds", "refunds", "refund")
        refunds = [refund_from(h) for h in hashes]
        if status is not None:
            refunds = [r for r in refunds if r.status == status]
        return sorted(refunds, key=lambda r: (r.requested_at, r.id))

    # -- invoices ------------------------------------------------------------------------
    @staticmethod
    def _invoice_json(invoice: Invoice) -> str:
        return json.dumps(
            {
                "id": invoice.id,
                "account_id": invoice.account_id,
                "period_start": ts(invoice.period_start),
                "period_end": ts(invoice.period_end),
                "issued_at": ts(invoice.issued_at),
                "due_at": ts(invoice.due_at),
                "amount_units": invoice.amount_units,
            }
        )

    @staticmethod
    def _invoice_from(text: str) -> Invoice:
        d = json.loads(text)
        for name in ("period_start", "period_end", "issued_at", "due_at"):
            d[name] = _dt_req(d[name])
        return Invoice(**d)

    @staticmethod
    def _sorted_invoices(raw: Iterable[str]) -> list[Invoice]:
        invoices = [RedisAccountStore._invoice_from(v) for v in raw]
        return sorted(invoices, key=lambda i: (i.issued_at, i.id))

    @_guarded("add_invoice")
    async def add_invoice(self, invoice: Invoice) -> Invoice:
        if not await self.client.exists(self._acct(invoice.account_id)):
            raise UnknownAccount(f"no account {invoice.account_id!r}")
        claimed = await self.client.set(
            self._k("loc", "invoice", invoice.id), invoice.account_id, nx=True
        )
        created = claimed and await self.client.hsetnx(
            self._t(f"a:{invoice.account_id}", "invoices"), invoice.id, self._invoice_json(invoice)
        )
        if not created:
            raise DuplicateRequest(f"invoice {invoice.id!r} already exists")
        return invoice

    @_guarded("list_invoices")
    async def list_invoices(self, account_id: str) -> list[Invoice]:
        raw = await self.client.hvals(self._t(f"a:{account_id}", "invoices"))
        return self._sorted_invoices(raw)

    # -- receivables -------------------------------------------------------------------------
    async def _receivable(self, receivable_id: str) -> Receivable:
        return receivable_from(await self._located("rcv", receivable_id, "n", "receivable"))

    @_guarded("get_receivable")
    async def get_receivable(self, receivable_id: str) -> Receivable:
        return await self._receivable(receivable_id)

    @_guarded("list_receivables")
    async def list_receivables(
        self, *, number_e164: str | None = None, status: ReceivableStatus | None = None
    ) -> list[Receivable]:
        hashes = await self._listed("n", number_e164, "rcvs", "receivables", "rcv")
        found = [receivable_from(h) for h in hashes]
        if status is not None:
            found = [r for r in found if r.status == status]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    @_guarded("settle_receivable")
    async def settle_receivable(
        self, receivable_id: str, status: ReceivableStatus, *, method: str, at: datetime
    ) -> Receivable:
        await self._replanned(
            lambda: self._receivable(receivable_id),
            lambda rec: plan_receivable_settlement(
                rec, ReceivableStatus(status), method=method, at=at
            ),
            lambda rec: f"n:{rec.number_e164}",
            f"receivable {receivable_id!r}",
        )
        return await self._receivable(receivable_id)

    # -- subscriptions -----------------------------------------------------------------------
    @_guarded("add_subscription")
    async def add_subscription(
        self, subscription: Subscription, *, method: str, idempotency_key: str, at: datetime
    ) -> Subscription:
        s = subscription
        plan = plan_subscription_purchase(
            s, method=method, idempotency_key=idempotency_key, at=at
        )
        tag = f"n:{s.number_e164}"
        await self._register_tags(tag)
        if not await self._claim_id("sub", s.id, s.number_e164):
            raise DuplicateRequest(f"subscription {s.id!r} already exists")
        token = self._token()
        if idempotency_key and not await self._claim_id("idem", idempotency_key, token):
            await self._release_id("sub", s.id, s.number_e164)
            raise DuplicateRequest(f"idempotency key {idempotency_key!r} was already used")
        await self.client.sadd(self._k("subscriptions"), json.dumps([s.number_e164, s.id]))
        try:
            await self._apply(
                plan, tag, f"subscription {s.id!r}", idempotency_key=idempotency_key, token=token
            )
        except AccountsError:
            await self._release_id("sub", s.id, s.number_e164)
            if idempotency_key:
                await self._release_id("idem", idempotency_key, token)
            raise
        self._sub_numbers[s.id] = s.number_e164
        return await self._subscription(s.id)

    async def _subscription(self, subscription_id: str) -> Subscription:
        return subscription_from(await self._located("sub", subscription_id, "n", "subscription"))

    @_guarded("get_subscription")
    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._subscription(subscription_id)

    @_guarded("list_subscriptions")
    async def list_subscriptions(
        self, *, number_e164: str | None = None, facility_id: str | None = None
    ) -> list[Subscription]:
        hashes = await self._listed("n", number_e164, "subs", "subscriptions", "sub")
        subs = [subscription_from(h) for h in hashes]
        if facility_id is not None:
            subs = [s for s in subs if s.facility_id == facility_id]
        return sorted(subs, key=lambda s: (s.starts_at, s.id))

    # -- people and screening ----------------------------------------------------------------
    def _person_key(self, facility_id: str, pin: str) -> str:
        return self._t(_person_tag(facility_id, pin), "person")

    def _allowed_key(self, facility_id: str, pin: str) -> str:
        return self._t(_person_tag(facility_id, pin), "allowed")

    @staticmethod
    def _restrictions_json(restrictions: Sequence[Restriction]) -> str:
        return json.dumps(
            [
                {"kind": r.kind, "until": ts(r.until) if r.until else None, "note": r.note}
                for r in restrictions
            ]
        )

    @staticmethod
    def _restrictions_from(text: str | None) -> tuple[Restriction, ...]:
        return tuple(
            Restriction(kind=r["kind"], until=_dt(r.get("until")), note=r.get("note", ""))
            for r in json.loads(text or "[]")
        )

    def _person_from(self, h: dict[str, str], allowed: Iterable[str]) -> Person:
        return Person(
            facility_id=h["facility_id"],
            pin=h["pin"],
            name=h.get("name", ""),
            language=h.get("language", "en"),
            allowed_numbers=frozenset(allowed),
            restrictions=self._restrictions_from(h.get("restrictions")),
            released_at=_dt(h.get("released_at")),
        )

    async def _person(self, facility_id: str, pin: str) -> Person:
        pipe = self._pipe()
        pipe.hgetall(self._person_key(facility_id, pin))
        pipe.smembers(self._allowed_key(facility_id, pin))
        h, allowed = await pipe.execute()
        if not h:
            raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        return self._person_from(h, allowed)

    @_guarded("add_person")
    async def add_person(self, person: Person) -> Person:
        p = person
        await self.client.sadd(self._k("people"), json.dumps([p.facility_id, p.pin]))
        allowed = sorted(p.allowed_numbers)
        fields = {
            "facility_id": p.facility_id,
            "pin": p.pin,
            "name": p.name,
            "language": p.language,
            "restrictions": self._restrictions_json(p.restrictions),
            "released_at": p.released_at,
        }
        answer(
            await self._run(
                "create",
                [self._person_key(p.facility_id, p.pin), self._allowed_key(p.facility_id, p.pin)],
                [self._token(), len(allowed), *allowed, *_pairs(fields)],
            ),
            f"PIN {p.pin!r} at {p.facility_id!r}",
        )
        return await self._person(p.facility_id, p.pin)

    @_guarded("get_person")
    async def get_person(self, facility_id: str, pin: str) -> Person:
        return await self._person(facility_id, pin)

    @_guarded("list_people")
    async def list_people(self, facility_id: str | None = None) -> list[Person]:
        keys = sorted(tuple(json.loads(m)) for m in await self.client.smembers(self._k("people")))
        if facility_id is not None:
            keys = [k for k in keys if k[0] == facility_id]
        if not keys:
            return []
        pipe = self._pipe()
        for fac, pin in keys:
            pipe.hgetall(self._person_key(fac, pin))
            pipe.smembers(self._allowed_key(fac, pin))
        raw = await pipe.execute()
        return [
            self._person_from(raw[2 * n], raw[2 * n + 1])
            for n in range(len(keys))
            if raw[2 * n]
        ]

    async def _update_person(self, facility_id: str, pin: str, fields: dict[str, object]) -> Person:
        result = await self._run("update", [self._person_key(facility_id, pin)], _pairs(fields))
        if result[0] == "notfound":
            raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        return await self._person(facility_id, pin)

    @_guarded("set_allowed_number")
    async def set_allowed_number(
        self, facility_id: str, pin: str, number_e164: str, allowed: bool
    ) -> Person:
        await self._person(facility_id, pin)
        key = self._allowed_key(facility_id, pin)
        if allowed:
            await self.client.sadd(key, number_e164)
        else:
            await self.client.srem(key, number_e164)
        return await self._person(facility_id, pin)

    @_guarded("set_restrictions")
    async def set_restrictions(
        self, facility_id: str, pin: str, restrictions: Sequence[Restriction]
    ) -> Person:
        return await self._update_person(
            facility_id, pin, {"restrictions": self._restrictions_json(restrictions)}
        )

    async def _restriction_step(
        self, facility_id: str, pin: str, op: str, kind: str, until: str, note: str
    ) -> bool:
        result = answer(
            await self._run("restriction", [self._person_key(facility_id, pin)],
                            [op, kind, until, note]),
            f"PIN {pin!r} at {facility_id!r}",
        )
        return bool(result[1] == "1")

    @_guarded("add_restriction")
    async def add_restriction(self, facility_id: str, pin: str, restriction: Restriction) -> bool:
        r = restriction
        until = ts(r.until) if r.until is not None else ""
        return await self._restriction_step(facility_id, pin, "add", r.kind, until, r.note)

    @_guarded("remove_restriction")
    async def remove_restriction(self, facility_id: str, pin: str, restriction_id: str) -> bool:
        # Lua has no SHA-256, so find which content the id names here, then let the
        # script remove that content if it is still there. The id is a function of
        # the content, so a change made in between cannot be lost or misapplied.
        raw = await self.client.hget(self._person_key(facility_id, pin), "restrictions")
        for entry in json.loads(raw or "[]"):
            until_text = entry.get("until") or ""
            note = entry.get("note") or ""
            r = Restriction(kind=entry["kind"], until=_dt(until_text), note=note)
            if id_of(r) == restriction_id:
                return await self._restriction_step(
                    facility_id, pin, "remove", r.kind, until_text, note
                )
        if raw is None and not await self.client.exists(self._person_key(facility_id, pin)):
            raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        return False

    @_guarded("set_person_language")
    async def set_person_language(self, facility_id: str, pin: str, language: str) -> Person:
        return await self._update_person(facility_id, pin, {"language": language})

    @_guarded("mark_released")
    async def mark_released(self, facility_id: str, pin: str, at: datetime) -> Person:
        return await self._update_person(facility_id, pin, {"released_at": at})

    def _blocks_key(self, facility_id: str) -> str:
        return self._t(f"f:{facility_id}", "blocks")

    @_guarded("set_facility_block")
    async def set_facility_block(
        self, facility_id: str, pattern: str, *, prefix: bool, blocked: bool
    ) -> None:
        member = ("p:" if prefix else "e:") + pattern
        if blocked:
            await self.client.sadd(self._blocks_key(facility_id), member)
        else:
            await self.client.srem(self._blocks_key(facility_id), member)

    @_guarded("list_facility_blocks")
    async def list_facility_blocks(self, facility_id: str) -> list[tuple[str, bool]]:
        members = await self.client.smembers(self._blocks_key(facility_id))
        return sorted((m[2:], m.startswith("p:")) for m in members)

    def _self_blocks_key(self, number: str) -> str:
        return self._t(f"n:{number}", "selfblocks")

    @_guarded("set_self_block")
    async def set_self_block(
        self, number_e164: str, facility_id: str | None, blocked: bool
    ) -> None:
        scope = ALL_FACILITIES if facility_id is None else facility_id
        if blocked:
            await self.client.sadd(self._self_blocks_key(number_e164), scope)
        else:
            await self.client.srem(self._self_blocks_key(number_e164), scope)

    @_guarded("list_self_blocks")
    async def list_self_blocks(self, number_e164: str) -> list[str | None]:
        members = sorted(await self.client.smembers(self._self_blocks_key(number_e164)))
        return [None if m == ALL_FACILITIES else m for m in members]

    @_guarded("set_privileged")
    async def set_privileged(self, number_e164: str, privileged: bool, note: str = "") -> None:
        if privileged:
            await self.client.hset(self._k("privileged"), number_e164, note)
        else:
            await self.client.hdel(self._k("privileged"), number_e164)

    @_guarded("list_privileged")
    async def list_privileged(self) -> list[str]:
        return sorted(await self.client.hkeys(self._k("privileged")))

    def _screening_commands(
        self, facility_id: str, pin: str, number_e164: str
    ) -> list[tuple[object, ...]]:
        # Exact blocks and every prefix of the number, in one membership test.
        probes = ["e:" + number_e164] + [
            "p:" + number_e164[:n] for n in range(1, len(number_e164) + 1)
        ]
        return [
            ("HGETALL", self._person_key(facility_id, pin)),
            ("SMEMBERS", self._allowed_key(facility_id, pin)),
            ("SMISMEMBER", self._blocks_key(facility_id), *probes),
            ("SMISMEMBER", self._self_blocks_key(number_e164), facility_id, ALL_FACILITIES),
            ("HEXISTS", self._k("privileged"), number_e164),
        ]

    @_guarded("screening_facts")
    async def screening_facts(
        self, facility_id: str, pin: str, number_e164: str
    ) -> ScreeningFacts:
        """The facts, read in one round trip with the payers of the call (see ``payer_candidates``).

        The call's next step is to find who pays; those reads ride along with
        the screening ones and wait for it, so a call is authorized with one
        round trip of reads instead of three.
        """
        key = (facility_id, pin, number_e164)
        guess = self._payer_guess.get(key)
        commands = self._screening_commands(facility_id, pin, number_e164)
        screened = len(commands)
        commands.extend(self._payer_commands(key, guess))
        replies = await self._batch(commands)
        h, allowed, blocks, self_blocks, privileged = replies[:screened]
        task = asyncio.current_task()
        if len(self._prefetched) >= 1_000:
            # Calls refused at screening leave theirs behind; none is worth keeping.
            self._prefetched.clear()
        self._prefetched[key] = (
            task, asyncio.get_running_loop().time(), guess, replies[screened:]
        )
        h = _hash(h)
        return ScreeningFacts(
            person=self._person_from(h, allowed) if h else None,
            facility_blocked=any(int(b) for b in blocks),
            self_blocked=any(int(b) for b in self_blocks),
            privileged=bool(privileged),
        )

    def _payer_commands(
        self,
        key: tuple[str, str, str],
        guess: _Payers | None,
    ) -> list[tuple[object, ...]]:
        """The payer index of the call, and (when guessed) the payers' records."""
        facility_id, pin, number_e164 = key
        tag = f"n:{number_e164}"
        commands: list[tuple[object, ...]] = [
            ("HGETALL", self._idx(number_e164)),
            ("HGET", self._t(_person_tag(facility_id, pin), "owns"), "debit"),
            ("SMEMBERS", self._t(tag, "subs")),
            ("SCARD", self._t(tag, "failed")),
        ]
        if guess is not None:
            commands.extend(self._payer_record_commands(number_e164, guess))
        return commands

    def _payer_record_commands(
        self, number_e164: str, payers: _Payers
    ) -> list[tuple[object, ...]]:
        ids, sub_ids, db_id = payers
        commands: list[tuple[object, ...]] = []
        for account_id in ids:
            commands.append(("HGETALL", self._acct(account_id)))
            commands.append(("SMEMBERS", self._nums(account_id)))
        for sid in sub_ids:
            commands.append(("HGETALL", self._t(f"n:{number_e164}", "sub", sid)))
        if db_id:
            commands.append(("HVALS", self._t(f"a:{db_id}", "invoices")))
            commands.append(("HGET", self._acct(db_id), "paid"))
        return commands

    @_guarded("payer_candidates")
    async def payer_candidates(
        self, facility_id: str, pin: str, number_e164: str, at: datetime
    ) -> PayerCandidates:
        """Who may pay; read with the screening when this task just screened this call.

        Those reads are at most ``PREFETCH_AGE`` old and nothing else of this
        node's came between: they are what a read now would give, give or take
        a concurrent change, and the hold re-checks balance and status
        atomically in any case. Otherwise one round trip reads the payer index
        and the records of the payers last seen for the call, and a second one
        only when those changed.
        """
        key = (facility_id, pin, number_e164)
        stash = self._prefetched.pop(key, None)
        if (
            stash is not None
            and stash[0] is asyncio.current_task()
            and asyncio.get_running_loop().time() - stash[1] < PREFETCH_AGE
        ):
            guess, replies = stash[2], stash[3]
        else:
            guess = self._payer_guess.get(key)
            replies = await self._batch(self._payer_commands(key, guess))
        index, debit_id, sub_ids, failed = replies[:4]
        index = _hash(index)
        ac_id = index.get(str(Product.ADVANCE_CONNECT))
        db_id = index.get(str(Product.DIRECT_BILL))
        payers = (
            tuple(sorted({i for i in (ac_id, db_id, debit_id) if i})),
            tuple(sorted(sub_ids)),
            db_id or "",
        )
        if payers == guess:
            raw = replies[4:]
        else:
            if len(self._payer_guess) >= PAYER_GUESS_SIZE:
                self._payer_guess.clear()
            self._payer_guess[key] = payers
            commands = self._payer_record_commands(number_e164, payers)
            raw = await self._batch(commands) if commands else []
        ids, sub_ids_sorted, _ = payers
        accounts: dict[str, Account] = {}
        for n, account_id in enumerate(ids):
            h = _hash(raw[2 * n])
            if h:
                accounts[account_id] = self._account_from(h, raw[2 * n + 1])
        sub_rows = raw[2 * len(ids) : 2 * len(ids) + len(sub_ids_sorted)]
        subs = [subscription_from(h) for h in map(_hash, sub_rows) if h]
        active = [
            s
            for s in subs
            if s.facility_id == facility_id
            and s.starts_at <= at < s.ends_at
            and s.remaining_seconds > 0
        ]
        subscription = min(active, key=lambda s: s.ends_at) if active else None
        debit = accounts.get(debit_id) if debit_id else None
        if debit is not None and (debit.facility_id != facility_id or debit.pin != pin):
            debit = None
        direct_bill = accounts.get(db_id) if db_id else None
        invoices: tuple[Invoice, ...] = ()
        paid = 0
        if direct_bill is not None:
            invoices = tuple(self._sorted_invoices(raw[-2]))
            if invoices:
                paid = int(raw[-1] or 0)
        return PayerCandidates(
            subscription=subscription,
            debit=debit,
            advance_connect=accounts.get(ac_id) if ac_id else None,
            direct_bill=direct_bill,
            direct_bill_invoices=invoices,
            direct_bill_paid_units=paid,
            single_call_barred=int(failed) > 0,
        )

    # -- PIN guessing ------------------------------------------------------------------
    # Under the facility's tag: each station's failures (a sorted set by time, kept a
    # window after its last write), its lock (a hash, kept for the lock's length) and
    # the facility's locked stations (a sorted set by the lock's end, kept as long as
    # its longest lock). Times in the scores are microseconds since the epoch.
    def _pin_keys(self, facility_id: str, station: str) -> list[str]:
        tag = f"f:{facility_id}"
        return [
            self._t(tag, "pin-failures", station),
            self._t(tag, "station-lock", station),
            self._t(tag, "station-locks"),
        ]

    @staticmethod
    def _lock_from(facility_id: str, station: str, h: Mapping[str, str]) -> StationLock:
        return StationLock(
            facility_id=facility_id,
            station=station,
            locked_at=_dt_req(h["locked_at"]),
            until=_dt_req(h["until"]),
            failures=int(h["failures"]),
        )

    @_guarded("record_pin_failure")
    async def record_pin_failure(
        self, facility_id: str, station: str, at: datetime, policy: PinGuardPolicy
    ) -> StationLock | None:
        check_station_key(facility_id, station)
        locked_at = ts(at)  # refuses a naive time before anything is written
        until = at + timedelta(seconds=policy.lock_seconds)
        since = at - timedelta(seconds=policy.window_seconds)
        status, failures = await self._run(
            "pin_failure",
            self._pin_keys(facility_id, station),
            [
                station,
                self._token(),
                _micros(at),
                _micros(since),
                policy.failures,
                policy.window_seconds * 1000,
                policy.lock_seconds * 1000,
                locked_at,
                ts(until),
                _micros(until),
            ],
        )
        if status != "locked":
            return None
        return StationLock(facility_id, station, _dt_req(locked_at), _dt_req(ts(until)),
                           int(failures))

    @_guarded("station_lock")
    async def station_lock(
        self, facility_id: str, station: str, at: datetime
    ) -> StationLock | None:
        check_station_key(facility_id, station)
        _, lock_key, _ = self._pin_keys(facility_id, station)
        h = _hash(await self.client.hgetall(lock_key))
        if not h:
            return None
        lock = self._lock_from(facility_id, station, h)
        return lock if lock.active(at) else None

    @_guarded("clear_station_lock")
    async def clear_station_lock(self, facility_id: str, station: str) -> bool:
        check_station_key(facility_id, station)
        _, lock_key, locks_key = self._pin_keys(facility_id, station)
        # The lock hash is the lock; the listing entry goes after it (a listed
        # station without a hash is skipped by the listing).
        cleared = bool(await self.client.delete(lock_key))
        await self.client.zrem(locks_key, station)
        return cleared

    @_guarded("list_station_locks")
    async def list_station_locks(self, facility_id: str, at: datetime) -> list[StationLock]:
        check_station_key(facility_id, "-")
        ts(at)
        locks_key = self._pin_keys(facility_id, "-")[2]
        stations = await self.client.zrangebyscore(locks_key, f"({_micros(at)}", "+inf")
        if not stations:
            return []
        pipe = self._pipe()
        for station in stations:
            pipe.hgetall(self._pin_keys(facility_id, station)[1])
        locks = [
            self._lock_from(facility_id, station, _hash(h))
            for station, h in zip(stations, await pipe.execute(), strict=True)
            if h
        ]
        return sorted((lk for lk in locks if lk.active(at)), key=lambda lk: lk.station)

    # -- call detail records ---------------------------------------------------------------------
    async def add_cdr(self, cdr: CallDetailRecord) -> CallDetailRecord:
        """Write a call record; while Redis is unreachable, journal it on this node."""
        try:
            return await self._add_cdr_remote(cdr)
        except StoreUnavailable:
            if self.journal is None:
                raise
            self.journal.append_record(cdr)
            return cdr

    @_guarded("add_cdr")
    async def _add_cdr_remote(self, cdr: CallDetailRecord) -> CallDetailRecord:
        ts(cdr.setup_at)  # refuses a naive time before anything is written
        text = cdr_json(cdr)
        if not await self.client.set(self._k("cdr", cdr.call_id), text, nx=True):
            raise DuplicateRequest(f"a record for call {cdr.call_id!r} exists")
        await self.client.zadd(self._k("cdrs"), {cdr.call_id: cdr.setup_at.timestamp()})
        return cdr_from_json(text)

    @_guarded("get_cdr")
    async def get_cdr(self, call_id: str) -> CallDetailRecord:
        text = await self.client.get(self._k("cdr", call_id))
        if text is None:
            raise NotFound(f"no record for call {call_id!r}")
        return cdr_from_json(text)

    @_guarded("list_cdrs")
    async def list_cdrs(self, filters: CdrFilter | None = None) -> list[CallDetailRecord]:
        f = filters or CdrFilter()
        # The score narrows the range; exact bounds are applied on the records.
        low = f.since.timestamp() - 1 if f.since is not None else "-inf"
        high = f.until.timestamp() + 1 if f.until is not None else "+inf"
        call_ids = await self.client.zrangebyscore(self._k("cdrs"), low, high)
        if not call_ids:
            return []
        pipe = self._pipe()
        for call_id in call_ids:
            pipe.get(self._k("cdr", call_id))
        records = [cdr_from_json(t) for t in await pipe.execute() if t is not None]
        out = [
            c
            for c in records
            if (f.facility_id is None or c.facility_id == f.facility_id)
            and (f.pin is None or c.pin == f.pin)
            and (f.number_e164 is None or c.number_e164 == f.number_e164)
            and (f.payer_account_id is None or c.payer_account_id == f.payer_account_id)
            and (f.since is None or c.setup_at >= f.since)
            and (f.until is None or c.setup_at < f.until)
        ]
        out.sort(key=lambda c: (c.setup_at.astimezone(UTC), c.call_id))
        if f.limit is not None:
            out = out[: int(f.limit)]
        return out

    # -- the local journal -------------------------------------------------------------------
    async def replay_journal(self) -> ReplayReport:
        """Apply every pending journal entry once, in order; stop while Redis is away."""
        report = ReplayReport()
        if self.journal is None:
            return report
        pending = self.journal.pending()
        for n, entry in enumerate(pending):
            try:
                if entry.settlement is not None:
                    j = entry.settlement
                    try:
                        await self._settle_remote(
                            j.reservation_id,
                            talked_seconds=j.talked_seconds,
                            charge_legs=j.charge_legs,
                            at=j.at,
                            receivable_id=j.receivable_id,
                        )
                        state = "applied"
                    except InvalidState:
                        # Applied before (an answer lost, or another node's recovery).
                        state = "already_applied"
                else:
                    assert entry.record is not None
                    try:
                        await self._add_cdr_remote(entry.record)
                        state = "applied"
                    except DuplicateRequest:
                        state = "already_applied"
            except StoreUnavailable as exc:
                if _script_failed(exc):
                    # Redis answered, and the entry itself cannot apply: set it aside
                    # rather than hold up every entry behind it.
                    self.journal.close_entry(entry.seq, "failed", str(exc))
                    report.failed[f"{entry.kind}:{entry.key}"] = str(exc)
                    log.error("journaled %s %s cannot be applied: %s", entry.kind, entry.key, exc)
                    continue
                self.journal.note_attempt(entry.seq, str(exc))
                report.remaining = len(pending) - n
                return report
            except AccountsError as exc:
                self.journal.close_entry(entry.seq, "failed", f"{type(exc).__name__}: {exc}")
                report.failed[f"{entry.kind}:{entry.key}"] = str(exc)
                log.error("journaled %s %s cannot be applied: %s", entry.kind, entry.key, exc)
                continue
            self.journal.close_entry(entry.seq, state)
            label = f"{entry.kind}:{entry.key}"
            (report.applied if state == "applied" else report.already_applied).append(label)
        return report

    async def _replay_loop(self) -> None:
        assert self.journal is not None
        while True:
            await asyncio.sleep(self.replay_interval)
            if not len(self.journal):
                continue
            try:
                report = await self.replay_journal()
            except Exception:  # the loop must outlive any single bad entry
                log.exception("replaying the settlement journal failed")
                continue
            if report.applied or report.already_applied:
                log.warning(
                    "settlement journal: %d entries applied, %d applied before, %d left",
                    len(report.applied),
                    len(report.already_applied),
                    report.remaining,
                )
