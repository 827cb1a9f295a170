"""The demo facilities with one funded AdvanceConnect account, for the service on a Redis store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from accounts import (
    AccountService,
    AccountsPolicy,
    AccountStore,
    CallRequest,
    FacilityPolicy,
    Person,
)
from settings.config import load_config

ROOT = Path(__file__).resolve().parents[2]
FACILITY = "tx-state-prison"
NUMBER = "+15125550100"
AT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)  # a Tuesday, inside calling hours


async def funded_service(store: AccountStore) -> AccountService:
    """A service over the demo facilities on the opened ``store``, with person 100001 at
    ``FACILITY`` and AdvanceConnect account ac1 for ``NUMBER`` holding $10.00."""
    config = load_config(ROOT / "configs" / "demo.toml")
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    svc = AccountService(store, facilities, AccountsPolicy())
    await store.add_person(Person(facility_id=FACILITY, pin="100001"))
    await svc.open_advance_connect([NUMBER], AT, account_id="ac1")
    await svc.deposit("ac1", "10.00", method="card", idempotency_key="dep-1", at=AT)
    return svc


def request(call_id: str) -> CallRequest:
    """Person 100001 at ``FACILITY`` calling ``NUMBER`` at ``AT``."""
    return CallRequest(call_id=call_id, facility_id=FACILITY, pin="100001", dialled=NUMBER, at=AT)
