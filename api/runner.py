"""`ics api`: the HTTP service on its own, with the configured account store."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from accounts import AccountService, AccountStore
from api.app import create_app
from api.metrics import Metrics
from api.server import make_server, parse_listen


def demo_seed_path(config: Any) -> Path:
    """The seed file loaded into a fresh store: ``seed/demo.toml`` beside the config."""
    return Path(config.path).parent / "seed" / "demo.toml"


async def open_account_service(
    config: Any, *, seed: bool = True, store: AccountStore | None = None,
    metrics: Metrics | None = None,
) -> AccountService:
    """The account service over the configured store (or ``store``), seeded if fresh.

    With ``metrics``, each time a Redis store cannot be reached it counts in
    ``ics_store_errors_total{store="redis"}``.
    """
    from accounts import (
        AccountsPolicy,
        FacilityPolicy,
        RedisAccountStore,
        SqliteAccountStore,
        seed_if_empty,
    )

    if store is None and config.store.kind == "sqlite":
        store = SqliteAccountStore(config.store.path)
    elif store is None:
        on_unavailable = (lambda op: metrics.store_error("redis", op)) if metrics else None
        store = RedisAccountStore.from_config(config.store, on_unavailable=on_unavailable)
    await store.open()
    if seed and demo_seed_path(config).exists():
        await seed_if_empty(store, demo_seed_path(config))
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    return AccountService(store, facilities, AccountsPolicy.from_config(config.accounts))


async def run_standalone(config_path: str | Path, *, listen: str | None = None) -> int:
    from settings.config import load_config

    config = load_config(Path(config_path))
    host, port = parse_listen(listen or config.http.listen)
    metrics = Metrics()
    service = await open_account_service(config, metrics=metrics)

    async def store_ready() -> bool:
        await service.store.is_empty()
        return True

    app = create_app(config, service, metrics=metrics, readiness={"store": store_ready})
    server = make_server(app, host, port, handle_signals=False)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C or a service manager's TERM: finish in-flight requests, then stop.
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    print(f"ics api: serving http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr)
    alerts = app.state.family_alerts
    alert_task = None if alerts is None else loop.create_task(
        alerts.run_forever())
    try:
        await server.serve()
    finally:
        if alert_task is not None:
            alert_task.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await service.store.close()
    if not server.started:
        raise OSError(f"could not listen on {host}:{port}")
    return 0
