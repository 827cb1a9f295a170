"""Group commit for the SQLite store: writes made in one loop turn share one COMMIT.

The first write of an event loop turn runs at once, in its own transaction:
a call set up on a quiet controller waits for nothing; so does an urgent
write (a caller waits on it: the hold that lets a call be placed), which is
never kept for a group: it takes the writes already waiting with it. Any
further write in the same turn is queued and run at the start of the next
turn, together with every other write queued meanwhile, as ONE transaction,
then a single COMMIT for all of them. Each write is still atomic on its own:
should one fail, the transaction is rolled back and the group run again with
each write inside its own SAVEPOINT (the one that fails is rolled back alone,
the others stand); groups where none fails, nearly all, pay for no
savepoints. No write is reported done before the COMMIT that makes it
durable has returned, so a caller never acts on a write that a crash could
still undo; if that COMMIT fails, every write of the group fails and nothing
is kept.

With many calls in progress (a busy controller, the API), the commit's log
frames, lock calls and (with ``synchronous=FULL``) fsync are shared by every
write that was waiting. Transactions stay strictly serial: one connection,
``BEGIN IMMEDIATE``, all on the event loop's thread. (A writer thread was
measured and rejected: CPython's GIL hand-offs cost more than the
statements.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from accounts.errors import InvalidRequest, StoreUnavailable

T = TypeVar("T")

#: A write: runs inside a transaction on the store's connection, returns its result.
Body = Callable[[sqlite3.Connection], Any]

#: At most this many writes share one COMMIT (bounds one transaction's length).
MAX_BATCH = 256


class _Job:
    __slots__ = ("body", "future", "ok", "raw", "result")

    def __init__(self, body: Body, future: asyncio.Future[Any], raw: bool) -> None:
        self.body = body
        self.future = future
        #: Run outside any transaction (connection settings, checkpoints).
        self.raw = raw
        self.ok = False
        self.result: Any = None

    def deliver(self) -> None:
        if self.future.done():
            return  # the waiter is gone (its loop is closing); the write stands
        if self.ok:
            self.future.set_result(self.result)
        else:
            self.future.set_exception(self.result)


def translate(exc: BaseException) -> BaseException:
    """The store error a failed write reports (SQLite errors become store errors)."""
    if isinstance(exc, sqlite3.IntegrityError):
        error: BaseException = InvalidRequest(f"rejected by the account store: {exc}")
    elif isinstance(exc, sqlite3.Error):
        error = StoreUnavailable(f"account store error: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error


class GroupWriter:
    """The write queue of one store connection: ``await writer.write(body)`` runs ``body(db)``.

    ``after_commit(db)`` runs after each successful COMMIT (the store's log
    maintenance).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        after_commit: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.db = db
        self._after_commit = after_commit
        self._queue: list[_Job] = []
        self._scheduled = False
        #: A write already ran at once in this loop turn: the next ones are grouped.
        self._turn_used = False
        #: Transactions committed and writes done (for benchmarks and tests).
        self.commits = 0
        self.writes = 0

    async def write(self, body: Callable[[sqlite3.Connection], T], *, urgent: bool = False) -> T:
        """Run ``body(db)`` as one atomic write, durable when this returns.

        ``urgent``: run it now, alone, even when other writes wait for a group:
        a loop turn on a busy controller can last tens of milliseconds, far
        longer than the commit that waiting would share.
        """
        return await self._submit(body, raw=False, urgent=urgent)

    async def call(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body(db)`` outside any transaction, in turn with the queued writes."""
        return await self._submit(body, raw=True)

    async def _submit(
        self, body: Callable[[sqlite3.Connection], T], *, raw: bool, urgent: bool = False
    ) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(body, future, raw)
        if not self._turn_used and (urgent or not (raw or self._queue)):
            self._turn_used = True
            loop.call_soon(self._next_turn)
        elif not urgent:
            self._queue.append(job)
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self.flush)
            # A caller cancelled before its turn leaves nothing written (see ``flush``).
            return await future
        if self._queue:
            # Urgent: what waits for the next group goes now, in the same commit.
            self._queue.append(job)
            self.flush()
        else:
            # Nothing waiting and nothing written yet this turn: commit it now.
            self._run_batch([job])
        return future.result()

    def _next_turn(self) -> None:
        self._turn_used = False

    def flush(self) -> None:
        """Run everything queued, in order: consecutive writes as one transaction each group."""
        self._scheduled = False
        # Writes whose caller was cancelled while they waited are not run at all.
        queue = [job for job in self._queue if not job.future.cancelled()]
        self._queue = []
        start = 0
        while start < len(queue):
            job = queue[start]
            if job.raw:
                self._run_raw(job)
                start += 1
                continue
            end = start + 1
            while end < len(queue) and end - start < MAX_BATCH and not queue[end].raw:
                end += 1
            self._run_batch(queue[start:end])
            start = end

    def _run_raw(self, job: _Job) -> None:
        try:
            job.result = job.body(self.db)
            job.ok = True
        except BaseException as exc:
            job.result = translate(exc)
        job.deliver()

    def _begin(self, batch: list[_Job]) -> bool:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail(batch, StoreUnavailable(f"account store busy or unavailable: {exc}"))
            return False
        return True

    def _run_together(self, batch: list[_Job]) -> bool:
        """Run every write of the group with no savepoints; False as soon as one fails.

        Savepoints cost as much as a statement each and a copy of every page
        first changed under them; almost every group succeeds whole, so it is
        run without them first. Should one write fail, the caller rolls the
        whole transaction back and runs the group again, each write in its
        own savepoint. (A write body only reads and writes the database, so
        running it twice does nothing twice.)
        """
        db = self.db
        for job in batch:
            try:
                job.result = job.body(db)
            except BaseException:
                return False
            job.ok = True
        return True

    def _run_batch(self, batch: list[_Job]) -> None:
        db = self.db
        if not self._begin(batch):
            return
        if len(batch) == 1:
            # Alone in its transaction: no savepoint needed.
            job = batch[0]
            try:
                job.result = job.body(db)
                job.ok = True
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                job.result = translate(exc)
                job.deliver()
                return
        elif not self._run_together(batch):
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            for job in batch:
                job.ok = False
                job.result = None
            if not self._begin(batch):
                return
            for job in batch:
                try:
                    db.execute("SAVEPOINT write")
                    try:
                        job.result = job.body(db)
                        job.ok = True
                    except BaseException as exc:
                        job.result = translate(exc)
                        db.execute("ROLLBACK TO write")
                    db.execute("RELEASE write")
                except sqlite3.Error as exc:
                    # The group cannot be trusted any more: none of it is kept.
                    self._abort(batch, f"account store error: {exc}")
                    return
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort(batch, f"commit failed: {exc}")
            return
        self.commits += 1
        self.writes += len(batch)
        for job in batch:
            job.deliver()
        if self._after_commit is not None:
            self._after_commit(db)

    def _abort(self, batch: list[_Job], message: str) -> None:
        """Roll the whole transaction back; every write of the group fails."""
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("ROLLBACK")
        self._fail(batch, StoreUnavailable(message))

    @staticmethod
    def _fail(batch: list[_Job], error: BaseException) -> None:
        for job in batch:
            job.ok = False
            job.result = error
            job.deliver()
