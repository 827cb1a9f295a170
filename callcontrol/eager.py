"""Start a coroutine at once, in the caller's turn of the event loop, as an eager task does.

A new task's first step waits for the next turn of the loop, and while the
loop carries a thousand calls a turn lasts milliseconds to tens of them. A
call's path from the facility's INVITE to the carrier's (screening, the
payer's hold, a media port bound ahead) usually completes without
suspending, so running it at once takes that wait out of the post-dial
delay. Python 3.12 has this built in (``Task(..., eager_start=True)``); on
3.11 the first step is taken here and, if the coroutine suspends, a task
drives the rest with a task's semantics: it resumes when the awaited future
is done, and cancelling it cancels what the coroutine waits on.

The first step runs in the caller's context (``contextvars``), not a copy.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro`` now up to its first suspension; a future of its result.

    An exception raised before the first suspension is set on the returned
    future, as a task would (``KeyboardInterrupt`` and ``SystemExit``
    propagate).
    """
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        failed: asyncio.Future[T] = loop.create_future()
        if isinstance(exc, asyncio.CancelledError):
            failed.cancel()
        else:
            failed.set_exception(exc)
        return failed
    return loop.create_task(_drive(coro, waiting))


async def _drive(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """The rest of a coroutine that suspended on ``waiting`` (a future, or None for a
    bare yield), step by step as a task would take it."""
    while True:
        error: BaseException | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            elif not asyncio.isfuture(waiting):
                error = RuntimeError(f"coroutine yielded {waiting!r}, not a future")
            else:
                waiting._asyncio_future_blocking = False
                # Awaited here, cancelling this task cancels it, as for a task's own
                # await; its outcome is the coroutine's to read where it awaits.
                await waiting
        except asyncio.CancelledError as exc:
            if waiting is None or not waiting.cancelled():
                error = exc  # cancelled with nothing left to cancel: thrown in
        except Exception:  # noqa: S110 - re-raised in the coroutine by its own await
            pass
        try:
            waiting = coro.throw(error) if error is not None else coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
