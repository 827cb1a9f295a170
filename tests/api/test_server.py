"""Listen addresses and the uvicorn server the controller runs in its own loop."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api import create_app, make_server, parse_listen
from tests.api.conftest import free_port


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("[::1]:9000", ("::1", 9000)),
    ("localhost:0", ("localhost", 0)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "127.0.0.1:", "127.0.0.1:http",
                                  "127.0.0.1:70000"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="listen"):
        parse_listen(text)


async def test_server_runs_as_a_task_and_stops_on_request(config: Any) -> None:
    port = free_port()
    server = make_server(create_app(config), "127.0.0.1", port, handle_signals=False)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/healthz")
        assert r.status_code == 200
        assert "server" not in r.headers  # no product banner
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None
