"""CDRs: filters, facility scoping, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest

from accounts import CallDetailRecord, CallOutcome
from tests.api.conftest import ADMIN, AL_FACILITY, FINANCE, NOW, TX_FACILITY, auth


def record(call_id: str, facility: str, pin: str, number: str, minutes_ago: int,
           seconds: int, total_units: int) -> CallDetailRecord:
    setup = NOW - timedelta(minutes=minutes_ago)
    return CallDetailRecord(
        call_id=call_id, facility_id=facility, pin=pin, number_e164=number,
        jurisdiction="intrastate", product="advance_connect", payer_account_id="ac-15125550100",
        setup_at=setup, answer_at=setup, accept_at=setup, end_at=setup + timedelta(seconds=seconds),
        talked_seconds=seconds, billed_seconds=-(-seconds // 60) * 60, charge_units=total_units,
        fee_units=0, tax_units=0, total_units=total_units, outcome=CallOutcome.COMPLETED,
        disconnect_reason="caller hung up", disconnect_side="caller",
    )


@pytest.fixture
async def cdrs(service: Any) -> list[CallDetailRecord]:
    records = [
        record("c1", "tx-state-prison", "100001", "+15125550100", 50, 300, 3000),
        record("c2", "tx-state-prison", "100002", "+13105550100", 40, 61, 1200),
        record("c3", "al-county-jail", "200001", "+15125550100", 30, 600, 6000),
    ]
    for r in records:
        await service.store.add_cdr(r)
    return records


async def test_list_and_filter(client: httpx.AsyncClient, cdrs: Any) -> None:
    r = await client.get("/v1/cdrs", headers=auth(FINANCE))
    assert r.status_code == 200
    assert {c["call_id"] for c in r.json()} == {"c1", "c2", "c3"}
    one = next(c for c in r.json() if c["call_id"] == "c1")
    assert one["total"] == "0.30"
    assert one["billed_seconds"] == 300
    r = await client.get("/v1/cdrs", headers=auth(ADMIN), params={"number": "5125550100"})
    assert {c["call_id"] for c in r.json()} == {"c1", "c3"}
    r = await client.get("/v1/cdrs", headers=auth(ADMIN), params={
        "since": (NOW - timedelta(minutes=45)).isoformat(), "facility": "tx-state-prison"})
    assert [c["call_id"] for c in r.json()] == ["c2"]
    r = await client.get("/v1/cdrs", headers=auth(ADMIN), params={"since": "yesterday"})
    assert r.status_code == 422
    assert r.json()["field"] == "since"
    r = await client.get("/v1/cdrs/c3", headers=auth(ADMIN))
    assert r.json()["facility"] == "al-county-jail"
    r = await client.get("/v1/cdrs/none", headers=auth(ADMIN))
    assert r.status_code == 404


async def test_facility_token_sees_only_its_calls(client: httpx.AsyncClient, cdrs: Any) -> None:
    r = await client.get("/v1/cdrs", headers=auth(TX_FACILITY))
    assert {c["call_id"] for c in r.json()} == {"c1", "c2"}
    r = await client.get("/v1/cdrs", headers=auth(AL_FACILITY),
                         params={"facility": "tx-state-prison"})
    assert r.status_code == 403
    r = await client.get("/v1/cdrs/c1", headers=auth(AL_FACILITY))
    assert r.status_code == 404


async def test_csv_export(client: httpx.AsyncClient, cdrs: Any) -> None:
    r = await client.get("/v1/cdrs.csv", headers=auth(FINANCE),
                         params={"facility": "tx-state-prison"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["call_id"] for row in rows} == {"c1", "c2"}
    assert {row["total"] for row in rows} == {"0.30", "0.12"}
    r = await client.get("/v1/cdrs.csv", headers=auth(AL_FACILITY))
    assert [row["call_id"] for row in csv.DictReader(io.StringIO(r.text))] == ["c3"]


async def test_a_record_shows_its_station_and_menu_time(
    client: httpx.AsyncClient, service: Any
) -> None:
    from dataclasses import replace

    menu = replace(record("m1", "tx-state-prison", "100001", "+15125550100", 5, 60, 600),
                   station="4001", menu_seconds=27)
    await service.store.add_cdr(menu)
    await service.store.add_cdr(record("h1", "tx-state-prison", "100001", "+15125550100", 4,
                                       60, 600))
    r = await client.get("/v1/cdrs/m1", headers=auth(ADMIN))
    assert (r.json()["station"], r.json()["menu_seconds"]) == ("4001", 27)
    r = await client.get("/v1/cdrs/h1", headers=auth(ADMIN))
    assert (r.json()["station"], r.json()["menu_seconds"]) == ("", 0)
    r = await client.get("/v1/cdrs.csv", headers=auth(ADMIN))
    rows = {row["call_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert (rows["m1"]["station"], rows["m1"]["menu_seconds"]) == ("4001", "27")
