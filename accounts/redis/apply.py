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

import json
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


#: The op list as the script's one argument: compact JSON, ASCII (non-ASCII text escaped).
_encode = json.JSONEncoder(separators=(",", ":")).encode


class _Slots(dict[str, int]):
    """Each key's position in the script's KEYS, given as the key is first named."""

    __slots__ = ()

    def __missing__(self, key: str) -> int:
        slot = self[key] = len(self) + 1
        return slot


class AtomicWrite:
    """Checks, then writes, over the keys of one hash tag: the apply script's input.

    Checks and writes may be added in any order: every check runs first, in the
    order added, so a record's checks and writes can be said together.

    The ops go to the script as one JSON array (``args``), each op an array of
    its name, its key's position in ``keys`` and its arguments: encoding that
    in C costs the client far less than one RESP argument per op part.
    """

    __slots__ = ("_checks", "_slots", "_writes")

    def __init__(self) -> None:
        self._checks: list[tuple[object, ...]] = []
        self._writes: list[tuple[object, ...]] = []
        self._slots = _Slots()

    @property
    def keys(self) -> list[str]:
        """The keys the ops name, in the order first named (their slots count from 1)."""
        return list(self._slots)

    @property
    def args(self) -> list[str]:
        return [_encode(self._checks + self._writes)]

    # Each op is one tuple: name, the key's slot, arguments.

    # -- what the answer carries, and the state the records must be in -------------
    def read(self, key: str, field: str) -> AtomicWrite:
        """Answer the field's value (as it was before the writes) after the status."""
        self._checks.append(("R", self._slots[key], field))
        return self

    def replay(self, key: str, field: str, token: str) -> AtomicWrite:
        """If the field holds ``token``, this very write ran before: answer "replayed"."""
        self._checks.append(("T", self._slots[key], field, token))
        return self

    def exists(self, key: str, code: str, message: str) -> AtomicWrite:
        self._checks.append(("X", self._slots[key], code, message))
        return self

    def absent(self, key: str, code: str, message: str) -> AtomicWrite:
        self._checks.append(("N", self._slots[key], code, message))
        return self

    def equals(
        self, key: str, field: str, value: str, code: str = CONFLICT, message: str = ""
    ) -> AtomicWrite:
        """The field must hold ``value`` ('' for a missing field)."""
        self._checks.append(("E", self._slots[key], field, value, code, message))
        return self

    def at_least(
        self, key: str, terms: Iterable[tuple[str, int]], least: int, code: str, message: str
    ) -> AtomicWrite:
        """The sum of ``coefficient * field`` over ``terms`` must be at least ``least``."""
        # Money travels as text: a JSON number is a double in Lua.
        op: list[object] = ["G", self._slots[key], str(least), code, message]
        for field, coefficient in terms:
            op += (field, coefficient)
        self._checks.append(tuple(op))
        return self

    # -- writes ------------------------------------------------------------------------
    def incr(self, key: str, field: str, delta: int) -> AtomicWrite:
        if delta:
            self._writes.append(("I", self._slots[key], field, str(delta)))
        return self

    def hset(self, key: str, fields: Mapping[str, str] | Sequence[str]) -> AtomicWrite:
        """Set fields: flat name/value text pairs (as the store says them), or a mapping."""
        if type(fields) is list:
            if fields:
                self._writes.append(("H", self._slots[key], *fields))
            return self
        if isinstance(fields, Mapping):
            pairs: list[str] = []
            for name, value in fields.items():
                pairs += (name, value)
            fields = pairs
        if fields:
            self._writes.append(("H", self._slots[key], *fields))
        return self

    def sadd(self, key: str, member: str) -> AtomicWrite:
        self._writes.append(("S", self._slots[key], member))
        return self

    def srem(self, key: str, member: str) -> AtomicWrite:
        self._writes.append(("D", self._slots[key], member))
        return self

    def append(self, key: str, entry: str) -> AtomicWrite:
        """Add one ledger entry to a stream."""
        self._writes.append(("A", self._slots[key], entry))
        return self

    def set(self, key: str, value: str) -> AtomicWrite:
        self._writes.append(("P", self._slots[key], value))
        return self

    def expire(self, key: str, seconds: int) -> AtomicWrite:
        self._writes.append(("Z", self._slots[key], seconds))
        return self


def answer(result: Sequence[Any], what: str) -> list[Any]:
    """The script's answer when it applied (or replayed); the failed check raised otherwise."""
    status = result[0]
    if status == "ok":
        return list(result)
    if status == CONFLICT:
        raise PlanConflict(f"{what}: {result[1] or 'changed while it was planned'}")
    raise ERRORS.get(status, InvalidRequest)(f"{what}: {result[1]}")
