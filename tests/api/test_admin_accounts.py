"""Admin API for money, against a real SQLite store seeded with the demo data."""

from __future__ import annotations

from typing import Any

import httpx

from accounts import CallRequest
from tests.api.conftest import ADMIN, FINANCE, NOW, auth

A = auth(ADMIN)
F = auth(FINANCE)


async def test_open_advance_connect_deposit_and_read_entries(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/accounts", headers=F, json={
        "product": "advance_connect", "numbers": ["(737) 555-0142"], "holder_name": "R. Diaz"})
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["numbers"] == ["+17375550142"]
    assert account["balance"] == "0.00"
    aid = account["id"]

    r = await client.post(f"/v1/accounts/{aid}/deposits", headers=F, json={
        "amount": "20.00", "method": "card", "idempotency_key": "dep-1"})
    assert r.status_code == 201, r.text
    assert r.json()["account"]["balance"] == "20.00"
    assert r.json()["entry"]["amount"] == "20.00"
    assert r.json()["replayed"] is False

    r = await client.get(f"/v1/accounts/{aid}", headers=A)
    assert r.status_code == 200
    detail = r.json()
    assert detail["balance"] == "20.00"
    assert [e["kind"] for e in detail["entries"]] == ["deposit"]
    assert detail["entries"][0]["idempotency_key"] == "dep-1"
    legs = detail["entries"][0]["legs"]
    assert sum(int(leg["amount"].replace(".", "")) for leg in legs) == 0  # legs balance

    r = await client.get("/v1/accounts", headers=F, params={"number": "7375550142"})
    assert [a["id"] for a in r.json()] == [aid]


async def test_repeated_idempotency_key_moves_money_once(client: httpx.AsyncClient) -> None:
    body = {"amount": "5.00", "method": "check", "idempotency_key": "retry-me"}
    first = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F, json=body)
    second = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F, json=body)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["replayed"] is True
    assert second.json()["entry"]["id"] == first.json()["entry"]["id"]
    assert second.json()["account"]["balance"] == "30.00"
    # Same key, different content: refused, nothing moves.
    other = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F,
                              json={**body, "amount": "6.00"})
    assert other.status_code == 409
    assert other.json()["field"] == "idempotency_key"
    r = await client.get("/v1/accounts/ac-15125550100", headers=F)
    assert r.json()["balance"] == "30.00"


async def test_bad_deposits_name_the_field_and_change_nothing(
    client: httpx.AsyncClient, service: Any
) -> None:
    before = await service.store.book_totals()
    cases = [
        ({"amount": "0.00", "method": "card", "idempotency_key": "k1"}, 422, "amount"),
        ({"amount": "1.001", "method": "card", "idempotency_key": "k2"}, 422, "amount"),
        ({"amount": "1000.00", "method": "card", "idempotency_key": "k3"}, 422, "amount"),
        ({"amount": 5.5, "method": "card", "idempotency_key": "k4"}, 422, "amount"),
        ({"amount": "5.00", "method": "bitcoin", "idempotency_key": "k5"}, 422, "method"),
        ({"amount": "5.00", "method": "card"}, 422, "idempotency_key"),
        ({"amount": "5.00", "method": "card", "idempotency_key": "k6",
          "facility": "nowhere"}, 422, "facility"),
    ]
    for body, status, field in cases:
        r = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = await client.post("/v1/accounts/no-such-account/deposits", headers=F,
                          json={"amount": "5.00", "method": "card", "idempotency_key": "k7"})
    assert r.status_code == 404
    r = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F,
                          content=b"{not json", )
    assert r.status_code in (400, 422)
    # A Direct Bill account takes payments, not deposits.
    r = await client.post("/v1/accounts/db-13105550100/deposits", headers=F,
                          json={"amount": "5.00", "method": "card", "idempotency_key": "k8"})
    assert r.status_code == 422
    assert await service.store.book_totals() == before


async def test_direct_bill_payment_and_standing(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/accounts/db-13105550100/payments", headers=F,
                          json={"amount": "12.50", "method": "card", "idempotency_key": "p1"})
    assert r.status_code == 201, r.text
    assert r.json()["account"]["balance"] == "12.50"
    r = await client.get("/v1/accounts/db-13105550100/standing", headers=F)
    assert r.status_code == 200
    assert r.json()["blocked"] is False
    assert r.json()["past_due"] == "0.00"
    r = await client.get("/v1/accounts/ac-15125550100/standing", headers=F)
    assert r.status_code == 422


async def test_open_direct_bill_and_debit(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/accounts", headers=A, json={
        "product": "direct_bill", "numbers": ["+16175550100"], "credit_limit": "30.00",
        "id": "db-boston"})
    assert r.status_code == 201, r.text
    assert r.json()["credit_limit"] == "30.00"
    r = await client.post("/v1/accounts", headers=A, json={
        "product": "direct_bill", "numbers": ["+16175550101", "+16175550102"]})
    assert r.status_code == 422
    assert r.json()["field"] == "numbers"
    r = await client.post("/v1/accounts", headers=A, json={
        "product": "debit", "facility": "al-county-jail", "pin": "200001"})
    assert r.status_code == 201, r.text
    assert r.json()["pin"] == "200001"
    r = await client.post("/v1/accounts", headers=A, json={
        "product": "debit", "facility": "al-county-jail", "pin": "999999"})
    assert r.status_code == 404
    r = await client.post("/v1/accounts", headers=A, json={"product": "debit"})
    assert r.status_code == 422
    assert r.json()["field"] == "facility"
    r = await client.post("/v1/accounts", headers=A, json={
        "product": "direct_bill", "numbers": ["+16175550100"], "id": "db-boston"})
    assert r.status_code == 409


async def test_refund_review_approve_and_deny(client: httpx.AsyncClient) -> None:
    # $25 is under the review threshold: approved at once.
    r = await client.post("/v1/accounts/ac-15125550100/refunds", headers=F,
                          json={"reason": "moving"})
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["status"] == "approved"
    assert refund["amount"] == "25.00"
    r = await client.get("/v1/accounts/ac-15125550100", headers=F)
    assert r.json()["balance"] == "0.00"
    r = await client.post(f"/v1/refunds/{refund['id']}/paid", headers=F)
    assert r.status_code == 200 and r.json()["status"] == "paid"
    r = await client.post("/v1/accounts/ac-15125550100/refunds", headers=F)
    assert r.status_code == 409  # nothing left to refund

    # The load-test account's $100,000 goes to review; deny returns the money.
    r = await client.post("/v1/accounts/ac-14155550100/refunds", headers=F)
    assert r.json()["status"] == "pending_review"
    rid = r.json()["id"]
    r = await client.get("/v1/refunds", headers=F, params={"status": "pending_review"})
    assert [x["id"] for x in r.json()] == [rid]
    r = await client.post(f"/v1/refunds/{rid}/deny", headers=F)
    assert r.json()["status"] == "rejected"
    r = await client.get("/v1/accounts/ac-14155550100", headers=F)
    assert r.json()["balance"] == "100000.00"
    r = await client.post(f"/v1/refunds/{rid}/approve", headers=F)
    assert r.status_code == 409  # already decided

    r = await client.post("/v1/accounts/ac-14155550100/refunds", headers=F)
    rid = r.json()["id"]
    r = await client.post(f"/v1/refunds/{rid}/approve", headers=A)
    assert r.json()["status"] == "approved"
    r = await client.get(f"/v1/refunds/{rid}", headers=A)
    assert r.json()["status"] == "approved"
    r = await client.get("/v1/refunds/nope", headers=A)
    assert r.status_code == 404


async def test_closure_and_statement(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/accounts/debit-tx-100001/closure", headers=F)
    assert r.status_code == 200
    assert r.json()["status"] == "closing"
    assert r.json()["closure_due_at"] is not None
    r = await client.post("/v1/accounts/debit-tx-100001/closure", headers=F)
    assert r.status_code == 409
    r = await client.post("/v1/accounts/ac-15125550100/deposits", headers=F,
                          json={"amount": "1.00", "method": "card", "idempotency_key": "s1"})
    r = await client.get(f"/v1/accounts/ac-15125550100/statements/{NOW.year}/{NOW.month}",
                         headers=F)
    assert r.status_code == 200, r.text
    s = r.json()
    assert [d["amount"] for d in s["deposits"]] == ["25.00", "1.00"]
    assert s["opening_balance"] == "0.00"
    assert s["closing_balance"] == "26.00"
    r = await client.get("/v1/accounts/ac-15125550100/statements/2026/13", headers=F)
    assert r.status_code == 422


async def test_single_call_confirm_and_fail(client: httpx.AsyncClient, service: Any) -> None:
    receivables = []
    for i in range(2):
        auth_result = await service.authorize(CallRequest(
            call_id=f"sc-{i}", facility_id="tx-state-prison", pin="100002",
            dialled="+12125550100", at=NOW))
        assert getattr(auth_result, "single_call_offer", False), auth_result
        settled = await service.settle(auth_result.reservation_id, 120, NOW)
        receivables.append(settled.receivable_id)
    r = await client.get("/v1/single-calls", headers=F, params={"status": "pending"})
    assert {x["id"] for x in r.json()} == set(receivables)
    r = await client.post(f"/v1/single-calls/{receivables[0]}/confirm", headers=F,
                          json={"method": "card"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "confirmed"
    r = await client.post(f"/v1/single-calls/{receivables[1]}/fail", headers=F)
    assert r.json()["status"] == "failed"
    r = await client.post(f"/v1/single-calls/{receivables[0]}/fail", headers=F)
    assert r.status_code == 409
    r = await client.post("/v1/single-calls/nope/confirm", headers=F, json={"method": "card"})
    assert r.status_code == 404


async def test_subscriptions(client: httpx.AsyncClient) -> None:
    body = {"number": "+15125550100", "facility": "tx-state-prison",
            "starts_at": "2026-03-10T00:00:00Z", "ends_at": "2026-04-09T00:00:00Z",
            "price": "5.00", "minutes": 100, "method": "card", "idempotency_key": "sub-1"}
    r = await client.post("/v1/subscriptions", headers=F, json=body)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["covered_minutes"] == 100
    assert sub["price"] == "5.00"
    r = await client.get("/v1/subscriptions", headers=F, params={"number": "5125550100"})
    assert [s["id"] for s in r.json()] == [sub["id"]]
    r = await client.get(f"/v1/subscriptions/{sub['id']}", headers=F)
    assert r.json()["remaining_seconds"] == 6000
    # Dearer per minute than the per-minute rate: refused, naming the price.
    r = await client.post("/v1/subscriptions", headers=F,
                          json={**body, "price": "50.00", "idempotency_key": "sub-2"})
    assert r.status_code == 422
    assert r.json()["field"] == "price"
    r = await client.post("/v1/subscriptions", headers=F,
                          json={**body, "starts_at": "2026-03-10T00:00:00",
                                "idempotency_key": "sub-3"})
    assert r.status_code == 422
    assert r.json()["field"] == "starts_at"
