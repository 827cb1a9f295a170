"""The family pages over ASGI with a real SQLite store: sign-in, every page, every form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from accounts import RefundStatus
from tests.api.conftest import NOW
from tests.api.family_helpers import (
    AC,
    AC_NUMBER,
    DB,
    DB_NUMBER,
    PASSCODE,
    cheap_family,
    post_form,
    set_up,
    sign_in,
)


@pytest.fixture
def app(app: Any) -> Any:
    return cheap_family(app)


async def test_set_up_code_then_sign_in(client: httpx.AsyncClient) -> None:
    r = await set_up(client)
    assert r.status_code == 303 and r.headers["location"] == f"/account/{AC}"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = await client.get(f"/account/{AC}")
    assert page.status_code == 200
    assert 'id="balance">$25.00<' in page.text
    client.cookies.clear()
    assert (await client.get(f"/account/{AC}")).status_code == 401
    r = await sign_in(client)
    assert r.status_code == 303, r.text
    assert (await client.get(f"/account/{AC}")).status_code == 200


async def test_set_up_code_works_once(client: httpx.AsyncClient) -> None:
    from tests.api.family_helpers import form_token, setup_code

    code = await setup_code(client)
    page = await client.get("/account/set-up")
    fields = {"number": AC_NUMBER, "setup_code": code, "passcode": PASSCODE,
              "passcode_again": PASSCODE, "form_token": form_token(page.text)}
    assert (await client.post("/account/set-up", data=fields)).status_code == 303
    again = await client.post("/account/set-up", data=fields)
    assert again.status_code == 401
    assert 'data-error="error.set_up"' in again.text


async def test_spanish_pages(client: httpx.AsyncClient) -> None:
    await set_up(client)
    r = await client.get(f"/account/{AC}?lang=es")
    assert r.status_code == 200 and '<html lang="es">' in r.text
    assert "Saldo disponible" in r.text
    # The choice is remembered for the next page.
    r = await client.get(f"/account/{AC}/calls")
    assert "Llamadas recientes" in r.text


async def test_refund_request_shows_its_state(client: httpx.AsyncClient, service: Any) -> None:
    await set_up(client)
    r = await post_form(client, f"/account/{AC}/refund", {}, csrf_from=f"/account/{AC}/money")
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert 'data-status="approved"' in page.text
    refunds = await service.store.list_refunds(account_id=AC)
    assert [x.status for x in refunds] == [RefundStatus.APPROVED]
    assert refunds[0].amount_units == 250_000
    # Nothing left: a second request is refused with a clear page.
    again = await post_form(client, f"/account/{AC}/refund", {},
                            csrf_from=f"/account/{AC}/money")
    assert again.status_code == 409 and 'data-error="refund.none"' in again.text
    assert len(await service.store.list_refunds(account_id=AC)) == 1


async def test_refund_over_threshold_waits_for_review(
    client: httpx.AsyncClient, service: Any
) -> None:
    await service.deposit(AC, "200.00", "card", "big", NOW)
    await set_up(client)
    r = await post_form(client, f"/account/{AC}/refund", {}, csrf_from=f"/account/{AC}/money")
    assert r.status_code == 303
    page = await client.get(f"/account/{AC}/money")
    assert 'data-status="pending_review"' in page.text


async def test_closure_then_refund_is_refused(client: httpx.AsyncClient, service: Any) -> None:
    await set_up(client)
    money = f"/account/{AC}/money"
    unconfirmed = await post_form(client, f"/account/{AC}/closure", {}, csrf_from=money)
    assert unconfirmed.status_code == 422
    assert (await service.store.get_account(AC)).status == "open"
    r = await post_form(client, f"/account/{AC}/closure", {"confirm": "yes"}, csrf_from=money)
    assert r.status_code == 303
    account = await service.store.get_account(AC)
    assert account.status == "closing"
    assert account.closure_due_at == NOW + timedelta(days=7)
    refused = await post_form(client, f"/account/{AC}/refund", {}, csrf_from=money)
    assert refused.status_code == 409 and 'data-error="refund.closing"' in refused.text
    assert await service.store.list_refunds(account_id=AC) == []


async def test_block_and_unblock_a_facility(client: httpx.AsyncClient, service: Any) -> None:
    await set_up(client)
    # A key-9 block during a call is what the controller does:
    await service.block_facility_for_number(AC_NUMBER, "tx-state-prison")
    blocks = f"/account/{AC}/blocks"
    page = await client.get(blocks)
    assert 'data-facility="tx-state-prison" data-blocked="yes"' in page.text
    r = await post_form(client, blocks, {"number": AC_NUMBER, "facility": "tx-state-prison",
                                         "action": "unblock"})
    assert r.status_code == 303
    assert await service.store.list_self_blocks(AC_NUMBER) == []
    r = await post_form(client, blocks, {"number": AC_NUMBER, "facility": "al-county-jail",
                                         "action": "block"})
    assert r.status_code == 303
    assert await service.store.list_self_blocks(AC_NUMBER) == ["al-county-jail"]


async def test_block_of_a_number_not_on_the_account_is_refused(
    client: httpx.AsyncClient, service: Any
) -> None:
    await set_up(client)
    r = await post_form(client, f"/account/{AC}/blocks",
                        {"number": DB_NUMBER, "facility": "tx-state-prison", "action": "block"})
    assert r.status_code == 400
    assert await service.store.list_self_blocks(DB_NUMBER) == []


async def test_direct_bill_numbers(client: httpx.AsyncClient, service: Any) -> None:
    await set_up(client, DB, DB_NUMBER)
    numbers = f"/account/{DB}/numbers"
    r = await post_form(client, numbers, {"action": "add", "number": "(213) 555-0111"})
    assert r.status_code == 303
    assert set((await service.store.get_account(DB)).numbers) == {DB_NUMBER, "+12135550111"}
    intl = await post_form(client, numbers, {"action": "add", "number": "+44 20 7946 0958"})
    assert intl.status_code == 422 and "US numbers only" in intl.text
    assert 'data-error="number.international"' in intl.text
    attorney = await post_form(client, numbers, {"action": "add", "number": "+15125550123"})
    assert attorney.status_code == 422 and 'data-error="number.privileged"' in attorney.text
    r = await post_form(client, numbers, {"action": "remove", "number": "+12135550111"})
    assert r.status_code == 303
    last = await post_form(client, numbers, {"action": "remove", "number": DB_NUMBER})
    assert last.status_code == 422
    assert (await service.store.get_account(DB)).numbers == (DB_NUMBER,)


async def test_advance_connect_numbers_are_not_changed_here(
    client: httpx.AsyncClient, service: Any
) -> None:
    await set_up(client)
    r = await post_form(client, f"/account/{AC}/numbers",
                        {"action": "add", "number": "+12135550111"})
    assert r.status_code == 422
    assert (await service.store.get_account(AC)).numbers == (AC_NUMBER,)


async def test_alert_preferences(client: httpx.AsyncClient, app: Any) -> None:
    await set_up(client)
    alerts = f"/account/{AC}/alerts"
    bad = await post_form(client, alerts, {"email": "not-an-address", "low_balance": "5.001"})
    assert bad.status_code == 422
    assert 'data-error="error.email"' in bad.text and 'data-error="error.amount"' in bad.text
    prefs = await app.state.family.alerts(AC)
    assert prefs.email == "" and prefs.low_balance_units is None
    r = await post_form(client, alerts, {"email": "family@example.com", "low_balance": "5.00",
                                         "refund_alerts": "on"})
    assert r.status_code == 303
    prefs = await app.state.family.alerts(AC)
    assert (prefs.email, prefs.low_balance_units, prefs.refund_alerts) == (
        "family@example.com", 50_000, True)


async def settled_call(service: Any, call_id: str, number: str, seconds: int) -> Any:
    """A call authorized, talked and settled by the account service, and its record."""
    from accounts import Authorization, CallOutcome, CallRequest, call_detail_record

    auth = await service.authorize(CallRequest(call_id, "tx-state-prison", "100002", number,
                                               NOW))
    assert isinstance(auth, Authorization), auth
    end = NOW + timedelta(seconds=seconds + 20)
    settlement = await service.settle(auth.reservation_id, seconds, end)
    return await service.record_call(call_detail_record(
        call_id=call_id, facility_id="tx-state-prison", pin="100002", number=number,
        authorization=auth, settlement=settlement, setup_at=NOW, end_at=end,
        talked_seconds=seconds, outcome=CallOutcome.COMPLETED,
        answer_at=NOW + timedelta(seconds=10), accept_at=NOW + timedelta(seconds=20)))


async def test_calls_and_their_itemized_charge(client: httpx.AsyncClient, service: Any) -> None:
    mine = await settled_call(service, "call-ac-1", AC_NUMBER, 125)
    theirs = await settled_call(service, "call-db-1", DB_NUMBER, 60)
    assert mine.payer_account_id == AC and theirs.payer_account_id == DB
    await set_up(client)
    calls = await client.get(f"/account/{AC}/calls")
    assert 'data-call="call-ac-1"' in calls.text and "call-db-1" not in calls.text
    assert "2 min 5 s" in calls.text
    detail = await client.get(f"/account/{AC}/calls/call-ac-1")
    assert detail.status_code == 200
    total = f"${mine.total_units // 10_000}.{mine.total_units % 10_000 // 100:02d}"
    assert f'class="amount">{total}<' in detail.text
    # Another account's call is no call at all here.
    other = await client.get(f"/account/{AC}/calls/call-db-1")
    assert other.status_code == 404 and 'data-key="error.not_found"' in other.text
    # The month's statement counts the call once; its total is the CDR's.
    csv_text = (await client.get(f"/account/{AC}/statements/2026-03.csv")).text
    assert csv_text.count(",call,") == 1
    assert f",calls_total,,,-{total[1:]}" in csv_text
