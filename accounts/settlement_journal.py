"""A node-local durable journal of settlements the shared store could not take, replayed once.

When the shared store (Redis) is unreachable as a call ends, the call has
already been talked and its funds are held: the settlement must not be lost,
and must not be applied twice. The node writes it to a local SQLite file
(``synchronous=FULL``: on disk before the call is reported ended) and replays
it when the store answers again. Replay is exactly-once because settling is
idempotent per reservation in every store: a reservation settled already
(by an earlier replay whose answer was lost, or by a recovery) answers
``InvalidState`` and the entry is closed without moving money again.

The journal is append-only like the ledger: an entry is never deleted, its
state moves ``pending`` -> ``settled`` (or ``already_settled``) and, if the
reservation is unknown to the store, to ``failed`` for an operator to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accounts.cdr import CallDetailRecord, CallOutcome
from accounts.errors import (
    DuplicateRequest,
    InvalidState,
    NotFound,
    StoreUnavailable,
)
from accounts.service import AccountService, Settlement
from rating import Quote, quote

log = logging.getLogger("accounts.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    reservation_id TEXT PRIMARY KEY,
    talked_seconds INTEGER NOT NULL,
    at TEXT NOT NULL,
    journaled_at TEXT NOT NULL,
    record TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    closed_at TEXT
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (state) WHERE state = 'pending';
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal entries are kept'); END;
"""


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return value.astimezone(UTC).isoformat()


def _cdr_json(cdr: CallDetailRecord) -> str:
    data: dict[str, Any] = {}
    for name, value in vars(cdr).items():
        data[name] = _ts(value) if isinstance(value, datetime) else value
    return json.dumps(data)


def _cdr_from(text: str) -> CallDetailRecord:
    data = json.loads(text)
    for name in ("setup_at", "answer_at", "accept_at", "end_at"):
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    data["outcome"] = CallOutcome(data["outcome"])
    return CallDetailRecord(**data)


@dataclass(frozen=True)
class JournalEntry:
    reservation_id: str
    talked_seconds: int
    at: datetime
    journaled_at: datetime
    #: The call's record, written with the settled money once the settlement applies.
    record: CallDetailRecord | None
    state: str
    attempts: int
    last_error: str


class SettlementJournal:
    """The SQLite file holding settlements waiting for the shared store."""

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

    def append(
        self,
        reservation_id: str,
        talked_seconds: int,
        at: datetime,
        *,
        record: CallDetailRecord | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Journal one settlement; False if this reservation is journaled already."""
        if talked_seconds < 0:
            raise ValueError("talked seconds must not be negative")
        cur = self.db.execute(
            "INSERT OR IGNORE INTO journal (reservation_id, talked_seconds, at, journaled_at,"
            " record) VALUES (?,?,?,?,?)",
            (
                reservation_id,
                talked_seconds,
                _ts(at),
                _ts(now or datetime.now(UTC)),
                _cdr_json(record) if record is not None else None,
            ),
        )
        return cur.rowcount == 1

    @staticmethod
    def _entry(row: sqlite3.Row) -> JournalEntry:
        return JournalEntry(
            reservation_id=row["reservation_id"],
            talked_seconds=row["talked_seconds"],
            at=datetime.fromisoformat(row["at"]),
            journaled_at=datetime.fromisoformat(row["journaled_at"]),
            record=_cdr_from(row["record"]) if row["record"] else None,
            state=row["state"],
            attempts=row["attempts"],
            last_error=row["last_error"],
        )

    def pending(self) -> list[JournalEntry]:
        rows = self.db.execute(
            "SELECT * FROM journal WHERE state = 'pending' ORDER BY journaled_at, reservation_id"
        ).fetchall()
        return [self._entry(r) for r in rows]

    def entries(self) -> list[JournalEntry]:
        rows = self.db.execute("SELECT * FROM journal ORDER BY journaled_at").fetchall()
        return [self._entry(r) for r in rows]

    def close_entry(self, reservation_id: str, state: str, note: str = "") -> None:
        self.db.execute(
            "UPDATE journal SET state = ?, last_error = ?, closed_at = ?"
            " WHERE reservation_id = ? AND state = 'pending'",
            (state, note, _ts(datetime.now(UTC)), reservation_id),
        )

    def note_attempt(self, reservation_id: str, error: str) -> None:
        self.db.execute(
            "UPDATE journal SET attempts = attempts + 1, last_error = ? WHERE reservation_id = ?",
            (error, reservation_id),
        )

    def __len__(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM journal WHERE state = 'pending'").fetchone()
        return int(row[0])


@dataclass
class ReplayReport:
    settled: list[str] = field(default_factory=list)
    already_settled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: Entries still pending because the store is still unreachable.
    remaining: int = 0


def with_settlement(record: CallDetailRecord, settlement: Settlement) -> CallDetailRecord:
    """The record of a call, carrying the money and seconds its settlement charged."""
    q = settlement.quote
    r = settlement.reservation
    return replace(
        record,
        talked_seconds=r.talked_seconds if r.talked_seconds is not None else record.talked_seconds,
        jurisdiction=str(q.jurisdiction) if q is not None else record.jurisdiction,
        billed_seconds=q.billed_seconds if q is not None else 0,
        charge_units=q.charge_units if q is not None else 0,
        fee_units=q.fees_units if q is not None else 0,
        tax_units=q.taxes_units if q is not None else 0,
        total_units=q.total_units if q is not None else 0,
    )


class JournaledSettler:
    """Settle through the service; journal locally when the store is unreachable; replay once.

    ``on_journaled(reservation_id)`` is called for each settlement journaled
    (wire it to a metric).
    """

    def __init__(
        self,
        service: AccountService,
        journal: SettlementJournal,
        *,
        on_journaled: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.journal = journal
        self.on_journaled = on_journaled

    async def settle(
        self,
        reservation_id: str,
        talked_seconds: int,
        at: datetime,
        *,
        record: CallDetailRecord | None = None,
    ) -> Settlement | None:
        """The settlement, or None when it was journaled for replay.

        With ``record``, the call's record is written (with the settled money)
        as part of the same step, now or at replay.
        """
        try:
            settlement = await self.service.settle(reservation_id, talked_seconds, at)
        except StoreUnavailable as exc:
            self.journal.append(reservation_id, talked_seconds, at, record=record)
            log.warning("settlement of %s journaled locally: %s", reservation_id, exc)
            if self.on_journaled is not None:
                self.on_journaled(reservation_id)
            return None
        if record is not None:
            try:
                await self.service.store.add_cdr(with_settlement(record, settlement))
            except DuplicateRequest:
                pass
            except StoreUnavailable as exc:
                # The money is settled; the replay finds it settled and writes the record.
                self.journal.append(reservation_id, talked_seconds, at, record=record)
                log.warning("record of %s kept locally: %s", reservation_id, exc)
        return settlement

    def _settled_quote(self, reservation_id: str, settled: Any) -> Quote | None:
        """The quote a settled reservation was charged, priced as settlement priced it."""
        if settled.subscription_id is not None or settled.talked_seconds is None:
            return None
        facility = self.service.facilities.get(settled.facility_id)
        if facility is None:
            return None
        return quote(
            facility.rated,
            settled.number_e164,
            settled.product,
            settled.talked_seconds,
            settled.created_at,
        )

    async def replay(self) -> ReplayReport:
        """Apply every pending entry once; stop at the first sign the store is still away."""
        report = ReplayReport()
        pending = self.journal.pending()
        for n, entry in enumerate(pending):
            rid = entry.reservation_id
            try:
                try:
                    settlement = await self.service.settle(rid, entry.talked_seconds, entry.at)
                    outcome = "settled"
                except InvalidState:
                    # Applied before (a lost answer, or another node's recovery): not again.
                    reservation = await self.service.store.get_reservation(rid)
                    settlement = Settlement(reservation, self._settled_quote(rid, reservation))
                    outcome = "already_settled"
                if entry.record is not None:
                    with contextlib.suppress(DuplicateRequest):
                        await self.service.store.add_cdr(with_settlement(entry.record, settlement))
            except StoreUnavailable as exc:
                self.journal.note_attempt(rid, str(exc))
                report.remaining = len(pending) - n
                return report
            except NotFound as exc:
                self.journal.close_entry(rid, "failed", str(exc))
                report.failed[rid] = str(exc)
                continue
            self.journal.close_entry(rid, outcome)
            (report.settled if outcome == "settled" else report.already_settled).append(rid)
        return report

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Replay in the background until ``stop`` is set."""
        while not stop.is_set():
            if len(self.journal):
                report = await self.replay()
                if report.settled or report.already_settled:
                    log.warning(
                        "replayed %d journaled settlement(s), %d already settled",
                        len(report.settled),
                        len(report.already_settled),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
