"""Admin API for PIN-guessing locks: a locked station is listed (times as ISO text),
an operator lifts the lock, and another facility's staff can do neither."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.api.conftest import ADMIN, AL_FACILITY, NOW, TX_FACILITY, auth

A = auth(ADMIN)
TX = auth(TX_FACILITY)
PATH = "/v1/facilities/tx-state-prison/station-locks"


async def lock(service: Any, station: str, at: datetime = NOW) -> Any:
    """Five wrong PINs from ``station`` in the minutes before ``at`` (the demo policy)."""
    result = None
    for m in range(5):
        result = await service.pin_failed("tx-state-prison", station,
                                          at - timedelta(minutes=4 - m))
    assert result is not None
    return result


async def test_a_locked_station_is_listed_and_an_operator_clears_it(
    client: httpx.AsyncClient, service: Any
) -> None:
    r = await client.get(PATH, headers=TX)
    assert r.status_code == 200 and r.json() == []
    await lock(service, "4001")
    await lock(service, "ata-7", at=NOW - timedelta(minutes=1))

    r = await client.get(PATH, headers=TX)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"facility": "tx-state-prison", "station": "4001", "failures": 5,
         "locked_at": "2026-03-10T15:30:00Z", "until": "2026-03-10T15:45:00Z"},
        {"facility": "tx-state-prison", "station": "ata-7", "failures": 5,
         "locked_at": "2026-03-10T15:29:00Z", "until": "2026-03-10T15:44:00Z"},
    ]
    assert datetime.fromisoformat(r.json()[0]["until"]) == NOW + timedelta(minutes=15)

    r = await client.delete(PATH + "/4001", headers=TX)
    assert r.status_code == 204, r.text
    assert await service.station_lock("tx-state-prison", "4001", NOW) is None
    assert [x["station"] for x in (await client.get(PATH, headers=A)).json()] == ["ata-7"]

    r = await client.delete(PATH + "/4001", headers=TX)
    assert r.status_code == 404
    assert r.json()["field"] == "station"


async def test_a_lock_that_has_ended_is_not_listed(
    client: httpx.AsyncClient, service: Any
) -> None:
    await lock(service, "4001", at=NOW - timedelta(minutes=15))
    assert (await client.get(PATH, headers=A)).json() == []


async def test_other_facilities_and_unknown_ones(client: httpx.AsyncClient, service: Any) -> None:
    await lock(service, "4001")
    al = auth(AL_FACILITY)
    assert (await client.get(PATH, headers=al)).status_code == 403
    assert (await client.delete(PATH + "/4001", headers=al)).status_code == 403
    assert await service.station_lock("tx-state-prison", "4001", NOW) is not None
    r = await client.get("/v1/facilities/nowhere/station-locks", headers=A)
    assert r.status_code == 404
    assert (await client.get("/v1/facilities/al-county-jail/station-locks",
                             headers=al)).json() == []


async def test_a_station_that_cannot_be_one_is_refused(client: httpx.AsyncClient) -> None:
    for bad in ("40%0A01", "x" * 65, "40%2001"):
        r = await client.delete(f"{PATH}/{bad}", headers=A)
        assert r.status_code == 422, (bad, r.text)
