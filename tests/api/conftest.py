"""Fixtures: the demo config with extra tokens, a real SQLite store seeded with demo
data, and the app served in-process over ASGI (or on a loopback port for browsers)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from accounts import SqliteAccountStore, seed_if_empty
from api import Metrics, create_app
from api.runner import demo_seed_path, open_account_service
from settings.config import AdminToken, ServiceConfig, load_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "configs" / "demo.toml"

ADMIN = "demo-admin-token"
FINANCE = "finance-token-1234"
TX_FACILITY = "tx-facility-token"
AL_FACILITY = "al-facility-token"

#: The app's clock in tests: a fixed instant, so quotes and ledger times are stable.
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def config() -> ServiceConfig:
    base = load_config(DEMO_CONFIG)
    tokens = [
        *base.admin_tokens,
        AdminToken(token=FINANCE, role="finance"),
        AdminToken(token=TX_FACILITY, role="facility", facilities=["tx-state-prison"]),
        AdminToken(token=AL_FACILITY, role="facility", facilities=["al-county-jail"]),
    ]
    return base.model_copy(update={"admin_tokens": tokens})


@pytest.fixture
async def service(config: ServiceConfig, tmp_path: Path) -> AsyncIterator[Any]:
    store = SqliteAccountStore(tmp_path / "accounts.sqlite3", synchronous="NORMAL")
    await store.open()
    # Seeded at the tests' clock so that statements and windows line up with NOW.
    await seed_if_empty(store, demo_seed_path(config), at=NOW)
    svc = await open_account_service(config, store=store)
    try:
        yield svc
    finally:
        await store.close()


class RecordingLiveCalls:
    """An in-memory call table implementing the controller's side of ``LiveCalls``."""

    def __init__(self, calls: list[Any]) -> None:
        self.calls = list(calls)
        self.hung_up: list[tuple[str, str]] = []

    def list_calls(self) -> list[Any]:
        return list(self.calls)

    async def hang_up(self, call_id: str, reason: str) -> bool:
        for call in self.calls:
            if call.call_id == call_id:
                self.calls.remove(call)
                self.hung_up.append((call_id, reason))
                return True
        return False


@pytest.fixture
def live_calls() -> RecordingLiveCalls:
    from callcontrol.live import LiveCall

    return RecordingLiveCalls([
        LiveCall(call_id="call-tx-1", facility="tx-state-prison", pin="100001",
                 number="+15125550100", state="connected",
                 started_at=datetime(2026, 3, 10, 15, 0, tzinfo=UTC),
                 product="advance_connect",
                 answered_at=datetime(2026, 3, 10, 15, 0, 20, tzinfo=UTC),
                 max_seconds=1200),
        LiveCall(call_id="call-al-1", facility="al-county-jail", pin="200001",
                 number="+13105550100", state="prompting",
                 started_at=datetime(2026, 3, 10, 15, 1, tzinfo=UTC)),
    ])


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(config: ServiceConfig, service: Any, live_calls: RecordingLiveCalls,
        metrics: Metrics) -> Any:
    return create_app(config, service, live_calls, metrics, clock=lambda: NOW,
                      readiness={"store": lambda: True, "sip": lambda: True})


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """A real uvicorn server on a loopback port, in a thread with its own loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            http="httptools"))
        self.server.capture_signals = _no_signals  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _no_signals() -> Any:
    import contextlib

    return contextlib.nullcontext()


@pytest.fixture
def served_app(config: ServiceConfig, tmp_path: Path) -> Iterator[ThreadedServer]:
    """The app with its own store, on a real port (its loop is the server thread's)."""
    import asyncio

    store = SqliteAccountStore(tmp_path / "served.sqlite3", synchronous="NORMAL")
    svc = asyncio.run(open_account_service(config, store=store))
    app = create_app(config, svc, clock=lambda: NOW)
    with ThreadedServer(app) as server:
        yield server
    asyncio.run(store.close())
