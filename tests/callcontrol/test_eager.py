"""Coroutines started at once in the caller's turn of the loop (callcontrol.eager)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from callcontrol.eager import start_eagerly

order: list[str] = []


def test_a_coroutine_that_never_suspends_is_done_on_return() -> None:
    async def quick() -> int:
        order.append("ran")
        return 7

    async def main() -> None:
        order.clear()
        fut = start_eagerly(quick())
        order.append("returned")
        assert fut.done() and fut.result() == 7
        assert order == ["ran", "returned"]

    asyncio.run(main())


def test_it_runs_before_the_next_turn_and_resumes_after_a_suspension() -> None:
    async def two_steps(gate: asyncio.Future[str]) -> str:
        order.append("first step")
        value = await gate
        order.append(f"second step {value}")
        await asyncio.sleep(0)  # a bare yield is a suspension too
        return value.upper()

    async def main() -> None:
        order.clear()
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[str] = loop.create_future()
        loop.call_soon(order.append, "next turn")
        fut = start_eagerly(two_steps(gate))
        assert order == ["first step"] and not fut.done()
        await asyncio.sleep(0)
        assert order == ["first step", "next turn"] and not fut.done()
        gate.set_result("go")
        await asyncio.sleep(0)  # resumed within one turn of the loop, as a task is
        assert order[-1] == "second step go"
        assert await fut == "GO"

    asyncio.run(main())


def test_errors_before_and_after_suspending_reach_the_future() -> None:
    async def fails_at_once() -> None:
        raise ValueError("at once")

    async def fails_later(gate: asyncio.Future[None]) -> None:
        await gate
        raise KeyError("later")

    async def main() -> None:
        fut = start_eagerly(fails_at_once())
        with pytest.raises(ValueError, match="at once"):
            await fut
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        later = start_eagerly(fails_later(gate))
        gate.set_result(None)
        with pytest.raises(KeyError, match="later"):
            await later
        # An exception thrown into the awaited future reaches the coroutine where it awaits.
        caught: list[str] = []

        async def catches(g: asyncio.Future[None]) -> str:
            try:
                await g
            except OSError as exc:
                caught.append(str(exc))
                return "handled"
            return "not reached"

        g2: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handled = start_eagerly(catches(g2))
        g2.set_exception(OSError("disk"))
        assert await handled == "handled" and caught == ["disk"]

    asyncio.run(main())


def test_cancelling_while_suspended_cancels_what_it_awaits() -> None:
    async def waits(inner: asyncio.Future[None], cleanup: list[str]) -> None:
        try:
            await inner
        finally:
            cleanup.append("cleaned")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        inner: asyncio.Future[None] = loop.create_future()
        cleanup: list[str] = []
        fut = start_eagerly(waits(inner, cleanup))
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert inner.cancelled() and cleanup == ["cleaned"]

    asyncio.run(main())


def test_cancelling_while_awaiting_a_task_waits_for_that_task_to_end() -> None:
    async def child(log: list[str]) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            log.append("child ended")

    async def parent(log: list[str]) -> None:
        try:
            await asyncio.get_running_loop().create_task(child(log))
        finally:
            log.append("parent ended")

    async def main() -> None:
        log: list[str] = []
        fut = start_eagerly(parent(log))
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert log == ["child ended", "parent ended"]

    asyncio.run(main())


def test_the_first_step_sees_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def reads() -> str:
        return var.get()

    async def main() -> None:
        var.set("caller")
        assert await start_eagerly(reads()) == "caller"

    asyncio.run(main())
