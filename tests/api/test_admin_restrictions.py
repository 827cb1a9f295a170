"""Admin API for a person's calling restrictions: imposing one refuses their calls,
lifting it lets them call again, and bad input is refused and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from accounts import CallRequest, Refusal, RefusalReason
from tests.api.conftest import ADMIN, NOW, TX_FACILITY, auth

A = auth(ADMIN)
TX = auth(TX_FACILITY)
PATH = "/v1/facilities/tx-state-prison/people/100001/restrictions"


async def screened(service: Any, at: Any = NOW, n: int = 0) -> Any:
    return await service.authorize(CallRequest(
        call_id=f"restricted-{n}", facility_id="tx-state-prison", pin="100001",
        dialled="+15125550100", at=at))


async def test_impose_refuses_calls_and_lift_allows_them(
    client: httpx.AsyncClient, service: Any
) -> None:
    assert not isinstance(await screened(service, n=1), Refusal)

    until = NOW + timedelta(days=3)
    body = {"kind": "suspension", "until": until.isoformat(), "note": "fight in block C"}
    r = await client.post(PATH, headers=TX, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "suspension"
    assert created["note"] == "fight in block C"
    assert created["id"].startswith("rs-")

    refusal = await screened(service, n=2)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.PERSON_RESTRICTED
    assert refusal.detail == "suspension"
    # The suspension ends when it says it does.
    assert not isinstance(await screened(service, at=until, n=3), Refusal)

    # The same restriction again is the same one, not a second entry.
    r = await client.post(PATH, headers=A, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == created
    r = await client.get(PATH, headers=TX)
    assert r.status_code == 200
    assert r.json() == [created]
    r = await client.get("/v1/facilities/tx-state-prison/people/100001", headers=TX)
    assert r.json()["restrictions"] == [created]

    r = await client.delete(f"{PATH}/{created['id']}", headers=TX)
    assert r.status_code == 204, r.text
    assert not isinstance(await screened(service, n=4), Refusal)
    assert (await service.store.get_person("tx-state-prison", "100001")).restrictions == ()
    r = await client.get(PATH, headers=TX)
    assert r.json() == []
    # Lifting it again: it is gone, and nothing else changes.
    r = await client.delete(f"{PATH}/{created['id']}", headers=TX)
    assert r.status_code == 404
    assert r.json()["field"] == "restriction_id"


async def test_indefinite_restriction_until_lifted(
    client: httpx.AsyncClient, service: Any
) -> None:
    r = await client.post(PATH, headers=A, json={"kind": "investigation"})
    assert r.status_code == 201, r.text
    assert r.json()["until"] is None
    far = NOW + timedelta(days=3650)
    refusal = await screened(service, at=far, n=5)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.PERSON_RESTRICTED
    assert refusal.detail == "investigation"
    r = await client.delete(f"{PATH}/{r.json()['id']}", headers=A)
    assert r.status_code == 204
    assert not isinstance(await screened(service, at=far, n=6), Refusal)


async def test_lifting_one_keeps_the_others(client: httpx.AsyncClient, service: Any) -> None:
    later = (NOW + timedelta(days=1)).isoformat()
    r1 = await client.post(PATH, headers=TX, json={"kind": "suspension", "until": later})
    r2 = await client.post(PATH, headers=TX, json={"kind": "phone-ban", "note": "contraband"})
    assert (r1.status_code, r2.status_code) == (201, 201)
    assert r1.json()["id"] != r2.json()["id"]
    r = await client.delete(f"{PATH}/{r1.json()['id']}", headers=TX)
    assert r.status_code == 204
    r = await client.get(PATH, headers=TX)
    assert r.json() == [r2.json()]
    refusal = await screened(service, n=7)
    assert isinstance(refusal, Refusal)
    assert refusal.detail == "phone-ban"


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/v1/facilities/tx-state-prison/people/424242/restrictions", {"kind": "suspension"},
     404, "pin"),
    ("/v1/facilities/nowhere/people/100001/restrictions", {"kind": "suspension"},
     404, "facility"),
    (PATH, {"kind": "suspension", "until": (NOW - timedelta(hours=1)).isoformat()},
     422, "until"),
    (PATH, {"kind": "suspension", "until": NOW.isoformat()}, 422, "until"),
    (PATH, {"kind": "suspension", "until": "next tuesday"}, 422, "until"),
    (PATH, {"kind": "suspension", "until": "2026-02-30T00:00:00Z"}, 422, "until"),
    (PATH, {"kind": "suspension", "until": "2026-04-01T00:00:00"}, 422, "until"),
    (PATH, {"kind": "suspension", "until": 1800000000}, 422, "until"),
    (PATH, {"kind": "suspension", "until": "9999-12-31T23:00:00-05:00"}, 422, "until"),
    (PATH, {"kind": "suspension", "starts_at": "2026-04-01T00:00:00Z"}, 422, "starts_at"),
    (PATH, {"kind": ""}, 422, "kind"),
    (PATH, {"kind": "Suspension!"}, 422, "kind"),
    (PATH, {"until": "2026-04-01T00:00:00Z"}, 422, "kind"),
    (PATH, {"kind": "suspension", "note": "x" * 201}, 422, "note"),
])
async def test_bad_input_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, service: Any, path: str, body: dict[str, Any], status: int,
    field: str
) -> None:
    before = await service.store.list_people()
    r = await client.post(path, headers=A, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert r.json()["error"] in ("invalid_parameter", "not_found")
    assert await service.store.list_people() == before


async def test_unknown_person_or_restriction_on_lift_and_list(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/facilities/tx-state-prison/people/424242/restrictions", headers=A)
    assert r.status_code == 404
    assert r.json()["field"] == "pin"
    r = await client.delete(
        "/v1/facilities/tx-state-prison/people/424242/restrictions/rs-0123456789abcdef",
        headers=A)
    assert r.status_code == 404
    assert r.json()["field"] == "pin"
    r = await client.delete(f"{PATH}/rs-0123456789abcdef", headers=A)
    assert r.status_code == 404
    assert r.json()["field"] == "restriction_id"


async def test_restriction_of_a_person_at_another_facility_is_forbidden(
    client: httpx.AsyncClient, service: Any
) -> None:
    r = await client.post("/v1/facilities/al-county-jail/people/200001/restrictions",
                          headers=TX, json={"kind": "suspension"})
    assert r.status_code == 403
    assert r.json()["field"] == "facility"
    assert (await service.store.get_person("al-county-jail", "200001")).restrictions == ()
