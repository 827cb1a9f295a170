"""Every admin operation: no token or a wrong token is 401, a wrong role or another
facility is 403, and in every such case nothing changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from accounts import Restriction
from api.schemas import restriction_id
from tests.api.conftest import AL_FACILITY, FINANCE, NOW, TX_FACILITY, auth

#: A restriction person 100002 has during these tests, so that lifting it is real.
STANDING_RESTRICTION = Restriction("suspension", None, "matrix")

#: A request per admin operation that would succeed with the admin token.
DEPOSIT = {"amount": "5.00", "method": "card", "idempotency_key": "matrix-dep"}
SUBSCRIPTION = {"number": "+15125550100", "facility": "tx-state-prison",
                "starts_at": "2026-03-10T00:00:00Z", "ends_at": "2026-04-09T00:00:00Z",
                "price": "5.00", "minutes": 100, "method": "card", "idempotency_key": "m-sub"}
OPERATIONS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, str] | None]] = {
    "create_account": ("POST", "/v1/accounts",
                       {"product": "advance_connect", "numbers": ["+17375550100"]}, None),
    "list_accounts": ("GET", "/v1/accounts", None, None),
    "get_account": ("GET", "/v1/accounts/ac-15125550100", None, None),
    "deposit": ("POST", "/v1/accounts/ac-15125550100/deposits", DEPOSIT, None),
    "payment": ("POST", "/v1/accounts/db-13105550100/payments", DEPOSIT, None),
    "refund": ("POST", "/v1/accounts/ac-15125550100/refunds", {"reason": "x"}, None),
    "closure": ("POST", "/v1/accounts/ac-15125550100/closure", None, None),
    "statement": ("GET", "/v1/accounts/ac-15125550100/statements/2026/3", None, None),
    "standing": ("GET", "/v1/accounts/db-13105550100/standing", None, None),
    "family_setup_code": ("POST", "/v1/accounts/ac-15125550100/family-setup-code", None, None),
    "list_refunds": ("GET", "/v1/refunds", None, None),
    "get_refund": ("GET", "/v1/refunds/r1", None, None),
    "approve_refund": ("POST", "/v1/refunds/r1/approve", None, None),
    "deny_refund": ("POST", "/v1/refunds/r1/deny", None, None),
    "refund_paid": ("POST", "/v1/refunds/r1/paid", None, None),
    "list_single_calls": ("GET", "/v1/single-calls", None, None),
    "confirm_single_call": ("POST", "/v1/single-calls/s1/confirm", {"method": "card"}, None),
    "fail_single_call": ("POST", "/v1/single-calls/s1/fail", None, None),
    "buy_subscription": ("POST", "/v1/subscriptions", SUBSCRIPTION, None),
    "list_subscriptions": ("GET", "/v1/subscriptions", None, None),
    "get_subscription": ("GET", "/v1/subscriptions/x1", None, None),
    "list_people": ("GET", "/v1/facilities/tx-state-prison/people", None, None),
    "add_person": ("POST", "/v1/facilities/tx-state-prison/people", {"pin": "555555"}, None),
    "get_person": ("GET", "/v1/facilities/tx-state-prison/people/100001", None, None),
    "set_language": ("PUT", "/v1/facilities/tx-state-prison/people/100001/language",
                     {"language": "es"}, None),
    "allow_number": ("PUT",
                     "/v1/facilities/tx-state-prison/people/100001/allowed-numbers/+15125550100",
                     None, None),
    "disallow_number": ("DELETE",
                        "/v1/facilities/tx-state-prison/people/100001/allowed-numbers/"
                        "+15125550100", None, None),
    "release_person": ("POST", "/v1/facilities/tx-state-prison/people/100001/release", None,
                       None),
    "list_restrictions": ("GET", "/v1/facilities/tx-state-prison/people/100001/restrictions",
                          None, None),
    "add_restriction": ("POST", "/v1/facilities/tx-state-prison/people/100001/restrictions",
                        {"kind": "suspension", "until": "2026-04-01T00:00:00Z"}, None),
    "lift_restriction": ("DELETE", "/v1/facilities/tx-state-prison/people/100002/restrictions/"
                         + restriction_id(STANDING_RESTRICTION), None, None),
    "list_station_locks": ("GET", "/v1/facilities/tx-state-prison/station-locks", None, None),
    "clear_station_lock": ("DELETE", "/v1/facilities/tx-state-prison/station-locks/4001", None,
                           None),
    "list_blocks": ("GET", "/v1/facilities/tx-state-prison/blocks", None, None),
    "add_block": ("POST", "/v1/facilities/tx-state-prison/blocks", {"number": "+15125550177"},
                  None),
    "remove_block": ("DELETE", "/v1/facilities/tx-state-prison/blocks", None,
                     {"number": "+15125550199"}),
    "list_privileged": ("GET", "/v1/privileged-numbers", None, None),
    "add_privileged": ("PUT", "/v1/privileged-numbers/+12145550100", {"note": "x"}, None),
    "remove_privileged": ("DELETE", "/v1/privileged-numbers/+15125550123", None, None),
    "list_self_blocks": ("GET", "/v1/numbers/+15125550100/self-blocks", None, None),
    "add_self_block": ("PUT", "/v1/numbers/+15125550100/self-blocks",
                       {"facility": "tx-state-prison"}, None),
    "remove_self_block": ("DELETE", "/v1/numbers/+15125550100/self-blocks", None, None),
    "list_cdrs": ("GET", "/v1/cdrs", None, None),
    "export_cdrs": ("GET", "/v1/cdrs.csv", None, None),
    "get_cdr": ("GET", "/v1/cdrs/c1", None, None),
    "list_calls": ("GET", "/v1/calls", None, None),
    "hang_up": ("POST", "/v1/calls/call-tx-1/hang-up", {"reason": "x"}, None),
}

MONEY = ["create_account", "list_accounts", "get_account", "deposit", "payment", "refund",
         "closure", "statement", "standing", "family_setup_code", "list_refunds", "get_refund",
         "approve_refund",
         "deny_refund", "refund_paid", "list_single_calls", "confirm_single_call",
         "fail_single_call", "buy_subscription", "list_subscriptions", "get_subscription"]
SCREENING_WRITES = ["add_person", "set_language", "allow_number", "disallow_number",
                    "release_person", "add_block", "remove_block", "add_restriction",
                    "lift_restriction", "clear_station_lock"]
TX_SCREENING = ["list_people", "get_person", "list_restrictions", "list_blocks",
                "list_station_locks",
                *SCREENING_WRITES]

#: (token, operation) pairs that must be refused with 403.
FORBIDDEN: list[tuple[str, str]] = [
    *[(TX_FACILITY, op) for op in MONEY],
    *[(TX_FACILITY, op) for op in ("add_privileged", "remove_privileged", "hang_up",
                                   "list_self_blocks", "add_self_block", "remove_self_block")],
    # A facility token acting on another facility's screening data.
    *[(AL_FACILITY, op) for op in TX_SCREENING],
    *[(FINANCE, op) for op in (*TX_SCREENING, "list_privileged", "add_privileged",
                               "remove_privileged", "list_calls", "hang_up")],
]


@pytest.fixture(autouse=True)
async def standing_records(service: Any) -> None:
    await service.store.set_restrictions("tx-state-prison", "100002", [STANDING_RESTRICTION])
    # A locked station, so that clearing its lock is real.
    for m in range(5):
        await service.pin_failed("tx-state-prison", "4001", NOW - timedelta(minutes=m))


async def snapshot(service: Any, live_calls: Any) -> dict[str, Any]:
    store = service.store
    return {
        "books": await store.book_totals(),
        "accounts": await store.list_accounts(),
        "people": await store.list_people(),
        "blocks": await store.list_facility_blocks("tx-state-prison"),
        "privileged": sorted(await store.list_privileged()),
        "self_blocks": await store.list_self_blocks("+15125550100"),
        "refunds": await store.list_refunds(),
        "subscriptions": await store.list_subscriptions(),
        "receivables": await store.list_receivables(),
        "calls": [c.call_id for c in live_calls.list_calls()],
        "station_locks": await store.list_station_locks("tx-state-prison", NOW),
    }


async def send(client: httpx.AsyncClient, op: str, headers: dict[str, str]) -> httpx.Response:
    method, path, body, params = OPERATIONS[op]
    return await client.request(method, path, json=body, params=params, headers=headers)


async def test_every_secured_operation_is_in_the_matrix(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    secured = {
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if op.get("security")
    }
    templated = {(m, p) for m, p, _, _ in OPERATIONS.values()}
    assert len(secured) == len(OPERATIONS) == len(templated)
    admin_paths = {(m, p) for m, p in secured}
    assert all(p.startswith("/v1/") for _, p in admin_paths)
    public = {p for p, ops in doc["paths"].items() for op in ops.values()
              if not op.get("security")}
    assert public == {"/", "/v1/quote", "/healthz", "/readyz", "/metrics"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-real-token"},
    {"Authorization": "demo-admin-token"},
    {"Authorization": "Basic ZGVtby1hZG1pbi10b2tlbjo="},
], ids=["none", "wrong", "no-scheme", "basic"])
async def test_missing_or_wrong_token_is_401_and_changes_nothing(
    client: httpx.AsyncClient, service: Any, live_calls: Any, headers: dict[str, str]
) -> None:
    before = await snapshot(service, live_calls)
    for op in OPERATIONS:
        r = await send(client, op, headers)
        assert r.status_code == 401, (op, r.status_code, r.text)
        assert r.json()["error"] == "unauthorized"
    assert await snapshot(service, live_calls) == before


async def test_wrong_role_or_facility_is_403_and_changes_nothing(
    client: httpx.AsyncClient, service: Any, live_calls: Any
) -> None:
    before = await snapshot(service, live_calls)
    for token, op in FORBIDDEN:
        r = await send(client, op, auth(token))
        assert r.status_code == 403, (token, op, r.status_code, r.text)
        assert r.json()["error"] == "forbidden"
    assert await snapshot(service, live_calls) == before


async def test_allowed_roles_get_through(client: httpx.AsyncClient) -> None:
    """The same requests with a permitted token are not refused (guards the matrix)."""
    for op in MONEY:
        r = await send(client, op, auth(FINANCE))
        assert r.status_code not in (401, 403), (op, r.text)
    for op in TX_SCREENING:
        r = await send(client, op, auth(TX_FACILITY))
        assert r.status_code not in (401, 403), (op, r.text)
