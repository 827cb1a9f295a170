"""One pipelined connection to a standalone Redis that every call of the real-time path shares.

A call's hold and settlement are one or two round trips each; what costs is
the client around them. This connection packs commands itself, parses replies
with hiredis, and writes everything the node's concurrent calls asked for in
one event-loop turn as one write, so Redis reads several calls' commands at
once. Replies come back in order, so each request is a place in a queue: no
connection pool, no per-command timeout objects.

Failures look like redis-py's, so the store handles both clients alike:
``ConnectionError`` when Redis cannot be reached or the connection drops
(every request in flight is sent once more on a new connection, then fails),
``TimeoutError`` when the oldest request has waited ``timeout`` seconds (the
connection is dropped: a late reply could otherwise answer the wrong request),
and an error reply comes back as a ``ResponseError`` value in its place
(``NoScriptError`` when Redis does not know a script).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[object]


def _error(reply: hiredis.ReplyError) -> ResponseError:
    text = str(reply)
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text)
    return ResponseError(text)


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings, the only form Redis needs from a client."""
    parts: list[str] = []
    append = parts.append
    for command in commands:
        append(f"*{len(command)}\r\n")
        for arg in command:
            text = arg if type(arg) is str else str(arg)
            append(f"${len(text)}\r\n{text}\r\n")
    text = "".join(parts)
    data = text.encode()
    if len(data) == len(text):
        return data
    # Some text is not ASCII: a bulk string's length counts bytes, not characters.
    return b"".join(_pack_bytes(command) for command in commands)


def _pack_bytes(command: Command) -> bytes:
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = (arg if type(arg) is str else str(arg)).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass
class _Request:
    future: asyncio.Future[list[Any]]
    count: int
    deadline: float
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.reader = hiredis.Reader(encoding="utf-8")

    def data_received(self, data: bytes) -> None:
        lane = self.lane
        self.reader.feed(data)
        # Stop as soon as the lane drops this connection (a reply out of turn).
        while lane._protocol is self:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                lane._fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            lane._reply(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane._lost(self, exc)


class Lane:
    """A shared, lazily (re)connected, pipelined connection to one Redis server."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._pending: collections.deque[_Request] = collections.deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Requests made and writes sent (several requests of one loop turn share a write).
        self.requests = 0
        self.writes = 0

    @classmethod
    def for_client(cls, client: Any, *, connect_timeout: float, timeout: float) -> Lane | None:
        """A lane to the server a redis-py ``Redis`` client talks to; None where one
        cannot stand in for it (TLS, or a connection class of its own)."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        kind = pool.connection_class.__name__
        common = {
            "db": int(kwargs.get("db") or 0),
            "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "connect_timeout": connect_timeout,
            "timeout": timeout,
        }
        if kind == "Connection":
            return cls(host=kwargs.get("host", "localhost"), port=int(kwargs.get("port", 6379)),
                       **common)  # fmt: skip
        if kind == "UnixDomainSocketConnection":
            return cls(path=kwargs["path"], **common)
        return None

    # -- connection ---------------------------------------------------------------------
    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self)
        try:
            if self.path is not None:
                opening = loop.create_unix_connection(lambda: protocol, self.path)
            else:
                opening = loop.create_connection(lambda: protocol, self.host, self.port)
            transport, _ = await asyncio.wait_for(opening, self.connect_timeout)
        except (TimeoutError, OSError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        self._transport, self._protocol = transport, protocol
        hello: list[Command] = []
        if self.password:
            auth: list[object] = ["AUTH", self.password]
            if self.username:
                auth.insert(1, self.username)
            hello.append(auth)
        if self.db:
            hello.append(["SELECT", self.db])
        if hello:
            for reply in await self._send(hello):
                if isinstance(reply, ResponseError):
                    self._fail(RedisConnectionError(f"Redis refused the connection: {reply}"))
                    raise RedisConnectionError(f"Redis refused the connection: {reply}")

    async def _ready(self) -> None:
        """Connect, or wait for the attempt under way and share its outcome."""
        if self._transport is not None:
            return
        if self._closed:
            raise RedisConnectionError("the connection is closed")
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        connecting = self._connecting = asyncio.get_running_loop().create_future()
        try:
            await self._connect()
        except BaseException as exc:
            if not isinstance(exc, RedisError):
                exc = RedisConnectionError(f"connecting to Redis was given up: {exc!r}")
            connecting.set_exception(exc)
            # Those waiting on this attempt see the error; nobody else must.
            connecting.exception()
            raise
        else:
            connecting.set_result(None)
        finally:
            self._connecting = None

    def close(self) -> None:
        self._closed = True
        self._fail(RedisConnectionError("the connection is closed"))

    # -- requests -----------------------------------------------------------------------
    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one go and return their replies (errors as values).

        A request that meets a dropped connection is sent once more on a new one
        (a server restart is noticed only then): everything the store sends may be
        repeated, its scripts carry tokens that make a repeat answer as the first.
        """
        try:
            if self._transport is None:
                await self._ready()
            return await self._send(commands)
        except RedisConnectionError:
            if self._closed:
                raise
            await self._ready()
            return await self._send(commands)

    def _send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        deadline = loop.time() + self.timeout
        self._pending.append(_Request(future, len(commands), deadline))
        self.requests += 1
        self._out.append(pack(commands))
        if not self._flush_scheduled:
            # Everything asked for in this turn of the loop leaves in one write.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        if self._transport is None:
            self._fail(RedisConnectionError("the connection to Redis was lost"))
            return
        self._transport.write(data)
        self.writes += 1

    def _reply(self, reply: Any) -> None:
        if not self._pending:
            self._fail(RedisConnectionError("Redis sent a reply nobody asked for"))
            return
        request = self._pending[0]
        # Only a reply as a whole can be an error: the lane sends no MULTI/EXEC.
        request.replies.append(_error(reply) if type(reply) is hiredis.ReplyError else reply)
        if len(request.replies) == request.count:
            self._pending.popleft()
            if not request.future.done():
                request.future.set_result(request.replies)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        oldest = self._pending[0].deadline
        if loop.time() >= oldest:
            self._fail(RedisTimeoutError(f"no answer from Redis within {self.timeout} s"))
        else:
            self._timer = loop.call_at(oldest, self._check_deadline)

    def _fail(self, exc: Exception) -> None:
        """Drop the connection and fail every request in flight with ``exc``."""
        transport, self._transport, self._protocol = self._transport, None, None
        self._out.clear()
        if transport is not None:
            transport.abort()
        pending, self._pending = self._pending, collections.deque()
        for request in pending:
            if not request.future.done():
                # One exception object per waiter: each raise adds to its traceback.
                request.future.set_exception(type(exc)(*exc.args))
                # A caller that gave up on the request must not leave an unread error.
                request.future.exception()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._fail(RedisConnectionError(f"the connection to Redis was lost: {exc}"))
