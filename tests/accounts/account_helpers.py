"""Facilities, numbers and times shared by the account-store contract tests."""

from __future__ import annotations

import asyncio
import functools
import inspect
from datetime import UTC, datetime
from typing import Any

from accounts import AccountStore, Book, FacilityPolicy, LedgerTransaction, Leg
from rating import (
    FacilityKind,
    FeeBasis,
    FeeCategory,
    Jurisdiction,
    Product,
    RatedFacility,
    Surcharge,
    Tariff,
    to_units,
)

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

TX_AC = "+15125550100"  # Texas: intrastate from tx
CA_DB = "+13105550100"  # California: interstate
NY_NONE = "+12125550100"  # New York: nobody pays
PRIVILEGED = "+15125550123"
BLOCKED = "+15125550199"


class Ids:
    """Predictable ids, so failures are readable; every fresh one gives the same ids in the
    same order, so services built with one each can be compared."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"id{self.n:05d}"


def card_deposit(account_id: str, units: int, key: str, *, memo: str = "") -> LedgerTransaction:
    """A card deposit of ``units`` into ``account_id`` at T0, to post straight to a store."""
    return LedgerTransaction(
        kind="deposit",
        at=T0,
        account_id=account_id,
        idempotency_key=key,
        legs=(Leg(Book.ACCOUNT, account_id, units), Leg(Book.FUNDS_IN, "card", -units)),
        memo=memo,
    )


def _rates(per_minute: str, single: str) -> dict[Product, dict[Jurisdiction, int]]:
    every = {j: to_units(per_minute) for j in Jurisdiction}
    rates = {p: dict(every) for p in (Product.ADVANCE_CONNECT, Product.DEBIT, Product.DIRECT_BILL)}
    rates[Product.SINGLE_CALL] = {j: to_units(single) for j in Jurisdiction}
    return rates


def make_facilities() -> dict[str, FacilityPolicy]:
    """Two facilities: ``tx`` (no extras, 20 min calls) and ``al`` (a tax, allowed lists)."""
    tx_tariff = Tariff(name="tx", increment_seconds=60, rates=_rates("0.06", "0.25"))
    al_tariff = Tariff(
        name="al",
        increment_seconds=60,
        rates=_rates("0.21", "0.50"),
        surcharges=(
            Surcharge(
                name="state tax",
                category=FeeCategory.MANDATORY_TAX,
                basis=FeeBasis.PERCENT,
                value=100_000,  # 10 %
            ),
        ),
    )
    tx = RatedFacility(
        id="tx",
        name="TX State Prison",
        kind=FacilityKind.PRISON,
        state="TX",
        average_daily_population=5000,
        tariff=tx_tariff,
        max_call_seconds=1200,
    )
    al = RatedFacility(
        id="al",
        name="AL County Jail",
        kind=FacilityKind.JAIL,
        state="AL",
        average_daily_population=45,
        tariff=al_tariff,
        max_call_seconds=900,
    )
    return {
        "tx": FacilityPolicy(id="tx", rated=tx, max_call_seconds=1200, refund_window_days=365),
        "al": FacilityPolicy(
            id="al",
            rated=al,
            max_call_seconds=900,
            refund_window_days=180,
            allowed_list_required=True,
        ),
    }


class Interleaved:
    """A real store whose every call first yields to the event loop.

    An embedded store answers without suspending, so concurrent coroutines
    would never interleave between a balance read and a hold; this forces
    them to, so races the service must survive actually happen.
    """

    def __init__(self, store: AccountStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not inspect.iscoroutinefunction(target):
            return target

        @functools.wraps(target)
        async def interleaved(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await target(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return interleaved
