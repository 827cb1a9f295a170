"""A node-local durable journal of settlements and call records the shared store could not take.

When the shared store (Redis) is unreachable as a call ends, the call has
already been talked and its funds are held: the settlement must not be lost,
and must not be applied twice. The node writes it, with the call's record, to
a local SQLite file (``synchronous=FULL``: on disk before the call is reported
ended) and replays it when the store answers again. Replay is exactly-once
because settling is idempotent per reservation: a reservation settled already
(by an earlier replay whose answer was lost, or by another node's recovery)
answers ``InvalidState`` and the entry is closed without moving money again;
a record that exists already answers ``DuplicateRequest``.

Entries are kept, never deleted: an entry's state moves ``pending`` ->
``applied`` (or ``already_applied``), or ``failed`` with the store's answer
for an operator to read when the store no longer knows the reservation.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accounts.cdr import CallDetailRecord, CallOutcome
from accounts.model import Book, Leg

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('settle', 'record')),
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    journaled_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    closed_at TEXT,
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (state) WHERE state = 'pending';
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal entries are kept'); END;
"""


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def record_json(cdr: CallDetailRecord) -> str:
    data: dict[str, Any] = {}
    for name, value in vars(cdr).items():
        data[name] = _ts(value) if isinstance(value, datetime) else value
    return json.dumps(data)


def record_from(text: str) -> CallDetailRecord:
    data = json.loads(text)
    for name in ("setup_at", "answer_at", "accept_at", "end_at"):
        data[name] = _dt(data[name])
    data["outcome"] = CallOutcome(data["outcome"])
    return CallDetailRecord(**data)


@dataclass(frozen=True)
class JournaledSettlement:
    """The arguments of one ``AccountStore.settle`` call, as the service made it."""

    reservation_id: str
    talked_seconds: int
    charge_legs: tuple[Leg, ...]
    at: datetime
    receivable_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "reservation_id": self.reservation_id,
                "talked_seconds": self.talked_seconds,
                "charge_legs": [[str(g.book), g.ref, g.amount_units] for g in self.charge_legs],
                "at": _ts(self.at),
                "receivable_id": self.receivable_id,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> JournaledSettlement:
        d = json.loads(text)
        return cls(
            reservation_id=d["reservation_id"],
            talked_seconds=int(d["talked_seconds"]),
            charge_legs=tuple(Leg(Book(b), ref, int(units)) for b, ref, units in d["charge_legs"]),
            at=datetime.fromisoformat(d["at"]),
            receivable_id=d["receivable_id"],
        )


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    kind: str
    key: str
    settlement: JournaledSettlement | None
    record: CallDetailRecord | None
    journaled_at: datetime
    state: str
    attempts: int
    last_error: str


@dataclass
class ReplayReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: Entries still pending because the store is still unreachable.
    remaining: int = 0


class SettlementJournal:
    """The SQLite file holding settlements and records waiting for the shared store."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: the entry is on disk before the node reports the call as ended.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        db.row_factory = sqlite3.Row
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def _append(self, kind: str, key: str, payload: str) -> bool:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO journal (kind, key, payload, journaled_at) VALUES (?,?,?,?)",
            (kind, key, payload, _ts(datetime.now(UTC))),
        )
        return cur.rowcount == 1

    def append_settlement(self, settlement: JournaledSettlement) -> bool:
        """Journal one settlement; False if this reservation's settlement is journaled already."""
        if settlement.talked_seconds < 0:
            raise ValueError("talked seconds must not be negative")
        return self._append("settle", settlement.reservation_id, settlement.to_json())

    def append_record(self, record: CallDetailRecord) -> bool:
        """Journal one call record; False if the call's record is journaled already."""
        return self._append("record", record.call_id, record_json(record))

    def _entry(self, row: sqlite3.Row) -> JournalEntry:
        settle = row["kind"] == "settle"
        return JournalEntry(
            seq=row["seq"],
            kind=row["kind"],
            key=row["key"],
            settlement=JournaledSettlement.from_json(row["payload"]) if settle else None,
            record=None if settle else record_from(row["payload"]),
            journaled_at=datetime.fromisoformat(row["journaled_at"]),
            state=row["state"],
            attempts=row["attempts"],
            last_error=row["last_error"],
        )

    def pending(self) -> list[JournalEntry]:
        rows = self.db.execute(
            "SELECT * FROM journal WHERE state = 'pending' ORDER BY seq"
        ).fetchall()
        return [self._entry(r) for r in rows]

    def entries(self) -> list[JournalEntry]:
        return [self._entry(r) for r in self.db.execute("SELECT * FROM journal ORDER BY seq")]

    def close_entry(self, seq: int, state: str, note: str = "") -> None:
        self.db.execute(
            "UPDATE journal SET state = ?, last_error = ?, closed_at = ?"
            " WHERE seq = ? AND state = 'pending'",
            (state, note, _ts(datetime.now(UTC)), seq),
        )

    def note_attempt(self, seq: int, error: str) -> None:
        self.db.execute(
            "UPDATE journal SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
            (error, seq),
        )

    def __len__(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM journal WHERE state = 'pending'").fetchone()
        return int(row[0])
