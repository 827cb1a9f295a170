"""Admin API for screening data: people, allowed, blocked and privileged numbers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import ADMIN, TX_FACILITY, auth

A = auth(ADMIN)
TX = auth(TX_FACILITY)


async def test_people_lifecycle(client: httpx.AsyncClient, service: Any) -> None:
    r = await client.post("/v1/facilities/tx-state-prison/people", headers=TX, json={
        "pin": "100777", "name": "New Arrival", "language": "es",
        "allowed_numbers": ["(512) 555-0100"]})
    assert r.status_code == 201, r.text
    assert r.json()["allowed_numbers"] == ["+15125550100"]
    r = await client.post("/v1/facilities/tx-state-prison/people", headers=TX,
                          json={"pin": "100777"})
    assert r.status_code == 409
    assert r.json()["field"] == "pin"

    r = await client.get("/v1/facilities/tx-state-prison/people", headers=TX)
    assert {p["pin"] for p in r.json()} == {"100001", "100002", "100777"}

    r = await client.put("/v1/facilities/tx-state-prison/people/100777/language", headers=TX,
                         json={"language": "en"})
    assert r.json()["language"] == "en"
    r = await client.put("/v1/facilities/tx-state-prison/people/100777/language", headers=TX,
                         json={"language": "fr"})
    assert r.status_code == 422
    assert r.json()["field"] == "language"

    r = await client.put(
        "/v1/facilities/tx-state-prison/people/100777/allowed-numbers/+13105550100", headers=TX)
    assert r.json()["allowed_numbers"] == ["+13105550100", "+15125550100"]
    r = await client.delete(
        "/v1/facilities/tx-state-prison/people/100777/allowed-numbers/5125550100", headers=TX)
    assert r.json()["allowed_numbers"] == ["+13105550100"]
    r = await client.put(
        "/v1/facilities/tx-state-prison/people/100777/allowed-numbers/12", headers=TX)
    assert r.status_code == 422
    assert r.json()["field"] == "number"

    person = await service.store.get_person("tx-state-prison", "100777")
    assert person.allowed_numbers == frozenset({"+13105550100"})
    r = await client.get("/v1/facilities/tx-state-prison/people/424242", headers=TX)
    assert r.status_code == 404


async def test_release_refunds_the_debit_balance(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/facilities/tx-state-prison/people/100001/release", headers=TX)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["person"]["released_at"] is not None
    assert body["refund"]["amount"] == "10.00"
    r = await client.get("/v1/accounts/debit-tx-100001", headers=A)
    assert r.json()["balance"] == "0.00"


async def test_facility_blocks(client: httpx.AsyncClient, service: Any) -> None:
    r = await client.get("/v1/facilities/tx-state-prison/blocks", headers=TX)
    assert r.json() == [{"pattern": "+15125550199", "prefix": False}]
    r = await client.post("/v1/facilities/tx-state-prison/blocks", headers=TX,
                          json={"number": "512 555 0177"})
    assert r.status_code == 201
    assert r.json() == {"pattern": "+15125550177", "prefix": False}
    r = await client.post("/v1/facilities/tx-state-prison/blocks", headers=TX,
                          json={"prefix": "+1900"})
    assert r.status_code == 201
    r = await client.post("/v1/facilities/tx-state-prison/blocks", headers=TX,
                          json={"prefix": "+1900", "number": "5125550100"})
    assert r.status_code == 422
    r = await client.post("/v1/facilities/tx-state-prison/blocks", headers=TX, json={})
    assert r.status_code == 422
    blocks = set(await service.store.list_facility_blocks("tx-state-prison"))
    assert blocks == {("+15125550199", False), ("+15125550177", False), ("+1900", True)}
    r = await client.delete("/v1/facilities/tx-state-prison/blocks", headers=TX,
                            params={"number": "+15125550199"})
    assert r.status_code == 204
    r = await client.delete("/v1/facilities/tx-state-prison/blocks", headers=TX,
                            params={"prefix": "+1900"})
    assert r.status_code == 204
    blocks = set(await service.store.list_facility_blocks("tx-state-prison"))
    assert blocks == {("+15125550177", False)}
    r = await client.get("/v1/facilities/atlantis/blocks", headers=A)
    assert r.status_code == 404


async def test_privileged_numbers(client: httpx.AsyncClient, service: Any) -> None:
    r = await client.get("/v1/privileged-numbers", headers=TX)
    assert r.json() == [{"number": "+15125550123"}]
    r = await client.put("/v1/privileged-numbers/(214) 555-0100", headers=A,
                         json={"note": "Public defender"})
    assert r.status_code == 200
    assert r.json() == {"number": "+12145550100"}
    assert set(await service.store.list_privileged()) == {"+15125550123", "+12145550100"}
    r = await client.delete("/v1/privileged-numbers/+15125550123", headers=A)
    assert r.status_code == 204
    assert await service.store.list_privileged() == ["+12145550100"]


async def test_called_party_blocks(client: httpx.AsyncClient, service: Any) -> None:
    r = await client.put("/v1/numbers/(512) 555-0100/self-blocks", headers=A,
                         json={"facility": "al-county-jail"})
    assert r.status_code == 200
    r = await client.put("/v1/numbers/5125550100/self-blocks", headers=A, json={})
    assert r.status_code == 200
    r = await client.get("/v1/numbers/+15125550100/self-blocks", headers=A)
    assert sorted(r.json(), key=str) == sorted([{"facility": "al-county-jail"},
                                                {"facility": None}], key=str)
    r = await client.put("/v1/numbers/5125550100/self-blocks", headers=A,
                         json={"facility": "atlantis"})
    assert r.status_code == 422 and r.json()["field"] == "facility"
    r = await client.delete("/v1/numbers/5125550100/self-blocks", headers=A)
    assert r.status_code == 204
    assert await service.store.list_self_blocks("+15125550100") == ["al-county-jail"]
    r = await client.delete("/v1/numbers/5125550100/self-blocks", headers=A,
                            params={"facility": "al-county-jail"})
    assert await service.store.list_self_blocks("+15125550100") == []
