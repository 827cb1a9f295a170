"""Running the app on uvicorn inside an asyncio loop that may also run SIP."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


def parse_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8080' or '[::1]:8080' -> (host, port); ValueError naming the problem."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"http listen address must be HOST:PORT, not {listen!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"http listen port out of range: {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class _QuietServer(uvicorn.Server):
    """A server that leaves SIGINT/SIGTERM to the owner of the event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_server(
    app: FastAPI, host: str, port: int, *, handle_signals: bool = True, access_log: bool = False
) -> uvicorn.Server:
    """A uvicorn server to ``await server.serve()`` in the caller's event loop.

    With ``handle_signals=False`` (``ics serve``, which stops SIP and HTTP
    together) uvicorn installs no signal handlers: set ``server.should_exit =
    True`` to stop it gracefully.
    """
    config = uvicorn.Config(
        app, host=host, port=port, http="httptools", lifespan="off",
        access_log=access_log, log_level="warning", server_header=False,
    )
    return uvicorn.Server(config) if handle_signals else _QuietServer(config)
