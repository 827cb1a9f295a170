"""One money-moving step as the generic apply script (``scripts/apply.lua``) runs it.

A step of the Redis store is read, plan, apply: the store reads the records,
``accounts.postings`` computes what changes, and an ``AtomicWrite`` says it in
the script's terms: the checks that the records are still in the state the
plan was made from (or a server-side guard such as "balance stays at least the
floor", where other nodes move the balance concurrently), then the writes.
Redis runs the script as one step, so either every check holds and every
write is made, or nothing is written and the first failed check answers.

Every key of one write must share a hash tag (one cluster slot).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from accounts.errors import (
    AccountsError,
    DuplicateRequest,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    NotFound,
    UnknownAccount,
)

#: A check answers this when the record is no longer as it was read: read again, plan again.
CONFLICT = "conflict"

ERRORS: dict[str, type[AccountsError]] = {
    "dup": DuplicateRequest,
    "insufficient": InsufficientFunds,
    "state": InvalidState,
    "notfound": NotFound,
    "unknown_account": UnknownAccount,
    "invalid": InvalidRequest,
}


class PlanConflict(InvalidState):
    """The records changed between the read and the apply; the plan no longer holds.

    The store reads again and plans again; one that keeps meeting changes
    gives up with this (an ``InvalidState``: the state moved under it)."""


class AtomicWrite:
    """Checks, then writes, over the keys of one hash tag: the apply script's input.

    Checks and writes may be added in any order: every check runs first, in the
    order added, so a record's checks and writes can be said together.
    """

    __slots__ = ("_checks", "_slots", "_writes", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._checks: list[str] = []
        self._writes: list[str] = []
        self._slots: dict[str, str] = {}

    @property
    def args(self) -> list[str]:
        return self._checks + self._writes

    def _op(self, name: str, key: str, args: Sequence[str], *, writes: bool) -> AtomicWrite:
        slot = self._slots.get(key)
        if slot is None:
            self.keys.append(key)
            slot = self._slots[key] = str(len(self.keys))
        out = self._writes if writes else self._checks
        out.extend((name, str(len(args) + 1), slot))
        out.extend(args)
        return self

    # -- what the answer carries, and the state the records must be in -------------
    def read(self, key: str, field: str) -> AtomicWrite:
        """Answer the field's value (as it was before the writes) after the status."""
        return self._op("R", key, (field,), writes=False)

    def replay(self, key: str, field: str, token: str) -> AtomicWrite:
        """If the field holds ``token``, this very write ran before: answer "replayed"."""
        return self._op("T", key, (field, token), writes=False)

    def exists(self, key: str, code: str, message: str) -> AtomicWrite:
        return self._op("X", key, (code, message), writes=False)

    def absent(self, key: str, code: str, message: str) -> AtomicWrite:
        return self._op("N", key, (code, message), writes=False)

    def equals(
        self, key: str, field: str, value: str, code: str = CONFLICT, message: str = ""
    ) -> AtomicWrite:
        """The field must hold ``value`` ('' for a missing field)."""
        return self._op("E", key, (field, value, code, message), writes=False)

    def at_least(
        self, key: str, terms: Iterable[tuple[str, int]], least: int, code: str, message: str
    ) -> AtomicWrite:
        """The sum of ``coefficient * field`` over ``terms`` must be at least ``least``."""
        args = [str(least), code, message]
        for field, coefficient in terms:
            args.extend((field, str(coefficient)))
        return self._op("G", key, args, writes=False)

    # -- writes ------------------------------------------------------------------------
    def incr(self, key: str, field: str, delta: int) -> AtomicWrite:
        if delta:
            self._op("I", key, (field, str(delta)), writes=True)
        return self

    def hset(self, key: str, fields: Mapping[str, str] | Sequence[str]) -> AtomicWrite:
        """Set fields: a mapping, or flat name/value text pairs."""
        if isinstance(fields, Mapping):
            pairs: list[str] = []
            for name, value in fields.items():
                pairs.extend((name, value))
            fields = pairs
        if fields:
            self._op("H", key, fields, writes=True)
        return self

    def sadd(self, key: str, member: str) -> AtomicWrite:
        return self._op("S", key, (member,), writes=True)

    def srem(self, key: str, member: str) -> AtomicWrite:
        return self._op("D", key, (member,), writes=True)

    def append(self, key: str, entry: str) -> AtomicWrite:
        """Add one ledger entry to a stream."""
        return self._op("A", key, (entry,), writes=True)

    def set(self, key: str, value: str) -> AtomicWrite:
        return self._op("P", key, (value,), writes=True)

    def expire(self, key: str, seconds: int) -> AtomicWrite:
        return self._op("Z", key, (str(seconds),), writes=True)


def answer(result: Sequence[Any], what: str) -> list[Any]:
    """The script's answer when it applied (or replayed); the failed check raised otherwise."""
    status = result[0]
    if status == "ok":
        return list(result)
    if status == CONFLICT:
        raise PlanConflict(f"{what}: {result[1] or 'changed while it was planned'}")
    raise ERRORS.get(status, InvalidRequest)(f"{what}: {result[1]}")
