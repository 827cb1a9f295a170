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


#: Between the op list's parts: one argument, joined in C, split by the script.
SEPARATOR = "\x1f"
_NUMBERS = tuple(str(n) for n in range(64))
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _text(n: int) -> str:
    return _NUMBERS[n] if n < 64 else str(n)


class _Slots(dict[str, str]):
    """Each key's position in the script's KEYS (as text), given as the key is first named."""

    __slots__ = ()

    def __missing__(self, key: str) -> str:
        n = len(self) + 1
        slot = self[key] = _NUMBERS[n] if n < 64 else str(n)
        return slot


class AtomicWrite:
    """Checks, then writes, over the keys of one hash tag: the apply script's input.

    Checks and writes may be added in any order: every check runs first, in the
    order added, so a record's checks and writes can be said together.

    The ops go to the script as one argument (``args``): their parts joined by
    ``SEPARATOR``, which costs the client far less than one RESP argument per
    part; as a JSON array of the same parts when some text holds the separator.
    """

    __slots__ = ("_checks", "_slots", "_writes")

    def __init__(self) -> None:
        self._checks: list[str] = []
        self._writes: list[str] = []
        self._slots = _Slots()

    @property
    def keys(self) -> list[str]:
        """The keys the ops name, in the order first named (their slots count from 1)."""
        return list(self._slots)

    @property
    def ops(self) -> list[str]:
        """Every part of every op, checks first: name, count, key slot, arguments."""
        return self._checks + self._writes

    @property
    def args(self) -> list[str]:
        parts = self._checks + self._writes
        text = SEPARATOR.join(parts)
        if text.count(SEPARATOR) != len(parts) - 1:
            text = _encode(parts)
        return [text]

    # Each op is name, count (the key's slot and the arguments), slot, arguments.
    # A dozen of them are said for every call, so each is spelled out.

    # -- what the answer carries, and the state the records must be in -------------
    def read(self, key: str, field: str) -> AtomicWrite:
        """Answer the field's value (as it was before the writes) after the status."""
        self._checks += ("R", "2", self._slots[key], field)
        return self

    def replay(self, key: str, field: str, token: str) -> AtomicWrite:
        """If the field holds ``token``, this very write ran before: answer "replayed"."""
        self._checks += ("T", "3", self._slots[key], field, token)
        return self

    def exists(self, key: str, code: str, message: str) -> AtomicWrite:
        self._checks += ("X", "3", self._slots[key], code, message)
        return self

    def absent(self, key: str, code: str, message: str) -> AtomicWrite:
        self._checks += ("N", "3", self._slots[key], code, message)
        return self

    def equals(
        self, key: str, field: str, value: str, code: str = CONFLICT, message: str = ""
    ) -> AtomicWrite:
        """The field must hold ``value`` ('' for a missing field)."""
        self._checks += ("E", "5", self._slots[key], field, value, code, message)
        return self

    def at_least(
        self, key: str, terms: Iterable[tuple[str, int]], least: int, code: str, message: str
    ) -> AtomicWrite:
        """The sum of ``coefficient * field`` over ``terms`` must be at least ``least``."""
        args = [str(least), code, message]
        for field, coefficient in terms:
            args += (field, str(coefficient))
        self._checks += ("G", _text(len(args) + 1), self._slots[key])
        self._checks += args
        return self

    # -- writes ------------------------------------------------------------------------
    def incr(self, key: str, field: str, delta: int) -> AtomicWrite:
        if delta:
            self._writes += ("I", "3", self._slots[key], field, str(delta))
        return self

    def hset(self, key: str, fields: Mapping[str, str] | Sequence[str]) -> AtomicWrite:
        """Set fields: flat name/value text pairs (as the store says them), or a mapping."""
        if type(fields) is not list and isinstance(fields, Mapping):
            pairs: list[str] = []
            for name, value in fields.items():
                pairs += (name, value)
            fields = pairs
        if fields:
            n = len(fields) + 1
            self._writes += ("H", _NUMBERS[n] if n < 64 else str(n), self._slots[key])
            self._writes += fields
        return self

    def sadd(self, key: str, member: str) -> AtomicWrite:
        self._writes += ("S", "2", self._slots[key], member)
        return self

    def srem(self, key: str, member: str) -> AtomicWrite:
        self._writes += ("D", "2", self._slots[key], member)
        return self

    def append(self, key: str, entry: str) -> AtomicWrite:
        """Add one ledger entry to a stream."""
        self._writes += ("A", "2", self._slots[key], entry)
        return self

    def set(self, key: str, value: str) -> AtomicWrite:
        self._writes += ("P", "2", self._slots[key], value)
        return self

    def expire(self, key: str, seconds: int) -> AtomicWrite:
        self._writes += ("Z", "2", self._slots[key], str(seconds))
        return self


def answer(result: Sequence[Any], what: str) -> list[Any]:
    """The script's answer when it applied (or replayed); the failed check raised otherwise."""
    status = result[0]
    if status == "ok":
        return list(result)
    if status == CONFLICT:
        raise PlanConflict(f"{what}: {result[1] or 'changed while it was planned'}")
    raise ERRORS.get(status, InvalidRequest)(f"{what}: {result[1]}")
