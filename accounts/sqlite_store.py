"""The embedded account store: one SQLite file, every money-moving step one transaction.

Money steps (reserve, settle, refunds, receivables, subscription purchases)
read their records, take the plan ``accounts.postings`` makes of them and
apply it with ``_apply`` in the same transaction; the plan's expectations
(an open account above its floor, a reservation still open, a refund still
pending) are the WHERE clauses of the statements that change them.

Durability: the database runs in WAL mode. ``synchronous=FULL`` fsyncs the
write-ahead log on every commit, so a committed deposit or charge
survives a power loss. ``synchronous=NORMAL`` fsyncs only at checkpoints: a
process crash still loses nothing, the file is never corrupted, but a power
loss or kernel crash may roll back the last commits before the checkpoint.
Choose NORMAL only where the payment processor re-sends unconfirmed deposits
(idempotency keys make that safe) and losing a few seconds of call charges on
power loss is acceptable.

Checkpoints (copying the log back into the database file, with an fsync) run
on a background thread with its own connection every ``checkpoint_interval``
seconds, in PASSIVE mode, which never blocks the writer; the writer's own
automatic checkpoint is off, so an authorize or settle does not pay for one.
The exception is steady heavy load: the log only starts over when a writer
finds it fully copied, which a background checkpoint racing the writer never
achieves, so once the log is ``restart_frames`` pages long the writer copies
the last frames itself between two transactions (a pause of a few
milliseconds per ``restart_frames`` pages written) and the log file stays
bounded instead of growing until the load stops.

Per post, as few pages as possible are rewritten (each is one log frame, and
a commit costs about 5 us per frame): ledger entries are clustered by
transaction and have no index by ref (an account's legs are reached through
its transactions), transaction ids need no ``sqlite_sequence`` row, and ids
that ascend append to their index.

Screening facts and the ids of the accounts that could pay for a call are
kept in memory, checked against ``PRAGMA data_version`` (another connection's
commit) on every read; balances never are. ``PRAGMA user_version`` holds the
schema version: older files are upgraded on open, newer ones refused.

Calls run directly on the event loop: every statement here is an indexed
lookup or an append on a local file and completes in microseconds, cheaper
than handing it to a thread. Writes are committed in groups
(``accounts.sqlite_writer``): the writes queued in one loop turn share one
COMMIT, each still atomic on its own, none reported done before that COMMIT
returned. One connection per store keeps transactions strictly serial
(``BEGIN IMMEDIATE`` takes the write lock up front, so a read-check-write
never races another writer, in this process or another one sharing the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from accounts.cdr import CallDetailRecord, CdrFilter
from accounts.errors import (
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
    ReservationChange,
    SecondsChange,
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
from accounts.sqlite_writer import GroupWriter
from accounts.station_locks import PinGuardPolicy, StationLock, record_failure
from accounts.store import (
    MUTABLE_ACCOUNT_FIELDS,
    AccountStore,
    PayerCandidates,
    ScreeningFacts,
    cdr_from_json,
    cdr_json,
    check_account_legs,
    check_station_key,
)
from accounts.store import restriction_id as id_of
from accounts.store import ts as ts
from rating import Product

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    status TEXT NOT NULL,
    facility_id TEXT,
    pin TEXT,
    credit_limit INTEGER NOT NULL DEFAULT 0,
    holder_name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    last_activity_at TEXT,
    last_call_at TEXT,
    last_call_facility TEXT,
    closure_due_at TEXT,
    inactive_flagged_at TEXT,
    balance INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_debit_owner
    ON accounts (facility_id, pin) WHERE product = 'debit';
CREATE TABLE IF NOT EXISTS account_numbers (
    number TEXT NOT NULL,
    product TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (number, product)
);
CREATE INDEX IF NOT EXISTS account_numbers_account ON account_numbers (account_id);
-- No AUTOINCREMENT: rows are never deleted (trigger below), so the next id is always
-- above every id ever used, without a write to sqlite_sequence on every post.
CREATE TABLE IF NOT EXISTS ledger_transactions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    account_id TEXT,
    idempotency_key TEXT,
    call_id TEXT,
    seconds INTEGER,
    memo TEXT NOT NULL DEFAULT ''
);
-- Partial: calls carry no key, so their rows cost no index write.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_transactions_key
    ON ledger_transactions (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_transactions_account ON ledger_transactions (account_id, at);
-- Clustered by transaction: a transaction's legs are read together, with no extra index.
CREATE TABLE IF NOT EXISTS ledger_entries (
    tx_id INTEGER NOT NULL REFERENCES ledger_transactions (id),
    leg INTEGER NOT NULL,
    book TEXT NOT NULL,
    ref TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (tx_id, leg)
) WITHOUT ROWID;
-- No index by ref: every post would write one more page per account it moves. An
-- account's legs are found through its transactions (ledger_transactions_account):
-- a transaction's account and hold legs are all on its own account_id (checked
-- on every post). Other books' balances are reports over the whole ledger.
DROP INDEX IF EXISTS ledger_entries_by_ref;
DROP INDEX IF EXISTS ledger_entries_ref;
DROP INDEX IF EXISTS ledger_entries_book;
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY NOT NULL,
    call_id TEXT NOT NULL UNIQUE,
    product TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    number TEXT NOT NULL,
    pin TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    max_seconds INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    account_id TEXT,
    subscription_id TEXT,
    status TEXT NOT NULL,
    heartbeat_seconds INTEGER NOT NULL DEFAULT 0,
    heartbeat_at TEXT,
    settled_at TEXT,
    talked_seconds INTEGER,
    charged INTEGER,
    owner TEXT NOT NULL DEFAULT '',
    jurisdiction TEXT NOT NULL DEFAULT '',
    privileged INTEGER NOT NULL DEFAULT 0,
    station TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (status) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    amount INTEGER NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    decided_at TEXT
);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    amount INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_account ON invoices (account_id, issued_at);
CREATE TABLE IF NOT EXISTS receivables (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    call_id TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    settled_at TEXT
);
CREATE INDEX IF NOT EXISTS receivables_number ON receivables (number, status);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    price INTEGER NOT NULL,
    covered_seconds INTEGER NOT NULL,
    used_seconds INTEGER NOT NULL DEFAULT 0,
    held_seconds INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS subscriptions_route ON subscriptions (number, facility_id, ends_at);
CREATE TABLE IF NOT EXISTS people (
    facility_id TEXT NOT NULL,
    pin TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'en',
    restrictions TEXT NOT NULL DEFAULT '[]',
    released_at TEXT,
    PRIMARY KEY (facility_id, pin)
);
CREATE TABLE IF NOT EXISTS allowed_numbers (
    facility_id TEXT NOT NULL,
    pin TEXT NOT NULL,
    number TEXT NOT NULL,
    PRIMARY KEY (facility_id, pin, number)
);
CREATE TABLE IF NOT EXISTS facility_blocks (
    facility_id TEXT NOT NULL,
    pattern TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    PRIMARY KEY (facility_id, pattern, prefix)
);
CREATE TABLE IF NOT EXISTS self_blocks (
    number TEXT NOT NULL,
    facility_id TEXT NOT NULL,  -- '*' blocks every facility
    PRIMARY KEY (number, facility_id)
);
CREATE TABLE IF NOT EXISTS privileged_numbers (
    number TEXT PRIMARY KEY,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS cdrs (
    call_id TEXT PRIMARY KEY,
    facility_id TEXT NOT NULL,
    pin TEXT NOT NULL,
    number TEXT NOT NULL,
    payer_account_id TEXT,
    setup_at TEXT NOT NULL,
    record TEXT NOT NULL,
    station TEXT NOT NULL DEFAULT '',
    menu_seconds INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cdrs_setup ON cdrs (setup_at);
-- PIN guessing: the failures kept for a station (within the window) and its lock.
CREATE TABLE IF NOT EXISTS pin_failures (
    facility_id TEXT NOT NULL,
    station TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pin_failures_station ON pin_failures (facility_id, station, at);
CREATE TABLE IF NOT EXISTS station_locks (
    facility_id TEXT NOT NULL,
    station TEXT NOT NULL,
    locked_at TEXT NOT NULL,
    until TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (facility_id, station)
) WITHOUT ROWID;
-- Family sign-in and alerts (accounts.family_sqlite keeps them).
CREATE TABLE IF NOT EXISTS family_credentials (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    updated_at TEXT NOT NULL,
    passcode_hash TEXT,
    setup_code_hash TEXT,
    setup_expires_at TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS family_sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS family_sessions_account ON family_sessions (account_id);
CREATE TABLE IF NOT EXISTS family_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS family_failures_key ON family_failures (key, at);
CREATE TABLE IF NOT EXISTS family_alerts (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    preferences TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS family_sweeps (
    name TEXT PRIMARY KEY,
    until TEXT NOT NULL
) WITHOUT ROWID;
"""

#: Columns added to tables of older files, by table: (name, declaration).
#: ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is.
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "cdrs": (
        ("station", "TEXT NOT NULL DEFAULT ''"),
        ("menu_seconds", "INTEGER NOT NULL DEFAULT 0"),
    ),
    "reservations": (
        ("owner", "TEXT NOT NULL DEFAULT ''"),
        ("jurisdiction", "TEXT NOT NULL DEFAULT ''"),
        ("privileged", "INTEGER NOT NULL DEFAULT 0"),
        ("station", "TEXT NOT NULL DEFAULT ''"),
    ),
}

#: The layout this code reads and writes, kept in ``PRAGMA user_version``. A file
#: of an older layout is brought up to it on open (indexes rebuilt from the
#: tables, new tables created, new columns added with their defaults); a file of
#: a newer one is refused. 3: PIN-guessing tables, a CDR's station and menu time.
#: 4: family sign-in and alert tables; a reservation's owner node and the CDR facts
#: kept with the hold.
SCHEMA_VERSION = 4
#: The books whose legs are on their transaction's account (ref = account_id).
_ACCOUNT_BOOKS = frozenset({Book.ACCOUNT.value, Book.HOLD.value})

ALL_FACILITIES = "*"
T = TypeVar("T")
#: Seconds for which the payers read with a call's screening stand for a read of
#: them by the same task (with no write between): the service asks straight after.
PREFETCH_AGE = 0.005
#: Entries kept in each screening cache before it is emptied.
CACHE_ENTRIES = 100_000
#: Page cache per connection, in KiB.
CACHE_KIB = 65_536
#: How much of the database file is read through a memory map, in bytes.
MMAP_BYTES = 256 * 1024 * 1024
#: Log frames (pages) after which the writer makes the log start over (128 MiB).
RESTART_FRAMES = 32_768

#: Ledger entry inserts by number of legs (a transaction has a handful).
_ENTRY_INSERTS = {
    n: "INSERT INTO ledger_entries (tx_id, leg, book, ref, amount) VALUES "  # noqa: S608
    + ",".join(["(?,?,?,?,?)"] * n)
    for n in range(1, 33)
}


def _ts_opt(value: datetime | None) -> str | None:
    return None if value is None else ts(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _dt_req(value: str) -> datetime:
    return datetime.fromisoformat(value)



def _statements(script: str) -> list[str]:
    """The statements of a DDL script, to run one by one inside a transaction.

    (``executescript`` commits first.) Triggers hold ``;`` inside BEGIN ... END.
    """
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete statement in the schema: {current.strip()[:60]!r}")
    return out


def _where(conditions: Sequence[tuple[str, object]]) -> tuple[str, list[Any]]:
    """A WHERE clause of every condition whose value is not None, and its parameters.

    Each condition is a fixed SQL fragment with one ``?`` and its value; a None
    value means "no filter" (the listing methods' optional arguments).
    """
    used = [(clause, value) for clause, value in conditions if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(clause for clause, _ in used), [v for _, v in used]

@dataclass(frozen=True)
class _PayerKeys:
    """Who could pay for calls from one (facility, PIN) to one number: ids, not money."""

    #: At most three: the person's Debit account, the number's AdvanceConnect and
    #: Direct Bill accounts (one per product per number).
    account_ids: tuple[str, ...]
    numbers: dict[str, tuple[str, ...]]
    #: A subscription exists for the number at the facility (read afresh if so).
    subscribed: bool
    #: A Single Call to the number failed payment and is unpaid.
    barred: bool


#: Settle a reservation (only an open one matches), returning its row, or only
#: the fields that change while it is open (when the rest is known).
_SETTLE = (
    "UPDATE reservations SET status = 'settled', settled_at = ?, talked_seconds = ?,"
    " charged = ? WHERE id = ? AND status = 'open' RETURNING *"
)
_SETTLE_KNOWN = _SETTLE.replace("RETURNING *", "RETURNING heartbeat_seconds, heartbeat_at")


def _balance_update(call: bool, must_be_open: bool, floor: bool) -> str:
    """The UPDATE of ``BalanceChange``: ?1 balance, ?2 held, ?3 account, ?4 floor, ?5 at,
    ?6 facility; its WHERE is the check of what the plan expects of the account."""
    sql = "UPDATE accounts SET balance = balance + ?1, held = held + ?2"
    if call:
        sql += (
            ", last_call_at = ?5, last_call_facility = ?6, last_activity_at = ?5,"
            " inactive_flagged_at = NULL"
        )
    sql += " WHERE id = ?3"
    if must_be_open:
        sql += " AND status = 'open'"
    if floor:
        sql += " AND balance + ?1 >= ?4"
    return sql


_INSERT_RESERVATION = (
    "INSERT INTO reservations (id, call_id, product, facility_id, number, pin, created_at,"
    " max_seconds, amount, account_id, subscription_id, status, owner, jurisdiction,"
    " privileged, station) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

#: The table of each record with a lifecycle, and the column its last change's time is in.
_STATE_COLUMNS = {"refund": ("refunds", "decided_at"), "receivable": ("receivables", "settled_at")}

#: By (a talked call, must be open, has a floor).
_BALANCE_UPDATES = {
    (call, must_be_open, floor): _balance_update(call, must_be_open, floor)
    for call in (False, True)
    for must_be_open in (False, True)
    for floor in (False, True)
}


#: The accounts of ``_PayerKeys.account_ids`` by how many there are, with the
#: connection's data version (at least one row: the LEFT JOIN's, if none match).
#: One id, the usual case, is an equality: cheaper than an IN list.
_PAYER_ROWS = {
    n: "SELECT (SELECT data_version FROM pragma_data_version) AS data_version, a.*"  # noqa: S608
    " FROM (SELECT 1) LEFT JOIN accounts a ON "
    + ("a.id = ?" if n == 1 else "a.id IN (" + ", ".join(["?"] * n) + ")" if n else "0")
    for n in range(4)
}


class SqliteAccountStore(AccountStore):
    """``AccountStore`` on one SQLite file (or ``:memory:``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "NORMAL",
        checkpoint_interval: float = 0.25,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if checkpoint_interval <= 0:
            raise ValueError("checkpoint_interval must be positive")
        if restart_frames <= 0:
            raise ValueError("restart_frames must be positive")
        self.path = str(path)
        self.synchronous = synchronous
        self.checkpoint_interval = checkpoint_interval
        self.restart_frames = restart_frames
        self._db: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._writer: GroupWriter | None = None
        #: Set by the checkpointer when the log is long and should start over.
        self._catch_up = threading.Event()
        #: Screening facts and who could pay, by (facility, PIN, number): read on
        #: every call, changed rarely. Never money: balances, holds and
        #: subscription seconds are read afresh on every call. Valid while
        #: ``PRAGMA data_version`` stays ``_data_version`` (see ``_check_version``).
        self._screening_cache: dict[tuple[str, str, str], ScreeningFacts] = {}
        self._payer_cache: dict[tuple[str, str, str], _PayerKeys] = {}
        self._data_version: int | None = None
        #: Reservations this store made and has not settled (their fixed fields).
        self._held: dict[str, Reservation] = {}
        #: The payers' accounts read by the last screening, for the same task's
        #: ``payer_candidates`` straight after: key, task, writer commits, when, what.
        self._prefetched: (
            tuple[
                tuple[str, str, str],
                asyncio.Task[Any] | None,
                int,
                float,
                tuple[_PayerKeys, list[sqlite3.Row]],
            ]
            | None
        ) = None

    # -- plumbing ------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the account store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open account store {self.path}: {exc}") from exc
        try:
            self._upgrade(db)
        except (sqlite3.Error, StoreUnavailable) as exc:
            db.close()
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(f"cannot open account store {self.path}: {exc}") from exc
        self._db = db
        self._writer = GroupWriter(db, self._after_commit)
        if self.path != ":memory:":
            self._stop.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Create the schema, or bring an older file's up to ``SCHEMA_VERSION``.

        Inside one ``BEGIN IMMEDIATE``: two processes opening the same file at
        once do not both migrate it, and a failed migration leaves it as it was.
        """
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found == SCHEMA_VERSION:
            return
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"account store {self.path} has schema version {found}, newer than"
                f" {SCHEMA_VERSION} that this version of the software reads; upgrade it"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have just upgraded it.
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _statements(SCHEMA):
                    db.execute(statement)
                for table, columns in ADDED_COLUMNS.items():
                    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                    for name, declaration in columns:
                        if name not in have:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # The hot pages (accounts, the ends of the ledger, the index pages of busy
        # accounts) stay in memory, and reads of the database file go through a
        # memory map instead of one system call per page.
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        db.execute("PRAGMA temp_store=MEMORY")
        # Once the log starts over, a log file grown past twice the restart
        # length is cut back (the next pages reuse its blocks up to there).
        db.execute(f"PRAGMA journal_size_limit={self.restart_frames * 2 * 4096}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        if self.path != ":memory:":
            db.execute("PRAGMA wal_autocheckpoint=0")
        db.row_factory = sqlite3.Row
        return db

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(self.checkpoint_interval):
                if self._catch_up.is_set():
                    # A whole interval without a commit to take it: the writer is
                    # idle, so this pass copies the rest (and syncs it) itself.
                    self._catch_up.clear()
                try:
                    _busy, log, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if log > self.restart_frames:
                        # A second pass copies most of what came during the first,
                        # so that the writer is left only the last few frames.
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self._catch_up.set()
                except sqlite3.Error:
                    continue  # busy or transient: the next round catches up
        finally:
            conn.close()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join()
            self._checkpointer = None
        if self._writer is not None:
            self._writer.flush()  # writes queued by callers that are no longer waiting
            self._writer = None
        if self._db is not None:
            # If this fails the next open replays the log; nothing is lost.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    @property
    def writer(self) -> GroupWriter:
        if self._writer is None:
            raise StoreUnavailable("the account store is not open")
        return self._writer

    async def _write(
        self,
        body: Callable[[sqlite3.Connection], T],
        *,
        urgent: bool = False,
        screening: bool = True,
    ) -> T:
        """Run ``body(db)`` as one atomic write transaction, durable when this returns.

        ``screening``: the write may change what screening or the choice of payer
        reads (people, blocks, numbers, accounts, subscriptions, receivables), so
        the caches of those are emptied when it runs. Only writes that touch
        nothing but balances, the ledger, reservations, refunds, invoices and
        records pass False.
        """
        if screening:
            inner = body

            def body(db: sqlite3.Connection) -> T:
                # Emptied inside the transaction: no read can come between this
                # and the COMMIT (both run in one go on the loop's thread), and a
                # read made before it, of the old rows, is dropped here.
                self._forget()
                return inner(db)

        return await self.writer.write(body, urgent=urgent)

    def _forget(self) -> None:
        """Empty the screening and payer caches (a write changed what they hold)."""
        self._screening_cache.clear()
        self._payer_cache.clear()

    def _check_version(self, version: int) -> None:
        """Empty the caches if another connection committed since they were filled.

        ``PRAGMA data_version`` changes only when ANOTHER connection (the
        ``ics accounts`` command, a separate API process, another store object)
        commits; this connection's own writes empty the caches themselves.
        """
        if version != self._data_version:
            self._forget()
            self._data_version = version

    async def run_on_writer(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body(db)`` outside any transaction, in turn with the queued writes.

        For maintenance and tests (connection settings, checkpoints). The
        screening caches are emptied: such a body may change anything.
        """

        def raw(db: sqlite3.Connection) -> T:
            self._forget()
            return body(db)

        return await self.writer.call(raw)

    def _after_commit(self, db: sqlite3.Connection) -> None:
        if self._catch_up.is_set():
            self._restart_log(db)

    def _restart_log(self, db: sqlite3.Connection) -> None:
        """Copy what the checkpointer has not, so that the next commit starts the log over.

        The log starts over only when a writer finds it fully copied. Under
        steady load the background checkpoint never catches up with the
        writer, so the log would grow without bound and every commit would
        extend the file. When it has grown past ``restart_frames`` the writer
        itself copies the last frames, between two transactions: a short
        pause (the frames since the last background pass, and two syncs)
        about once per ``restart_frames`` pages written.
        """
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._catch_up.clear()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self.db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"account store error: {exc}") from exc
        return row

    def _row(self, sql: str, key: str, what: str) -> sqlite3.Row:
        """The row ``sql`` finds for ``key``; ``NotFound`` ("no {what} {key!r}") if none."""
        row = self._one(sql, (key,))
        if row is None:
            raise NotFound(f"no {what} {key!r}")
        return row

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"account store error: {exc}") from exc

    def _filtered(
        self, sql: str, conditions: Sequence[tuple[str, object]], order: str
    ) -> list[sqlite3.Row]:
        """``sql`` filtered by ``conditions`` (see ``_where``), then ``ORDER BY order``."""
        where, params = _where(conditions)
        return self._all(f"{sql}{where} ORDER BY {order}", params)

    async def is_empty(self) -> bool:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM people) AS n"
        )
        return row is None or row["n"] == 0

    # -- accounts ------------------------------------------------------------
    #: An account row with its numbers, in one statement.
    _ACCOUNT_SELECT = (
        "SELECT a.*, (SELECT group_concat(number, ',') FROM"
        " (SELECT number FROM account_numbers n WHERE n.account_id = a.id ORDER BY number))"
        " AS numbers FROM accounts a"
    )

    def _account(self, account_id: str) -> Account:
        row = self._one(self._ACCOUNT_SELECT + " WHERE a.id = ?", (account_id,))
        if row is None:
            raise UnknownAccount(f"no account {account_id!r}")
        return self._account_from(row)

    @staticmethod
    def _account_from(row: sqlite3.Row, numbers: tuple[str, ...] | None = None) -> Account:
        """An account from its row; its numbers from the row's ``numbers`` column if not given."""
        if numbers is None:
            listed = row["numbers"]
            numbers = tuple(listed.split(",")) if listed else ()
        return Account(
            id=row["id"],
            product=Product(row["product"]),
            status=AccountStatus(row["status"]),
            numbers=numbers,
            facility_id=row["facility_id"],
            pin=row["pin"],
            credit_limit_units=row["credit_limit"],
            holder_name=row["holder_name"],
            created_at=_dt_req(row["created_at"]),
            last_activity_at=_dt(row["last_activity_at"]),
            last_call_at=_dt(row["last_call_at"]),
            last_call_facility=row["last_call_facility"],
            closure_due_at=_dt(row["closure_due_at"]),
            inactive_flagged_at=_dt(row["inactive_flagged_at"]),
            balance_units=row["balance"],
            held_units=row["held"],
        )

    async def create_account(self, account: Account) -> Account:
        def body(db: sqlite3.Connection) -> Any:
            try:
                db.execute(
                    "INSERT INTO accounts (id, product, status, facility_id, pin, credit_limit,"
                    " holder_name, created_at, last_activity_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        account.id,
                        str(account.product),
                        str(account.status),
                        account.facility_id,
                        account.pin,
                        account.credit_limit_units,
                        account.holder_name,
                        ts(account.created_at),
                        ts(account.created_at),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "accounts.id" in str(exc):
                    raise DuplicateRequest(f"account {account.id!r} already exists") from exc
                raise InvalidState(
                    f"person {account.facility_id}/{account.pin} already has a Debit account"
                ) from exc
            for number in account.numbers:
                self._attach(db, account.id, str(account.product), number)
        await self._write(body)
        return self._account(account.id)

    def _attach(self, db: sqlite3.Connection, account_id: str, product: str, number: str) -> None:
        try:
            db.execute(
                "INSERT INTO account_numbers (number, product, account_id) VALUES (?,?,?)",
                (number, product, account_id),
            )
        except sqlite3.IntegrityError as exc:
            raise InvalidState(f"{number} already has a {product} account") from exc

    async def get_account(self, account_id: str) -> Account:
        return self._account(account_id)

    async def list_accounts(
        self,
        *,
        product: str | None = None,
        status: AccountStatus | None = None,
        number_e164: str | None = None,
    ) -> list[Account]:
        sql = "SELECT a.id FROM accounts a"
        if number_e164 is not None:
            sql += " JOIN account_numbers n ON n.account_id = a.id"
        rows = self._filtered(sql, (
            ("n.number = ?", number_e164),
            ("a.product = ?", None if product is None else str(product)),
            ("a.status = ?", None if status is None else str(status)),
        ), "a.id")
        return [self._account(r["id"]) for r in rows]

    async def update_account(self, account_id: str, **changes: object) -> Account:
        unknown = set(changes) - MUTABLE_ACCOUNT_FIELDS
        if unknown:
            raise InvalidRequest(f"account fields cannot be changed: {sorted(unknown)}")
        columns = {"credit_limit_units": "credit_limit"}
        sets: list[str] = []
        params: list[Any] = []
        for name, value in changes.items():
            sets.append(f"{columns.get(name, name)} = ?")
            if isinstance(value, datetime):
                params.append(ts(value))
            elif value is None or isinstance(value, int):
                params.append(value)
            else:
                params.append(str(value))
        if not sets:
            return self._account(account_id)

        def body(db: sqlite3.Connection) -> Any:
            cur = db.execute(
                f"UPDATE accounts SET {', '.join(sets)} WHERE id = ?",  # noqa: S608 - names whitelisted
                (*params, account_id),
            )
            if cur.rowcount == 0:
                raise UnknownAccount(f"no account {account_id!r}")
        await self._write(body)
        return self._account(account_id)

    async def attach_number(self, account_id: str, number_e164: str) -> Account:
        account = self._account(account_id)

        def body(db: sqlite3.Connection) -> Any:
            self._attach(db, account_id, str(account.product), number_e164)
        await self._write(body)
        return self._account(account_id)

    async def detach_number(self, account_id: str, number_e164: str) -> Account:
        def body(db: sqlite3.Connection) -> Any:
            cur = db.execute(
                "DELETE FROM account_numbers WHERE account_id = ? AND number = ?",
                (account_id, number_e164),
            )
            if cur.rowcount == 0:
                raise NotFound(f"{number_e164} is not attached to {account_id!r}")
        await self._write(body)
        return self._account(account_id)

    # -- ledger ----------------------------------------------------------------
    def _append(self, db: sqlite3.Connection, tx: LedgerTransaction, at: str | None = None) -> int:
        """Insert a transaction and its entries (cached balances are the caller's job).

        ``at`` is ``ts(tx.at)`` when the caller has it already.
        """
        try:
            cur = db.execute(
                "INSERT INTO ledger_transactions (kind, at, account_id, idempotency_key, call_id,"
                " seconds, memo) VALUES (?,?,?,?,?,?,?)",
                (
                    tx.kind,
                    ts(tx.at) if at is None else at,
                    tx.account_id,
                    tx.idempotency_key,
                    tx.call_id,
                    tx.seconds,
                    tx.memo,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateRequest(
                f"idempotency key {tx.idempotency_key!r} was already used"
            ) from exc
        tx_id = cur.lastrowid
        assert tx_id is not None
        # One multi-row INSERT is cheaper than executemany for the few legs of a transaction.
        params: list[object] = []
        for n, leg in enumerate(tx.legs):
            params += (tx_id, n, leg.book.value, leg.ref, leg.amount_units)
        db.execute(_ENTRY_INSERTS[len(tx.legs)], params)
        return tx_id

    def _post(
        self,
        db: sqlite3.Connection,
        tx: LedgerTransaction,
        floors: dict[str, int] | None = None,
        *,
        activity: bool = False,
    ) -> LedgerTransaction:
        at = ts(tx.at)
        tx_id = self._append(db, tx, at)
        for leg in tx.legs:
            if leg.book is Book.ACCOUNT:
                if activity:
                    cur = db.execute(
                        "UPDATE accounts SET balance = balance + ?, last_activity_at = ?,"
                        " inactive_flagged_at = NULL WHERE id = ?",
                        (leg.amount_units, at, leg.ref),
                    )
                else:
                    cur = db.execute(
                        "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                        (leg.amount_units, leg.ref),
                    )
            elif leg.book is Book.HOLD:
                cur = db.execute(
                    "UPDATE accounts SET held = held + ? WHERE id = ?",
                    (leg.amount_units, leg.ref),
                )
            else:
                continue
            if cur.rowcount == 0:
                raise UnknownAccount(f"no account {leg.ref!r}")
        for account_id, floor in (floors or {}).items():
            row = db.execute("SELECT balance FROM accounts WHERE id = ?", (account_id,)).fetchone()
            if row is None:
                raise UnknownAccount(f"no account {account_id!r}")
            if row["balance"] < floor:
                raise InsufficientFunds(
                    f"account {account_id!r} would fall below its floor of {floor} units"
                )
        return replace(tx, id=tx_id)

    async def post(
        self, tx: LedgerTransaction, *, floors: dict[str, int] | None = None
    ) -> LedgerTransaction:
        """Post ``tx``; its account and hold legs must be on its own ``account_id``.

        (Every transaction the service posts is so; it is what lets an account's
        legs be found through its transactions, with no index of every leg.)
        """
        check_account_legs(tx)

        def body(db: sqlite3.Connection) -> Any:
            return self._post(db, tx, floors, activity=tx.kind in ("deposit", "payment"))
        result: LedgerTransaction = await self._write(body, screening=False)
        return result

    async def transactions(
        self,
        *,
        account_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str | None = None,
    ) -> list[LedgerTransaction]:
        where, params = _where((
            ("account_id = ?", account_id),
            ("at >= ?", None if since is None else ts(since)),
            ("at < ?", None if until is None else ts(until)),
            ("kind = ?", kind),
        ))
        sql = "SELECT * FROM ledger_transactions" + where  # noqa: S608 - fixed clauses, bound values
        # One pass over the transactions joined with their legs, in posting order.
        joined = (
            "SELECT t.*, e.book, e.ref, e.amount FROM (" + sql + ") t"  # noqa: S608 - bound values
            " JOIN ledger_entries e ON e.tx_id = t.id ORDER BY t.id, e.leg"
        )
        out: list[LedgerTransaction] = []
        current: sqlite3.Row | None = None
        legs: list[Leg] = []

        def flush() -> None:
            if current is not None:
                out.append(
                    LedgerTransaction(
                        kind=current["kind"],
                        at=_dt_req(current["at"]),
                        legs=tuple(legs),
                        account_id=current["account_id"],
                        idempotency_key=current["idempotency_key"],
                        call_id=current["call_id"],
                        seconds=current["seconds"],
                        memo=current["memo"],
                        id=current["id"],
                    )
                )

        for row in self._all(joined, params):
            if current is None or row["id"] != current["id"]:
                flush()
                current = row
                legs = []
            legs.append(Leg(Book(row["book"]), row["ref"], row["amount"]))
        flush()
        return out

    async def book_balance(self, book: str, ref: str) -> int:
        if str(book) in _ACCOUNT_BOOKS:
            # Through the account's transactions: its legs are all in them (see ``_post``).
            row = self._one(
                "SELECT COALESCE(SUM(e.amount), 0) AS s FROM ledger_transactions t"
                " JOIN ledger_entries e ON e.tx_id = t.id"
                " WHERE t.account_id = ?2 AND e.book = ?1 AND e.ref = ?2",
                (str(book), ref),
            )
        else:
            row = self._one(
                "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entries"
                " WHERE book = ? AND ref = ?",
                (str(book), ref),
            )
        assert row is not None
        return int(row["s"])

    async def book_totals(self) -> dict[tuple[str, str], int]:
        return {
            (r["book"], r["ref"]): int(r["s"])
            for r in self._all(
                "SELECT book, ref, SUM(amount) AS s FROM ledger_entries GROUP BY book, ref"
            )
        }

    # -- reservations ------------------------------------------------------------
    def _reservation(self, reservation_id: str) -> Reservation:
        row = self._one("SELECT * FROM reservations WHERE id = ?", (reservation_id,))
        if row is None:
            raise NotFound(f"no reservation {reservation_id!r}")
        return self._reservation_from(row)

    @staticmethod
    def _reservation_from(row: sqlite3.Row) -> Reservation:
        return Reservation(
            id=row["id"],
            call_id=row["call_id"],
            product=Product(row["product"]),
            facility_id=row["facility_id"],
            number_e164=row["number"],
            pin=row["pin"],
            created_at=_dt_req(row["created_at"]),
            max_seconds=row["max_seconds"],
            amount_units=row["amount"],
            account_id=row["account_id"],
            subscription_id=row["subscription_id"],
            status=ReservationStatus(row["status"]),
            heartbeat_seconds=row["heartbeat_seconds"],
            heartbeat_at=_dt(row["heartbeat_at"]),
            settled_at=_dt(row["settled_at"]),
            talked_seconds=row["talked_seconds"],
            charged_units=row["charged"],
            owner=row["owner"],
            jurisdiction=row["jurisdiction"],
            privileged=bool(row["privileged"]),
            station=row["station"],
        )

    async def reserve(self, reservation: Reservation, *, floor_units: int) -> Reservation:
        plan = plan_reserve(reservation, floor_units=floor_units)
        r = reservation
        created = ts(r.created_at)

        def body(db: sqlite3.Connection) -> Any:
            # Nothing to read: the plan's expectations are the guards of its statements.
            self._apply(db, plan, created)
        # A call is waiting to be placed on this hold: it is not kept for a group.
        await self._write(body, urgent=True, screening=False)
        if len(self._held) >= CACHE_ENTRIES:
            self._held.clear()
        # As a read of its row would give it (times in UTC), for ``settle``.
        self._held[r.id] = (
            r if r.created_at.tzinfo is UTC else replace(r, created_at=_dt_req(created))
        )
        return r

    async def heartbeat(self, reservation_id: str, seconds: int, at: datetime) -> Reservation:
        if seconds < 0:
            raise InvalidRequest("heartbeat seconds must not be negative")

        def body(db: sqlite3.Connection) -> Any:
            row = db.execute(
                "UPDATE reservations SET"
                " heartbeat_seconds = MAX(heartbeat_seconds, MIN(?, max_seconds)),"
                " heartbeat_at = ? WHERE id = ? AND status = 'open' RETURNING *",
                (seconds, ts(at), reservation_id),
            ).fetchone()
            if row is None:
                known = db.execute("SELECT 1 FROM reservations WHERE id = ?", (reservation_id,))
                if known.fetchone():
                    raise InvalidState(f"reservation {reservation_id!r} is already settled")
                raise NotFound(f"no reservation {reservation_id!r}")
            return self._reservation_from(row)
        result: Reservation = await self._write(body, screening=False)
        return result

    async def settle(
        self,
        reservation_id: str,
        *,
        talked_seconds: int,
        charge_legs: Sequence[Leg],
        at: datetime,
        receivable_id: str | None = None,
    ) -> Reservation:
        charge = CallCharge.checked(talked_seconds, charge_legs)
        when = ts(at)
        if at.tzinfo is not UTC:
            at = _dt_req(when)  # as a read of the row would give it
        held = self._held.get(reservation_id)

        def body(db: sqlite3.Connection) -> Any:
            r = self._claim(db, reservation_id, held, when, charge)
            plan = plan_settle(r, charge, at=at, receivable_id=receivable_id)
            self._apply(db, plan, when, claimed=True)
            assert plan.reservation is not None
            return plan.reservation.record
        try:
            settled: Reservation = await self._write(body, screening=False)
        finally:
            if held is not None:
                # Settled, or found settled or gone: it will not be settled here again.
                self._held.pop(reservation_id, None)
        return settled

    def _claim(
        self,
        db: sqlite3.Connection,
        reservation_id: str,
        held: Reservation | None,
        when: str,
        charge: CallCharge,
    ) -> Reservation:
        """Close a reservation and read it as it was while open, in one statement.

        This is the read of ``settle`` and the atomic check of what its plan
        expects (the reservation still open): only an open one matches. The
        plan is made from what it returns; if planning or applying fails, the
        transaction, and with it the claim, is rolled back. A reservation this
        store made needs only what may have changed since (RETURNING costs by
        the column: all of them costs twice the update).
        """
        row = db.execute(
            _SETTLE_KNOWN if held is not None else _SETTLE,
            (when, charge.talked_seconds, charge.units, reservation_id),
        ).fetchone()
        if row is None:
            known = db.execute("SELECT 1 FROM reservations WHERE id = ?", (reservation_id,))
            if known.fetchone():
                raise InvalidState(f"reservation {reservation_id!r} is already settled")
            raise NotFound(f"no reservation {reservation_id!r}")
        if held is None:
            return replace(
                self._reservation_from(row),
                status=ReservationStatus.OPEN,
                settled_at=None,
                talked_seconds=None,
                charged_units=None,
            )
        if row[0] == held.heartbeat_seconds and row[1] is None and held.heartbeat_at is None:
            return held
        return replace(held, heartbeat_seconds=row[0], heartbeat_at=_dt(row[1]))

    # -- applying plans ------------------------------------------------------------
    def _apply(self, db: sqlite3.Connection, plan: Plan, at: str, *, claimed: bool = False) -> None:
        """Apply ``plan`` in the current write transaction; ``at`` is ``ts(plan.at)``.

        Each expectation of the plan is checked by the statement that makes the
        change (``UPDATE ... WHERE`` the state is still as read, an INSERT that a
        duplicate key refuses): a failed one raises, and the transaction rolls
        back whole. ``claimed``: the reservation the plan closes was closed
        already, by the claim that read it (``_claim``). The order keeps the
        first error a request meets what it always was: a new refund or
        subscription first, then balance and seconds, the reservation and the
        new receivable, the ledger, and last the refund's or receivable's
        change of state.
        """
        if plan.refund is not None and plan.refund.expected is None:
            self._insert_refund(db, plan.refund.record)
        if plan.new_subscription is not None:
            self._insert_subscription(db, plan.new_subscription)
        if plan.balance is not None:
            self._apply_balance(db, plan.balance, at)
        if plan.seconds is not None:
            self._apply_seconds(db, plan.seconds)
        if plan.reservation is not None:
            if plan.reservation.expected is None:
                self._insert_reservation(db, plan.reservation.record, at)
            elif not claimed:
                self._close_reservation(db, plan.reservation)
        if plan.receivable is not None and plan.receivable.expected is None:
            self._insert_receivable(db, plan.receivable.record)
        if plan.transaction is not None:
            self._append(db, plan.transaction, at)
        if plan.refund is not None and plan.refund.expected is not None:
            rf = plan.refund.record
            self._move_state(db, "refund", rf.id, str(plan.refund.expected), str(rf.status), at)
        if plan.receivable is not None and plan.receivable.expected is not None:
            rc = plan.receivable.record
            expected = str(plan.receivable.expected)
            self._move_state(db, "receivable", rc.id, expected, str(rc.status), at)

    @staticmethod
    def _close_reservation(db: sqlite3.Connection, change: ReservationChange) -> None:
        """Settle a reservation found as the plan expects it (``_claim`` does this in
        ``settle``, where the same statement is its read)."""
        r = change.record
        cur = db.execute(
            "UPDATE reservations SET status = ?, settled_at = ?, talked_seconds = ?, charged = ?"
            " WHERE id = ? AND status = ? AND amount = ?",
            (
                str(r.status),
                _ts_opt(r.settled_at),
                r.talked_seconds,
                r.charged_units,
                r.id,
                str(change.expected),
                change.expected_held_units,
            ),
        )
        if cur.rowcount == 0:
            raise InvalidState(
                f"reservation {r.id!r} is no longer {change.expected}"
                f" with {change.expected_held_units} units held"
            )

    @staticmethod
    def _move_state(
        db: sqlite3.Connection,
        kind: Literal["refund", "receivable"],
        record_id: str,
        expected: str,
        status: str,
        at: str,
    ) -> None:
        """Move a refund or receivable on to ``status`` if it is still ``expected``."""
        table, stamp = _STATE_COLUMNS[kind]
        cur = db.execute(
            f"UPDATE {table} SET status = ?, {stamp} = ? WHERE id = ? AND status = ?",  # noqa: S608
            (status, at, record_id, expected),
        )
        if cur.rowcount == 0:
            raise InvalidState(f"{kind} {record_id!r} is no longer {expected}")

    def _apply_balance(self, db: sqlite3.Connection, change: BalanceChange, at: str) -> None:
        """One UPDATE of the account that is also the check of its floor and status."""
        c = change
        call = c.call_facility is not None
        floor = c.floor_units is not None
        # As many parameters as the statement numbers (see ``_balance_update``).
        params: tuple[object, ...] = (c.balance_units, c.held_units, c.account_id)
        if call:
            params += (c.floor_units, at, c.call_facility)
        elif floor:
            params += (c.floor_units,)
        if db.execute(_BALANCE_UPDATES[(call, c.must_be_open, floor)], params).rowcount:
            return
        row = db.execute("SELECT status FROM accounts WHERE id = ?", (c.account_id,)).fetchone()
        if row is None:
            raise UnknownAccount(f"no account {c.account_id!r}")
        if c.must_be_open and row["status"] != AccountStatus.OPEN:
            raise InvalidState(f"account {c.account_id!r} is {row['status']}")
        if c.held_units > 0:
            raise InsufficientFunds(f"account {c.account_id!r} cannot hold {c.held_units} units")
        raise InsufficientFunds(
            f"account {c.account_id!r} would fall below its floor of {c.floor_units} units"
        )

    @staticmethod
    def _apply_seconds(db: sqlite3.Connection, change: SecondsChange) -> None:
        c = change
        if c.needs_seconds:
            cur = db.execute(
                "UPDATE subscriptions SET held_seconds = held_seconds + ?1,"
                " used_seconds = used_seconds + ?2 WHERE id = ?3"
                " AND covered_seconds - used_seconds - held_seconds >= ?4",
                (c.held_seconds, c.used_seconds, c.subscription_id, c.needs_seconds),
            )
            if cur.rowcount == 0:
                raise InsufficientFunds(
                    f"subscription {c.subscription_id!r} cannot cover {c.needs_seconds} s"
                )
            return
        cur = db.execute(
            "UPDATE subscriptions SET held_seconds = held_seconds + ?,"
            " used_seconds = used_seconds + ? WHERE id = ?",
            (c.held_seconds, c.used_seconds, c.subscription_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no subscription {c.subscription_id!r}")

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        table: str,
        row: dict[str, object],
        duplicate: str,
        unknown: str | None = None,
    ) -> None:
        """Insert a new record; ``duplicate`` (or ``unknown``, a missing parent) if refused."""
        sql = (
            f"INSERT INTO {table} ({', '.join(row)})"  # noqa: S608 - fixed names, bound values
            f" VALUES ({','.join('?' * len(row))})"
        )
        try:
            db.execute(sql, tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            if unknown is not None and "FOREIGN KEY" in str(exc):
                raise UnknownAccount(unknown) from exc
            raise DuplicateRequest(duplicate) from exc

    def _insert_reservation(self, db: sqlite3.Connection, r: Reservation, created: str) -> None:
        # Spelled out rather than through ``_insert``: this runs for every call.
        try:
            db.execute(
                _INSERT_RESERVATION,
                (
                    r.id,
                    r.call_id,
                    str(r.product),
                    r.facility_id,
                    r.number_e164,
                    r.pin,
                    created,
                    r.max_seconds,
                    r.amount_units,
                    r.account_id,
                    r.subscription_id,
                    str(r.status),
                    r.owner,
                    r.jurisdiction,
                    int(r.privileged),
                    r.station,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateRequest(
                f"reservation {r.id!r} or call {r.call_id!r} already exists"
            ) from exc

    def _insert_receivable(self, db: sqlite3.Connection, rec: Receivable) -> None:
        self._insert(db, "receivables", receivable_fields(rec), f"receivable {rec.id!r} exists")

    def _insert_refund(self, db: sqlite3.Connection, refund: Refund) -> None:
        self._insert(
            db,
            "refunds",
            refund_fields(refund),
            f"refund {refund.id!r} already exists",
            unknown=f"no account {refund.account_id!r}",
        )

    def _insert_subscription(self, db: sqlite3.Connection, s: Subscription) -> None:
        self._insert(
            db, "subscriptions", new_subscription_fields(s),
            f"subscription {s.id!r} already exists",
        )  # fmt: skip

    async def get_reservation(self, reservation_id: str) -> Reservation:
        return self._reservation(reservation_id)

    async def open_reservations(self) -> list[Reservation]:
        return [
            self._reservation_from(row)
            for row in self._all("SELECT * FROM reservations WHERE status = 'open' ORDER BY id")
        ]

    # -- refunds -----------------------------------------------------------------
    def _refund(self, refund_id: str) -> Refund:
        row = self._row("SELECT * FROM refunds WHERE id = ?", refund_id, "refund")
        return refund_from(row)

    async def create_refund(self, refund: Refund, *, at: datetime) -> Refund:
        plan = plan_refund_create(refund, at=at)
        when = ts(at)

        def body(db: sqlite3.Connection) -> Any:
            self._apply(db, plan, when)
        await self._write(body, screening=False)
        return self._refund(refund.id)

    async def decide_refund(self, refund_id: str, status: RefundStatus, *, at: datetime) -> Refund:
        def body(db: sqlite3.Connection) -> Any:
            row = db.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
            if row is None:
                raise NotFound(f"no refund {refund_id!r}")
            self._apply(db, plan_refund_decision(refund_from(row), status, at=at), ts(at))
        await self._write(body, screening=False)
        return self._refund(refund_id)

    async def get_refund(self, refund_id: str) -> Refund:
        return self._refund(refund_id)

    async def list_refunds(
        self, *, status: RefundStatus | None = None, account_id: str | None = None
    ) -> list[Refund]:
        rows = self._filtered("SELECT * FROM refunds", (
            ("status = ?", None if status is None else str(status)),
            ("account_id = ?", account_id),
        ), "requested_at, id")
        return [refund_from(r) for r in rows]

    # -- invoices ------------------------------------------------------------------
    @staticmethod
    def _invoice_from(row: sqlite3.Row) -> Invoice:
        return Invoice(
            id=row["id"],
            account_id=row["account_id"],
            period_start=_dt_req(row["period_start"]),
            period_end=_dt_req(row["period_end"]),
            issued_at=_dt_req(row["issued_at"]),
            due_at=_dt_req(row["due_at"]),
            amount_units=row["amount"],
        )

    async def add_invoice(self, invoice: Invoice) -> Invoice:
        def body(db: sqlite3.Connection) -> Any:
            self._insert(
                db,
                "invoices",
                {
                    "id": invoice.id,
                    "account_id": invoice.account_id,
                    "period_start": ts(invoice.period_start),
                    "period_end": ts(invoice.period_end),
                    "issued_at": ts(invoice.issued_at),
                    "due_at": ts(invoice.due_at),
                    "amount": invoice.amount_units,
                },
                f"invoice {invoice.id!r} already exists",
                unknown=f"no account {invoice.account_id!r}",
            )
        await self._write(body, screening=False)
        return invoice

    async def list_invoices(self, account_id: str) -> list[Invoice]:
        return self._invoices(account_id)

    def _invoices(self, account_id: str) -> list[Invoice]:
        return [
            self._invoice_from(r)
            for r in self._all(
                "SELECT * FROM invoices WHERE account_id = ? ORDER BY issued_at, id", (account_id,)
            )
        ]

    # -- receivables ---------------------------------------------------------------
    async def get_receivable(self, receivable_id: str) -> Receivable:
        row = self._row("SELECT * FROM receivables WHERE id = ?", receivable_id, "receivable")
        return receivable_from(row)

    async def list_receivables(
        self, *, number_e164: str | None = None, status: ReceivableStatus | None = None
    ) -> list[Receivable]:
        rows = self._filtered("SELECT * FROM receivables", (
            ("number = ?", number_e164),
            ("status = ?", None if status is None else str(status)),
        ), "created_at")
        return [receivable_from(r) for r in rows]

    async def settle_receivable(
        self, receivable_id: str, status: ReceivableStatus, *, method: str, at: datetime
    ) -> Receivable:
        def body(db: sqlite3.Connection) -> Any:
            row = db.execute(
                "SELECT * FROM receivables WHERE id = ?", (receivable_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no receivable {receivable_id!r}")
            plan = plan_receivable_settlement(
                receivable_from(row), status, method=method, at=at
            )
            self._apply(db, plan, ts(at))
        await self._write(body)
        return await self.get_receivable(receivable_id)

    # -- subscriptions -------------------------------------------------------------
    async def add_subscription(
        self, subscription: Subscription, *, method: str, idempotency_key: str, at: datetime
    ) -> Subscription:
        plan = plan_subscription_purchase(
            subscription, method=method, idempotency_key=idempotency_key, at=at
        )
        when = ts(at)

        def body(db: sqlite3.Connection) -> Any:
            self._apply(db, plan, when)
        await self._write(body)
        return await self.get_subscription(subscription.id)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        row = self._row("SELECT * FROM subscriptions WHERE id = ?", subscription_id, "subscription")
        return subscription_from(row)

    async def list_subscriptions(
        self, *, number_e164: str | None = None, facility_id: str | None = None
    ) -> list[Subscription]:
        rows = self._filtered("SELECT * FROM subscriptions", (
            ("number = ?", number_e164),
            ("facility_id = ?", facility_id),
        ), "starts_at")
        return [subscription_from(r) for r in rows]

    # -- people and screening --------------------------------------------------------
    def _person(self, facility_id: str, pin: str) -> Person | None:
        row = self._one(
            "SELECT * FROM people WHERE facility_id = ? AND pin = ?", (facility_id, pin)
        )
        if row is None:
            return None
        allowed = frozenset(
            r["number"]
            for r in self._all(
                "SELECT number FROM allowed_numbers WHERE facility_id = ? AND pin = ?",
                (facility_id, pin),
            )
        )
        restrictions = self._restrictions_from(row["restrictions"])
        return Person(
            facility_id=row["facility_id"],
            pin=row["pin"],
            name=row["name"],
            language=row["language"],
            allowed_numbers=allowed,
            restrictions=restrictions,
            released_at=_dt(row["released_at"]),
        )

    def _person_req(self, facility_id: str, pin: str) -> Person:
        person = self._person(facility_id, pin)
        if person is None:
            raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        return person

    @staticmethod
    def _restrictions_from(text: str) -> tuple[Restriction, ...]:
        if text == "[]":
            return ()  # almost everyone: skip the JSON parser on the call path
        return tuple(
            Restriction(kind=r["kind"], until=_dt(r.get("until")), note=r.get("note", ""))
            for r in json.loads(text)
        )

    @staticmethod
    def _restrictions_json(restrictions: Sequence[Restriction]) -> str:
        return json.dumps(
            [{"kind": r.kind, "until": _ts_opt(r.until), "note": r.note} for r in restrictions]
        )

    async def add_person(self, person: Person) -> Person:
        def body(db: sqlite3.Connection) -> Any:
            self._insert(
                db,
                "people",
                {
                    "facility_id": person.facility_id,
                    "pin": person.pin,
                    "name": person.name,
                    "language": person.language,
                    "restrictions": self._restrictions_json(person.restrictions),
                    "released_at": _ts_opt(person.released_at),
                },
                f"PIN {person.pin!r} already exists at {person.facility_id!r}",
            )
            db.executemany(
                "INSERT INTO allowed_numbers (facility_id, pin, number) VALUES (?,?,?)",
                [(person.facility_id, person.pin, n) for n in sorted(person.allowed_numbers)],
            )
        await self._write(body)
        return self._person_req(person.facility_id, person.pin)

    async def get_person(self, facility_id: str, pin: str) -> Person:
        return self._person_req(facility_id, pin)

    async def list_people(self, facility_id: str | None = None) -> list[Person]:
        if facility_id is None:
            rows = self._all("SELECT facility_id, pin FROM people ORDER BY facility_id, pin")
        else:
            rows = self._all(
                "SELECT facility_id, pin FROM people WHERE facility_id = ? ORDER BY pin",
                (facility_id,),
            )
        return [self._person_req(r["facility_id"], r["pin"]) for r in rows]

    async def set_allowed_number(
        self, facility_id: str, pin: str, number_e164: str, allowed: bool
    ) -> Person:
        self._person_req(facility_id, pin)

        def body(db: sqlite3.Connection) -> Any:
            if allowed:
                db.execute(
                    "INSERT OR IGNORE INTO allowed_numbers (facility_id, pin, number)"
                    " VALUES (?,?,?)",
                    (facility_id, pin, number_e164),
                )
            else:
                db.execute(
                    "DELETE FROM allowed_numbers WHERE facility_id = ? AND pin = ? AND number = ?",
                    (facility_id, pin, number_e164),
                )
        await self._write(body)
        return self._person_req(facility_id, pin)

    async def set_restrictions(
        self, facility_id: str, pin: str, restrictions: Sequence[Restriction]
    ) -> Person:
        def body(db: sqlite3.Connection) -> Any:
            cur = db.execute(
                "UPDATE people SET restrictions = ? WHERE facility_id = ? AND pin = ?",
                (self._restrictions_json(restrictions), facility_id, pin),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        await self._write(body)
        return self._person_req(facility_id, pin)

    def _restrictions_in(
        self, db: sqlite3.Connection, facility_id: str, pin: str
    ) -> tuple[Restriction, ...]:
        row = db.execute(
            "SELECT restrictions FROM people WHERE facility_id = ? AND pin = ?", (facility_id, pin)
        ).fetchone()
        if row is None:
            raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        return self._restrictions_from(row[0])

    def _write_restrictions(
        self, db: sqlite3.Connection, facility_id: str, pin: str, kept: Sequence[Restriction]
    ) -> None:
        db.execute(
            "UPDATE people SET restrictions = ? WHERE facility_id = ? AND pin = ?",
            (self._restrictions_json(kept), facility_id, pin),
        )

    async def add_restriction(self, facility_id: str, pin: str, restriction: Restriction) -> bool:
        new_id = id_of(restriction)
        # Read and write inside one BEGIN IMMEDIATE: no other writer can slip in between.

        def body(db: sqlite3.Connection) -> Any:
            current = self._restrictions_in(db, facility_id, pin)
            if any(id_of(r) == new_id for r in current):
                return False
            self._write_restrictions(db, facility_id, pin, [*current, restriction])
            return True
        added: bool = await self._write(body)
        return added

    async def remove_restriction(self, facility_id: str, pin: str, restriction_id: str) -> bool:
        def body(db: sqlite3.Connection) -> Any:
            current = self._restrictions_in(db, facility_id, pin)
            kept = [r for r in current if id_of(r) != restriction_id]
            if len(kept) == len(current):
                return False
            self._write_restrictions(db, facility_id, pin, kept)
            return True
        removed: bool = await self._write(body)
        return removed

    async def set_person_language(self, facility_id: str, pin: str, language: str) -> Person:
        def body(db: sqlite3.Connection) -> Any:
            cur = db.execute(
                "UPDATE people SET language = ? WHERE facility_id = ? AND pin = ?",
                (language, facility_id, pin),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        await self._write(body)
        return self._person_req(facility_id, pin)

    async def mark_released(self, facility_id: str, pin: str, at: datetime) -> Person:
        def body(db: sqlite3.Connection) -> Any:
            cur = db.execute(
                "UPDATE people SET released_at = ? WHERE facility_id = ? AND pin = ?",
                (ts(at), facility_id, pin),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no person with PIN {pin!r} at {facility_id!r}")
        await self._write(body)
        return self._person_req(facility_id, pin)

    async def set_facility_block(
        self, facility_id: str, pattern: str, *, prefix: bool, blocked: bool
    ) -> None:
        def body(db: sqlite3.Connection) -> Any:
            if blocked:
                db.execute(
                    "INSERT OR IGNORE INTO facility_blocks (facility_id, pattern, prefix)"
                    " VALUES (?,?,?)",
                    (facility_id, pattern, int(prefix)),
                )
            else:
                db.execute(
                    "DELETE FROM facility_blocks WHERE facility_id = ? AND pattern = ?"
                    " AND prefix = ?",
                    (facility_id, pattern, int(prefix)),
                )
        await self._write(body)

    async def list_facility_blocks(self, facility_id: str) -> list[tuple[str, bool]]:
        return [
            (r["pattern"], bool(r["prefix"]))
            for r in self._all(
                "SELECT pattern, prefix FROM facility_blocks WHERE facility_id = ?"
                " ORDER BY pattern",
                (facility_id,),
            )
        ]

    async def set_self_block(
        self, number_e164: str, facility_id: str | None, blocked: bool
    ) -> None:
        scope = ALL_FACILITIES if facility_id is None else facility_id

        def body(db: sqlite3.Connection) -> Any:
            if blocked:
                db.execute(
                    "INSERT OR IGNORE INTO self_blocks (number, facility_id) VALUES (?,?)",
                    (number_e164, scope),
                )
            else:
                db.execute(
                    "DELETE FROM self_blocks WHERE number = ? AND facility_id = ?",
                    (number_e164, scope),
                )
        await self._write(body)

    async def list_self_blocks(self, number_e164: str) -> list[str | None]:
        return [
            None if r["facility_id"] == ALL_FACILITIES else r["facility_id"]
            for r in self._all(
                "SELECT facility_id FROM self_blocks WHERE number = ? ORDER BY facility_id",
                (number_e164,),
            )
        ]

    async def set_privileged(self, number_e164: str, privileged: bool, note: str = "") -> None:
        def body(db: sqlite3.Connection) -> Any:
            if privileged:
                db.execute(
                    "INSERT INTO privileged_numbers (number, note) VALUES (?,?)"
                    " ON CONFLICT (number) DO UPDATE SET note = excluded.note",
                    (number_e164, note),
                )
            else:
                db.execute("DELETE FROM privileged_numbers WHERE number = ?", (number_e164,))
        await self._write(body)

    async def list_privileged(self) -> list[str]:
        return [r["number"] for r in self._all("SELECT number FROM privileged_numbers ORDER BY 1")]

    def _version(self) -> int:
        """This connection's ``PRAGMA data_version`` (see ``_check_version``)."""
        row = self._one("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def screening_facts(
        self, facility_id: str, pin: str, number_e164: str
    ) -> ScreeningFacts:
        key = (facility_id, pin, number_e164)
        fresh = self._payer_rows(key)
        if fresh is None:
            self._check_version(self._version())
            self._prefetched = None
        else:
            # The call's next read is who pays: the statement that checked the
            # version read the payers' accounts too, kept for ``payer_candidates``.
            self._prefetched = (
                key, asyncio.current_task(), self.writer.commits, time.monotonic(), fresh
            )
        facts = self._screening_cache.get(key)
        if facts is None:
            facts = self._read_screening_facts(facility_id, pin, number_e164)
            if len(self._screening_cache) >= CACHE_ENTRIES:
                self._screening_cache.clear()
            self._screening_cache[key] = facts
        return facts

    def _read_screening_facts(
        self, facility_id: str, pin: str, number_e164: str
    ) -> ScreeningFacts:
        row = self._one(
            "SELECT p.pin AS found, p.name, p.language, p.restrictions, p.released_at,"
            " (SELECT group_concat(number, ',') FROM allowed_numbers a"
            "   WHERE a.facility_id = ?1 AND a.pin = ?2) AS allowed,"
            " EXISTS (SELECT 1 FROM facility_blocks WHERE facility_id = ?1 AND ("
            "   (prefix = 0 AND pattern = ?3) OR"
            "   (prefix = 1 AND substr(?3, 1, length(pattern)) = pattern))) AS blocked,"
            " EXISTS (SELECT 1 FROM self_blocks WHERE number = ?3"
            "   AND facility_id IN (?1, '*')) AS self_blocked,"
            " EXISTS (SELECT 1 FROM privileged_numbers WHERE number = ?3) AS privileged"
            " FROM (SELECT 1) LEFT JOIN people p ON p.facility_id = ?1 AND p.pin = ?2",
            (facility_id, pin, number_e164),
        )
        assert row is not None
        person = None
        if row["found"] is not None:
            allowed = row["allowed"]
            person = Person(
                facility_id=facility_id,
                pin=pin,
                name=row["name"],
                language=row["language"],
                allowed_numbers=frozenset(allowed.split(",")) if allowed else frozenset(),
                restrictions=self._restrictions_from(row["restrictions"]),
                released_at=_dt(row["released_at"]),
            )
        return ScreeningFacts(
            person=person,
            facility_blocked=bool(row["blocked"]),
            self_blocked=bool(row["self_blocked"]),
            privileged=bool(row["privileged"]),
        )

    async def payer_candidates(
        self, facility_id: str, pin: str, number_e164: str, at: datetime
    ) -> PayerCandidates:
        key = (facility_id, pin, number_e164)
        stash, self._prefetched = self._prefetched, None
        fresh = None
        if (
            stash is not None
            and stash[0] == key
            # Read by this task's screening, with nothing written or forgotten since:
            # what this read would give now.
            and stash[1] is asyncio.current_task()
            and stash[2] == self.writer.commits
            and time.monotonic() - stash[3] < PREFETCH_AGE
            and key in self._payer_cache
        ):
            fresh = stash[4]
        if fresh is None:
            fresh = self._payer_rows(key)
        if fresh is not None:
            keys, rows = fresh
        else:
            self._check_version(self._version())
            keys = self._read_payer_keys(facility_id, pin, number_e164)
            if len(self._payer_cache) >= CACHE_ENTRIES:
                self._payer_cache.clear()
            self._payer_cache[key] = keys
            rows = self._all(_PAYER_ROWS[len(keys.account_ids)], keys.account_ids)
        debit: Account | None = None
        advance_connect: Account | None = None
        direct_bill: Account | None = None
        for row in rows:
            if row["id"] is None:
                continue  # the LEFT JOIN's row when no account could pay
            account = self._account_from(row, keys.numbers[row["id"]])
            if account.product is Product.DEBIT:
                debit = account
            elif account.product is Product.ADVANCE_CONNECT:
                advance_connect = account
            elif account.product is Product.DIRECT_BILL:
                direct_bill = account
        subscription = None
        if keys.subscribed:
            found = self._one(
                "SELECT * FROM subscriptions"
                " WHERE number = ?1 AND facility_id = ?2 AND starts_at <= ?3 AND ends_at > ?3"
                " AND covered_seconds - used_seconds - held_seconds > 0"
                " ORDER BY ends_at LIMIT 1",
                (number_e164, facility_id, ts(at)),
            )
            subscription = None if found is None else subscription_from(found)
        invoices: tuple[Invoice, ...] = ()
        paid = 0
        if direct_bill is not None:
            invoices = tuple(self._invoices(direct_bill.id))
            if invoices:
                paid_row = self._one(
                    "SELECT COALESCE(SUM(e.amount), 0) AS s FROM ledger_entries e"
                    " JOIN ledger_transactions t ON t.id = e.tx_id"
                    " WHERE t.account_id = ? AND t.kind = 'payment' AND e.book = 'account'",
                    (direct_bill.id,),
                )
                assert paid_row is not None
                paid = int(paid_row["s"])
        return PayerCandidates(
            subscription=subscription,
            debit=debit,
            advance_connect=advance_connect,
            direct_bill=direct_bill,
            direct_bill_invoices=invoices,
            direct_bill_paid_units=paid,
            single_call_barred=keys.barred,
        )

    def _payer_rows(
        self, key: tuple[str, str, str]
    ) -> tuple[_PayerKeys, list[sqlite3.Row]] | None:
        """The cached payers of ``key`` with their accounts read afresh; None if not cached.

        Balances are never cached: the accounts are read now, and in the same
        statement (so in the same read transaction) the data version that says
        whether the cached ids and flags still hold.
        """
        keys = self._payer_cache.get(key)
        if keys is None:
            return None
        rows = self._all(_PAYER_ROWS[len(keys.account_ids)], keys.account_ids)
        self._check_version(rows[0]["data_version"])
        present = sum(row["id"] is not None for row in rows)
        if key not in self._payer_cache or present < len(keys.account_ids):
            return None
        return keys, rows

    def _read_payer_keys(self, facility_id: str, pin: str, number_e164: str) -> _PayerKeys:
        """Which accounts could pay a call, and the flags that change only by a write."""
        numbers: dict[str, tuple[str, ...]] = {}
        for row in self._all(
            "SELECT a.id, a.product, a.facility_id, a.pin,"
            " (SELECT group_concat(number, ',') FROM (SELECT number FROM account_numbers n"
            "   WHERE n.account_id = a.id ORDER BY number)) AS numbers FROM accounts a"
            " WHERE a.id IN (SELECT account_id FROM account_numbers WHERE number = ?1)"
            " OR (a.product = 'debit' AND a.facility_id = ?2 AND a.pin = ?3)",
            (number_e164, facility_id, pin),
        ):
            product = row["product"]
            if product == Product.DEBIT and (row["facility_id"], row["pin"]) != (facility_id, pin):
                continue
            if product not in (Product.DEBIT, Product.ADVANCE_CONNECT, Product.DIRECT_BILL):
                continue
            numbers[row["id"]] = tuple(row["numbers"].split(",")) if row["numbers"] else ()
        flags = self._one(
            "SELECT EXISTS (SELECT 1 FROM receivables WHERE number = ?1 AND status = 'failed')"
            " AS barred, EXISTS (SELECT 1 FROM subscriptions WHERE number = ?1"
            "   AND facility_id = ?2) AS subscribed",
            (number_e164, facility_id),
        )
        assert flags is not None
        return _PayerKeys(
            account_ids=tuple(numbers),
            numbers=numbers,
            subscribed=bool(flags["subscribed"]),
            barred=bool(flags["barred"]),
        )

    # -- CDRs ------------------------------------------------------------------------
    async def add_cdr(self, cdr: CallDetailRecord) -> CallDetailRecord:
        def body(db: sqlite3.Connection) -> Any:
            try:
                db.execute(
                    "INSERT INTO cdrs (call_id, facility_id, pin, number, payer_account_id,"
                    " setup_at, record, station, menu_seconds) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        cdr.call_id,
                        cdr.facility_id,
                        cdr.pin,
                        cdr.number_e164,
                        cdr.payer_account_id,
                        ts(cdr.setup_at),
                        cdr_json(cdr),
                        cdr.station,
                        cdr.menu_seconds,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateRequest(f"a record for call {cdr.call_id!r} exists") from exc
        await self._write(body, screening=False)
        return await self.get_cdr(cdr.call_id)

    async def get_cdr(self, call_id: str) -> CallDetailRecord:
        row = self._one("SELECT record FROM cdrs WHERE call_id = ?", (call_id,))
        if row is None:
            raise NotFound(f"no record for call {call_id!r}")
        return cdr_from_json(row["record"])

    async def list_cdrs(self, filters: CdrFilter | None = None) -> list[CallDetailRecord]:
        f = filters or CdrFilter()
        where, params = _where((
            ("facility_id = ?", f.facility_id),
            ("pin = ?", f.pin),
            ("number = ?", f.number_e164),
            ("payer_account_id = ?", f.payer_account_id),
            ("setup_at >= ?", None if f.since is None else ts(f.since)),
            ("setup_at < ?", None if f.until is None else ts(f.until)),
        ))
        sql = f"SELECT record FROM cdrs{where} ORDER BY setup_at, call_id"  # noqa: S608 - bound values
        if f.limit is not None:
            sql += " LIMIT ?"
            params.append(int(f.limit))
        return [cdr_from_json(r["record"]) for r in self._all(sql, params)]

    # -- PIN guessing ----------------------------------------------------------------
    @staticmethod
    def _lock_from(row: sqlite3.Row) -> StationLock:
        return StationLock(
            facility_id=row["facility_id"],
            station=row["station"],
            locked_at=_dt_req(row["locked_at"]),
            until=_dt_req(row["until"]),
            failures=int(row["failures"]),
        )

    async def record_pin_failure(
        self, facility_id: str, station: str, at: datetime, policy: PinGuardPolicy
    ) -> StationLock | None:
        check_station_key(facility_id, station)
        now = ts(at)

        def body(db: sqlite3.Connection) -> StationLock | None:
            prior = [
                _dt_req(r["at"])
                for r in db.execute(
                    "SELECT at FROM pin_failures WHERE facility_id = ? AND station = ?",
                    (facility_id, station),
                )
            ]
            outcome = record_failure(facility_id, station, prior, at, policy)
            db.execute(
                "DELETE FROM pin_failures WHERE facility_id = ? AND station = ?",
                (facility_id, station),
            )
            db.executemany(
                "INSERT INTO pin_failures (facility_id, station, at) VALUES (?,?,?)",
                [(facility_id, station, ts(t)) for t in outcome.kept],
            )
            # What has lapsed at the facility goes too, so that nothing grows forever:
            # failures older than the window, locks past their end.
            since = ts(at - timedelta(seconds=policy.window_seconds))
            db.execute(
                "DELETE FROM pin_failures WHERE facility_id = ? AND at <= ?", (facility_id, since)
            )
            db.execute(
                "DELETE FROM station_locks WHERE facility_id = ? AND until <= ?",
                (facility_id, now),
            )
            lock = outcome.lock
            if lock is not None:
                db.execute(
                    "INSERT OR REPLACE INTO station_locks"
                    " (facility_id, station, locked_at, until, failures) VALUES (?,?,?,?,?)",
                    (facility_id, station, ts(lock.locked_at), ts(lock.until), lock.failures),
                )
            return lock

        return await self._write(body, screening=False)

    async def station_lock(
        self, facility_id: str, station: str, at: datetime
    ) -> StationLock | None:
        check_station_key(facility_id, station)
        row = self._one(
            "SELECT * FROM station_locks WHERE facility_id = ? AND station = ? AND until > ?",
            (facility_id, station, ts(at)),
        )
        return None if row is None else self._lock_from(row)

    async def clear_station_lock(self, facility_id: str, station: str) -> bool:
        check_station_key(facility_id, station)

        def body(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM station_locks WHERE facility_id = ? AND station = ?",
                (facility_id, station),
            )
            return cur.rowcount > 0

        return await self._write(body, screening=False)

    async def list_station_locks(self, facility_id: str, at: datetime) -> list[StationLock]:
        check_station_key(facility_id, "-")
        rows = self._all(
            "SELECT * FROM station_locks WHERE facility_id = ? AND until > ? ORDER BY station",
            (facility_id, ts(at)),
        )
        return [self._lock_from(r) for r in rows]
