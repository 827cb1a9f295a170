"""Family sign-in and alert records in Redis, under the account's hash tag.

Keys (``{a:<account>}`` is the account's tag, so one account's records share
a cluster slot with the account itself):

* ``{a:<account>}:family:cred``: the credential hash (passcode hash, set-up code);
* ``{a:<account>}:family:session:<sha256>``: one session hash, expiring with it;
  ``{a:<account>}:family:sessions`` lists their hashes (for "sign everyone out");
* ``{a:<account>}:family:alerts``: the alert preferences as JSON, with
  ``family:alert-accounts`` listing the accounts that have some;
* ``{n:<number>}:family:failures`` and ``family:failures:<address>``: failed
  sign-ins as sorted sets by time, expiring with the throttle window.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from accounts.family import (
    AlertPreferences,
    FamilyCredential,
    FamilySession,
    alerts_from_json,
    alerts_json,
)
from accounts.redis.store import RedisAccountStore
from accounts.store import ts

P = ParamSpec("P")
T = TypeVar("T")


def _guarded(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Redis away (or answering with an error) is ``StoreUnavailable``, as in the store."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await fn(*args, **kwargs)
            except (RedisError, OSError) as exc:
                owner = args[0]
                assert isinstance(owner, RedisFamilyStore)
                raise owner.store._unavailable(operation, exc) from exc

        return guarded

    return decorate


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class RedisFamilyStore:
    """``FamilyStore`` over an open ``RedisAccountStore``'s client."""

    def __init__(self, store: RedisAccountStore) -> None:
        self.store = store

    @property
    def client(self) -> Any:
        return self.store.client

    def _key(self, account_id: str, *parts: str) -> str:
        return self.store._t(f"a:{account_id}", "family:" + ":".join(parts))

    def _failures_key(self, key: str) -> str:
        kind, _, value = key.partition(":")
        if kind == "number":
            return self.store._t(f"n:{value}", "family:failures")
        return self.store._k("family", "failures", key)

    @_guarded("get_credential")
    async def get_credential(self, account_id: str) -> FamilyCredential | None:
        h = await self.client.hgetall(self._key(account_id, "cred"))
        if not h:
            return None
        return FamilyCredential(
            account_id=account_id, updated_at=datetime.fromisoformat(h["updated_at"]),
            passcode_hash=h.get("passcode_hash") or None,
            setup_code_hash=h.get("setup_code_hash") or None,
            setup_expires_at=datetime.fromisoformat(h["setup_expires_at"])
            if h.get("setup_expires_at") else None)

    @_guarded("put_credential")
    async def put_credential(self, credential: FamilyCredential) -> None:
        c = credential
        key = self._key(c.account_id, "cred")
        fields = {
            "updated_at": ts(c.updated_at),
            "passcode_hash": c.passcode_hash or "",
            "setup_code_hash": c.setup_code_hash or "",
            "setup_expires_at": "" if c.setup_expires_at is None else ts(c.setup_expires_at),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        await pipe.execute()

    @_guarded("add_session")
    async def add_session(self, session: FamilySession) -> None:
        s = session
        key = self._key(s.account_id, "session", s.token_hash)
        listing = self._key(s.account_id, "sessions")
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"csrf_token": s.csrf_token, "created_at": ts(s.created_at),
                                "expires_at": ts(s.expires_at)})
        # A lifetime, not an instant: the session's own clock need not be Redis's.
        pipe.expire(key, max(1, int((s.expires_at - s.created_at).total_seconds()) + 1))
        pipe.sadd(listing, s.token_hash)
        await pipe.execute()
        # The listing keeps hashes of sessions Redis has expired; drop those now.
        members = await self.client.smembers(listing)
        gone = [m for m in members
                if not await self.client.exists(self._key(s.account_id, "session", m))]
        if gone:
            await self.client.srem(listing, *gone)

    @_guarded("get_session")
    async def get_session(self, account_id: str, token_hash: str) -> FamilySession | None:
        h = await self.client.hgetall(self._key(account_id, "session", token_hash))
        if not h:
            return None
        return FamilySession(
            account_id=account_id, token_hash=token_hash, csrf_token=h["csrf_token"],
            created_at=datetime.fromisoformat(h["created_at"]),
            expires_at=datetime.fromisoformat(h["expires_at"]))

    @_guarded("delete_session")
    async def delete_session(self, account_id: str, token_hash: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._key(account_id, "session", token_hash))
        pipe.srem(self._key(account_id, "sessions"), token_hash)
        await pipe.execute()

    @_guarded("delete_sessions")
    async def delete_sessions(self, account_id: str) -> None:
        listing = self._key(account_id, "sessions")
        members = await self.client.smembers(listing)
        pipe = self.client.pipeline(transaction=True)
        for m in members:
            pipe.delete(self._key(account_id, "session", m))
        pipe.delete(listing)
        await pipe.execute()

    @_guarded("count_failure")
    async def count_failure(self, key: str, at: datetime, window_seconds: int) -> int:
        zkey = self._failures_key(key)
        now = _micros(at)
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(zkey, "-inf", now - window_seconds * 1_000_000)
        pipe.zadd(zkey, {f"{now}:{secrets.token_hex(4)}": now})
        pipe.zcount(zkey, f"({now - window_seconds * 1_000_000}", "+inf")
        pipe.expire(zkey, window_seconds + 1)
        replies = await pipe.execute()
        return int(replies[2])

    @_guarded("failures")
    async def failures(self, key: str, at: datetime, window_seconds: int) -> int:
        since = _micros(at) - window_seconds * 1_000_000
        return int(await self.client.zcount(self._failures_key(key), f"({since}", "+inf"))

    @_guarded("clear_failures")
    async def clear_failures(self, key: str) -> None:
        await self.client.delete(self._failures_key(key))

    @_guarded("get_alerts")
    async def get_alerts(self, account_id: str) -> AlertPreferences:
        return alerts_from_json(account_id, await self.client.get(self._key(account_id, "alerts")))

    @_guarded("put_alerts")
    async def put_alerts(self, preferences: AlertPreferences) -> None:
        # Listed before the record is written: a crash leaves a name, never a lost record.
        await self.client.sadd(self.store._k("family", "alert-accounts"), preferences.account_id)
        await self.client.set(self._key(preferences.account_id, "alerts"),
                              alerts_json(preferences))

    @_guarded("alert_accounts")
    async def alert_accounts(self) -> list[str]:
        return sorted(await self.client.smembers(self.store._k("family", "alert-accounts")))

    @_guarded("claim_sweep")
    async def claim_sweep(self, at: datetime, seconds: float) -> bool:
        # Redis's own clock decides: the nodes' clocks need not agree.
        claimed = await self.client.set(self.store._k("family", "alert-sweep"),
                                        secrets.token_hex(8), nx=True,
                                        px=max(1, int(seconds * 1000)))
        return bool(claimed)
