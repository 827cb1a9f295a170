"""Family sign-in and alert records in the embedded SQLite store (tables of schema 4)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from accounts.family import (
    AlertPreferences,
    FamilyCredential,
    FamilySession,
    alerts_from_json,
    alerts_json,
)
from accounts.sqlite_store import SqliteAccountStore
from accounts.store import ts


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class SqliteFamilyStore:
    """``FamilyStore`` on the tables of an open ``SqliteAccountStore``.

    Writes go through the store's group writer, so each is one transaction
    in turn with the store's other writes; none changes what screening reads.
    """

    def __init__(self, store: SqliteAccountStore) -> None:
        self.store = store

    async def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        def body(db: sqlite3.Connection) -> None:
            db.execute(sql, params)

        await self.store._write(body, screening=False)

    async def get_credential(self, account_id: str) -> FamilyCredential | None:
        row = self.store._one(
            "SELECT * FROM family_credentials WHERE account_id = ?", (account_id,))
        if row is None:
            return None
        return FamilyCredential(
            account_id=row["account_id"], updated_at=datetime.fromisoformat(row["updated_at"]),
            passcode_hash=row["passcode_hash"], setup_code_hash=row["setup_code_hash"],
            setup_expires_at=_dt(row["setup_expires_at"]))

    async def put_credential(self, credential: FamilyCredential) -> None:
        c = credential
        await self._write(
            "INSERT OR REPLACE INTO family_credentials (account_id, updated_at, passcode_hash,"
            " setup_code_hash, setup_expires_at) VALUES (?,?,?,?,?)",
            (c.account_id, ts(c.updated_at), c.passcode_hash, c.setup_code_hash,
             None if c.setup_expires_at is None else ts(c.setup_expires_at)))

    async def add_session(self, session: FamilySession) -> None:
        s = session
        at = ts(s.created_at)

        def body(db: sqlite3.Connection) -> None:
            # Sessions past their end go as new ones come: nothing grows forever.
            db.execute("DELETE FROM family_sessions WHERE expires_at <= ?", (at,))
            db.execute(
                "INSERT INTO family_sessions (token_hash, account_id, csrf_token, created_at,"
                " expires_at) VALUES (?,?,?,?,?)",
                (s.token_hash, s.account_id, s.csrf_token, at, ts(s.expires_at)))

        await self.store._write(body, screening=False)

    async def get_session(self, account_id: str, token_hash: str) -> FamilySession | None:
        row = self.store._one(
            "SELECT * FROM family_sessions WHERE token_hash = ? AND account_id = ?",
            (token_hash, account_id))
        if row is None:
            return None
        return FamilySession(
            account_id=row["account_id"], token_hash=row["token_hash"],
            csrf_token=row["csrf_token"], created_at=datetime.fromisoformat(row["created_at"]),
            expires_at=datetime.fromisoformat(row["expires_at"]))

    async def delete_session(self, account_id: str, token_hash: str) -> None:
        await self._write(
            "DELETE FROM family_sessions WHERE token_hash = ? AND account_id = ?",
            (token_hash, account_id))

    async def delete_sessions(self, account_id: str) -> None:
        await self._write("DELETE FROM family_sessions WHERE account_id = ?", (account_id,))

    async def count_failure(self, key: str, at: datetime, window_seconds: int) -> int:
        since = ts(at - timedelta(seconds=window_seconds))

        def body(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM family_failures WHERE at <= ?", (since,))
            db.execute("INSERT INTO family_failures (key, at) VALUES (?,?)", (key, ts(at)))
            row = db.execute(
                "SELECT COUNT(*) FROM family_failures WHERE key = ? AND at > ?",
                (key, since)).fetchone()
            return int(row[0])

        return await self.store._write(body, screening=False)

    async def failures(self, key: str, at: datetime, window_seconds: int) -> int:
        since = ts(at - timedelta(seconds=window_seconds))
        row = self.store._one(
            "SELECT COUNT(*) AS n FROM family_failures WHERE key = ? AND at > ?", (key, since))
        return 0 if row is None else int(row["n"])

    async def clear_failures(self, key: str) -> None:
        await self._write("DELETE FROM family_failures WHERE key = ?", (key,))

    async def get_alerts(self, account_id: str) -> AlertPreferences:
        row = self.store._one(
            "SELECT preferences FROM family_alerts WHERE account_id = ?", (account_id,))
        return alerts_from_json(account_id, None if row is None else row["preferences"])

    async def put_alerts(self, preferences: AlertPreferences) -> None:
        await self._write(
            "INSERT OR REPLACE INTO family_alerts (account_id, preferences) VALUES (?,?)",
            (preferences.account_id, alerts_json(preferences)))

    async def alert_accounts(self) -> list[str]:
        rows = self.store._all("SELECT account_id FROM family_alerts ORDER BY account_id")
        return [r["account_id"] for r in rows]

    async def claim_sweep(self, at: datetime, seconds: float) -> bool:
        now = ts(at)

        def body(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT until FROM family_sweeps WHERE name = 'alerts'").fetchone()
            if row is not None and row[0] > now:
                return False  # another process sharing the file swept just now
            db.execute("INSERT OR REPLACE INTO family_sweeps (name, until) VALUES ('alerts', ?)",
                       (ts(at + timedelta(seconds=seconds)),))
            return True

        return await self.store._write(body, screening=False)
