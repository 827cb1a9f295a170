"""What every request handler can reach: config, stores, controller, metrics."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from accounts import AccountService
from api.auth import TokenRegistry
from api.errors import Unavailable
from api.live_calls import LiveCalls
from api.metrics import Metrics

#: A readiness check: true when the thing it watches can serve.
ReadinessCheck = Callable[[], bool | Awaitable[bool]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    config: Any
    metrics: Metrics
    tokens: TokenRegistry
    accounts: AccountService | None = None
    live_calls: LiveCalls | None = None
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now

    def require_accounts(self) -> AccountService:
        if self.accounts is None:
            raise Unavailable("the account store is not configured on this node")
        return self.accounts

    def require_live_calls(self) -> LiveCalls:
        if self.live_calls is None:
            raise Unavailable("no call controller runs on this node")
        return self.live_calls

    async def check_readiness(self) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for name, check in self.readiness.items():
            try:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                results[name] = bool(value)
            except Exception:
                # A failing check means "not ready", never a crashed probe.
                results[name] = False
        return results


async def get_context(request: Request) -> ServiceContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool,
    # which costs more than the quote itself.
    ctx: ServiceContext = request.app.state.context
    return ctx
