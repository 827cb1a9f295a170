"""What the flow takes of a real authorization (demo data, SQLite store): the grant the prompt
speaks, in Decimal dollars from integer units, and the funds it holds even once cancelled."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from accounts import Authorization, CallRequest
from api.runner import open_account_service
from callcontrol import outcomes
from callcontrol.flow import CallDetails, CallFlow, CallGrant, CallState
from settings.config import load_config

FACILITY = "tx-state-prison"
UNITS_PER_DOLLAR = Decimal(10_000)


async def _authorize(demo_config: Path, number: str, call_id: str) -> Authorization:
    service = await open_account_service(load_config(demo_config))
    try:
        result = await service.authorize(CallRequest(
            call_id=call_id, facility_id=FACILITY, pin="100001", dialled=number,
            at=datetime.now(UTC)))
    finally:
        await service.store.close()
    assert isinstance(result, Authorization), result
    return result


async def test_a_funded_call_grants_its_seconds_rate_and_price(demo_config: Path) -> None:
    auth = await _authorize(demo_config, "+15125550100", "grant-1")
    grant = CallGrant.from_authorization(auth, "es")
    quote = auth.max_quote
    assert quote is not None and quote.rate_units > 0
    assert grant.max_seconds == auth.max_seconds > 0
    assert grant.language == "es" and not grant.privileged
    assert grant.single_call_charge is None
    assert grant.rate_per_minute == Decimal(quote.rate_units) / UNITS_PER_DOLLAR
    assert grant.max_cost == Decimal(quote.total_units) / UNITS_PER_DOLLAR
    assert grant.max_cost.as_tuple().exponent == -2  # cents, as spoken


async def test_a_single_call_offers_its_charge(demo_config: Path) -> None:
    auth = await _authorize(demo_config, "+12125550100", "grant-2")
    assert auth.single_call_offer
    grant = CallGrant.from_authorization(auth, "en")
    assert grant.single_call_charge is not None and grant.single_call_charge > 0
    assert grant.single_call_charge == grant.max_cost


async def test_funds_held_for_a_call_cancelled_meanwhile_stay_with_it(demo_config: Path) -> None:
    auth = await _authorize(demo_config, "+15125550100", "grant-3")
    flow = CallFlow(FACILITY, 0.0)
    flow.call_requested(CallDetails("100001", "+15125550100"), 0.0)
    flow.caller_cancelled(0.5)
    assert flow.state is CallState.ENDED
    flow.funds_held(auth)  # its end must still release them
    assert flow.authorization is auth
    assert flow.ended is not None and flow.ended.outcome is outcomes.CANCELLED.outcome
