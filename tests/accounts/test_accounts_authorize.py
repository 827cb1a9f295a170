"""Real-time authorization: screening, funding order, holds, settlement and recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from account_helpers import (
    BLOCKED,
    CA_DB,
    NY_NONE,
    PRIVILEGED,
    T0,
    TX_AC,
    Interleaved,
    make_facilities,
)

from accounts import (
    AccountService,
    AccountStore,
    Authorization,
    Book,
    CallingWindow,
    CallRequest,
    InvalidRequest,
    Refusal,
    RefusalReason,
    Restriction,
    SqliteAccountStore,
)
from rating import Product


def call(n: int, number: str = TX_AC, pin: str = "100001", facility: str = "tx", **kw: object):
    return CallRequest(
        call_id=f"call-{n}",
        facility_id=facility,
        pin=pin,
        dialled=number,
        at=kw.pop("at", T0),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


async def authorized(service: AccountService, request: CallRequest) -> Authorization:
    result = await service.authorize(request)
    assert isinstance(result, Authorization), result
    return result


async def refused(service: AccountService, request: CallRequest) -> Refusal:
    result = await service.authorize(request)
    assert isinstance(result, Refusal), result
    return result


async def funded_ac(service: AccountService, amount: str = "25.00", number: str = TX_AC) -> str:
    account = await service.open_advance_connect([number], T0, account_id=f"ac{number[-4:]}")
    await service.deposit(account.id, amount, "card", f"dep-{account.id}-{amount}", T0)
    return account.id


async def test_advance_connect_holds_the_longest_call_and_settles_the_rated_charge(
    service: AccountService, store: AccountStore
) -> None:
    acct = await funded_ac(service)
    auth = await authorized(service, call(1, "(512) 555-0100"))
    assert auth.product is Product.ADVANCE_CONNECT
    assert auth.payer_account_id == acct
    assert auth.called.e164 == TX_AC
    # The facility limit (20 min) is shorter than what $25 buys at $0.06/min.
    assert auth.max_seconds == 1200
    assert auth.reservation.amount_units == 12_000
    account = await store.get_account(acct)
    assert (account.balance_units, account.held_units) == (238_000, 12_000)

    settled = await service.settle(auth.reservation_id, 185, T0 + timedelta(minutes=4))
    assert settled.quote is not None and settled.quote.billed_units == 4
    assert settled.reservation.charged_units == 2_400
    account = await store.get_account(acct)
    assert (account.balance_units, account.held_units) == (247_600, 0)
    assert await store.book_balance(Book.REVENUE, "advance_connect") == 2_400


async def test_max_seconds_is_what_the_payer_can_afford(service: AccountService) -> None:
    await funded_ac(service, "0.50")
    auth = await authorized(service, call(1))
    assert auth.max_seconds == 8 * 60  # $0.48 of $0.50 at $0.06/min
    assert auth.reservation.amount_units == 4_800


async def test_tax_is_held_and_charged_and_never_exceeds_the_hold(
    service: AccountService, store: AccountStore
) -> None:
    acct = await funded_ac(service)
    auth = await authorized(service, call(1, pin="200001", facility="al"))
    assert auth.max_seconds == 900
    # 15 min at $0.21 = $3.15, plus 10 % tax rounded to the cent = $0.32.
    assert auth.reservation.amount_units == 34_700
    # Talking past the limit is billed at the limit, never above the hold.
    settled = await service.settle(auth.reservation_id, 2_000, T0 + timedelta(minutes=40))
    assert settled.reservation.charged_units == 34_700
    assert settled.reservation.talked_seconds == 900
    assert await store.book_balance(Book.TAX, "advance_connect") == 3_200
    assert (await store.get_account(acct)).balance_units == 250_000 - 34_700


async def test_release_charges_nothing(service: AccountService, store: AccountStore) -> None:
    acct = await funded_ac(service)
    auth = await authorized(service, call(1))
    released = await service.release(auth.reservation_id, T0)
    assert released.reservation.charged_units == 0
    account = await store.get_account(acct)
    assert (account.balance_units, account.held_units) == (250_000, 0)
    assert account.last_call_at is None


async def test_funding_order_subscription_debit_advance_connect(
    service: AccountService, store: AccountStore
) -> None:
    await funded_ac(service)
    debit = await service.open_debit("tx", "100001", T0, account_id="debit1")
    await service.deposit(debit.id, "10.00", "trust", "trust-1", T0)
    # Debit pays only when the person asks for it.
    assert (await authorized(service, call(1))).product is Product.ADVANCE_CONNECT
    chosen = await authorized(service, call(2, use_debit=True))
    assert (chosen.product, chosen.payer_account_id) == (Product.DEBIT, "debit1")
    await service.buy_subscription(
        TX_AC, "tx", T0, T0 + timedelta(days=30), "5.00", 100, "card", "sub-1", T0
    )
    sub = await authorized(service, call(3, use_debit=True))
    assert sub.product is Product.SUBSCRIPTION
    assert sub.max_seconds == 1200 and sub.reservation.amount_units == 0


async def test_facility_funding_order_is_configurable(store: AccountStore) -> None:
    facilities = make_facilities()
    facilities["tx"] = replace(
        facilities["tx"], funding_order=(Product.DIRECT_BILL, Product.ADVANCE_CONNECT)
    )
    service = AccountService(store, facilities)
    from accounts import Person

    await store.add_person(Person(facility_id="tx", pin="100001"))
    await funded_ac(service)
    await service.open_direct_bill(TX_AC, T0, account_id="db1")
    auth = await authorized(service, call(1))
    assert (auth.product, auth.payer_account_id) == (Product.DIRECT_BILL, "db1")


async def test_direct_bill_within_credit_limit(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_direct_bill(CA_DB, T0, account_id="db1", credit_limit="1.00")
    auth = await authorized(service, call(1, CA_DB))
    assert auth.product is Product.DIRECT_BILL
    assert auth.max_seconds == 16 * 60  # $0.96 of the $1.00 limit
    await service.settle(auth.reservation_id, 16 * 60, T0 + timedelta(minutes=17))
    assert (await store.get_account("db1")).balance_units == -9_600
    # $0.04 of credit left buys no minute: the next payer in line is Single Call.
    fallback = await authorized(service, call(2, CA_DB))
    assert fallback.product is Product.SINGLE_CALL


async def test_single_call_offer_receivable_and_failed_payment_bars_it(
    service: AccountService, store: AccountStore
) -> None:
    auth = await authorized(service, call(1, NY_NONE))
    assert (auth.product, auth.single_call_offer, auth.payer_account_id) == (
        Product.SINGLE_CALL,
        True,
        None,
    )
    assert auth.max_quote is not None and auth.max_quote.rate_units == 2_500
    settled = await service.settle(auth.reservation_id, 290, T0 + timedelta(minutes=5))
    assert settled.receivable_id == "rcv-call-1"
    receivable = await store.get_receivable("rcv-call-1")
    assert receivable.amount_units == 12_500 and receivable.number_e164 == NY_NONE
    await service.fail_single_call("rcv-call-1", T0 + timedelta(days=1))
    no_payer = await refused(service, call(2, NY_NONE))
    assert no_payer.reason is RefusalReason.NO_PAYER
    assert (no_payer.sip_status, no_payer.q850_cause) == (402, 31)
    await service.confirm_single_call("rcv-call-1", "card", T0 + timedelta(days=2))
    assert (await authorized(service, call(3, NY_NONE))).product is Product.SINGLE_CALL


async def test_single_call_not_offered_where_the_facility_forbids_it(store: AccountStore) -> None:
    facilities = make_facilities()
    facilities["tx"] = replace(facilities["tx"], single_call_allowed=False)
    service = AccountService(store, facilities)
    from accounts import Person

    await store.add_person(Person(facility_id="tx", pin="100001"))
    assert (await refused(service, call(1, NY_NONE))).reason is RefusalReason.NO_PAYER


async def test_a_call_that_never_connected_creates_no_receivable(
    service: AccountService, store: AccountStore
) -> None:
    auth = await authorized(service, call(1, NY_NONE))
    settled = await service.release(auth.reservation_id, T0)
    assert settled.receivable_id is None
    assert await store.list_receivables() == []


@pytest.mark.parametrize(
    ("facility", "pin", "number", "reason", "status", "cause"),
    [
        ("nowhere", "100001", TX_AC, RefusalReason.FACILITY_NOT_ALLOWED, 403, 21),
        ("tx", "999999", TX_AC, RefusalReason.UNKNOWN_PIN, 403, 21),
        ("tx", "100001", "123", RefusalReason.INVALID_NUMBER, 404, 1),
        ("tx", "100001", "+18005550100", RefusalReason.INVALID_NUMBER, 404, 1),
        ("tx", "100001", BLOCKED, RefusalReason.BLOCKED, 403, 21),
        ("tx", "100001", "+15125550111", RefusalReason.SELF_BLOCKED, 403, 21),
        ("al", "200001", CA_DB, RefusalReason.NOT_ALLOWED, 403, 21),
    ],
)
async def test_screening_refusals_map_to_sip_outcomes(
    service: AccountService,
    store: AccountStore,
    facility: str,
    pin: str,
    number: str,
    reason: RefusalReason,
    status: int,
    cause: int,
) -> None:
    await funded_ac(service)
    await store.set_facility_block("tx", BLOCKED, prefix=False, blocked=True)
    await service.block_facility_for_number("+15125550111", "tx")
    refusal = await refused(service, call(1, number, pin=pin, facility=facility))
    assert refusal.reason is reason
    assert (refusal.sip_status, refusal.q850_cause) == (status, cause)
    assert refusal.reason_header().startswith(f"Q.850;cause={cause};text=")
    assert await store.open_reservations() == []
    assert (await store.get_account("ac0100")).held_units == 0


async def test_blocked_prefix_and_self_block_for_all_facilities(
    service: AccountService, store: AccountStore
) -> None:
    await store.set_facility_block("tx", "+1212", prefix=True, blocked=True)
    assert (await refused(service, call(1, NY_NONE))).reason is RefusalReason.BLOCKED
    await service.block_facility_for_number(TX_AC, None)
    assert (await refused(service, call(2))).reason is RefusalReason.SELF_BLOCKED
    # The called party may remove their own block.
    await service.unblock_facility_for_number(TX_AC, None)
    assert isinstance(await service.authorize(call(3)), Authorization)


async def test_allowed_list_and_privileged_numbers(
    service: AccountService, store: AccountStore
) -> None:
    await funded_ac(service)
    auth = await authorized(service, call(1, TX_AC, pin="200001", facility="al"))
    assert not auth.privileged
    await store.set_privileged(PRIVILEGED, True, "attorney")
    # An attorney is reachable without an allowed-list entry, and is flagged.
    lawyer = await authorized(service, call(2, PRIVILEGED, pin="200001", facility="al"))
    assert lawyer.privileged
    assert (await authorized(service, call(3, PRIVILEGED))).privileged


async def test_restrictions_release_and_language(
    service: AccountService, store: AccountStore
) -> None:
    await funded_ac(service)
    assert (await authorized(service, call(1, pin="100002"))).language == "es"
    until = T0 + timedelta(days=2)
    await store.set_restrictions("tx", "100001", [Restriction("suspension", until)])
    assert (await refused(service, call(2))).reason is RefusalReason.PERSON_RESTRICTED
    assert isinstance(await service.authorize(call(3, at=until)), Authorization)
    await service.release_person("tx", "100002", T0)
    assert (await refused(service, call(4, pin="100002"))).reason is RefusalReason.PERSON_RELEASED


async def test_calling_hours_in_facility_local_time(store: AccountStore) -> None:
    facilities = make_facilities()
    facilities["tx"] = replace(
        facilities["tx"],
        timezone="America/Chicago",
        calling_hours=(CallingWindow(time(7), time(22), frozenset({"mon", "tue"})),),
    )
    service = AccountService(store, facilities)
    from accounts import Person

    await store.add_person(Person(facility_id="tx", pin="100001"))
    await funded_ac(service)
    monday_9am_chicago = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    monday_11pm_chicago = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)
    wednesday_9am_chicago = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    assert isinstance(await service.authorize(call(1, at=monday_9am_chicago)), Authorization)
    for n, at in ((2, monday_11pm_chicago), (3, wednesday_9am_chicago)):
        assert (await refused(service, call(n, at=at))).reason is RefusalReason.OUTSIDE_HOURS


async def test_store_unavailable_is_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SqliteAccountStore(tmp_path / "a.sqlite3")
    await store.open()
    service = AccountService(store, make_facilities())
    await store.close()
    refusal = await refused(service, call(1))
    assert refusal.reason is RefusalReason.STORE_UNAVAILABLE
    assert (refusal.sip_status, refusal.q850_cause) == (503, 41)


async def test_concurrent_calls_never_spend_more_than_the_balance(
    service: AccountService, store: AccountStore
) -> None:
    acct = await funded_ac(service, "1.00")
    service = AccountService(Interleaved(store), make_facilities())  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(service.authorize(call(n)) for n in range(8))
    )
    money = [r for r in results if isinstance(r, Authorization) and r.payer_account_id == acct]
    assert len(money) == 1 and money[0].reservation.amount_units == 9_600
    account = await store.get_account(acct)
    assert account.balance_units == 400 and account.held_units == 9_600
    # The others fell through to the next payer (Single Call), never below zero.
    assert all(
        isinstance(r, Authorization) and r.product is Product.SINGLE_CALL
        for r in results
        if r not in money
    )


async def test_recovery_settles_orphans_from_the_last_heartbeat(
    service: AccountService, store: AccountStore
) -> None:
    acct = await funded_ac(service)
    crashed = await authorized(service, call(1))
    live = await authorized(service, call(2))
    never_answered = await authorized(service, call(3))
    await service.heartbeat(crashed.reservation_id, 15, T0 + timedelta(seconds=20))
    await service.heartbeat(crashed.reservation_id, 75, T0 + timedelta(seconds=80))
    # The process dies here; a new one recovers, and call-2 is still up on another node.
    restarted = AccountService(store, make_facilities())
    done = await restarted.recover(T0 + timedelta(minutes=5), live_call_ids={"call-2"})
    assert {s.reservation.call_id for s in done} == {"call-1", "call-3"}
    by_call = {s.reservation.call_id: s.reservation for s in done}
    assert by_call["call-1"].talked_seconds == 75 and by_call["call-1"].charged_units == 1_200
    assert by_call["call-3"].charged_units == 0
    record = await store.get_cdr("call-1")
    assert record.recovered and record.talked_seconds == 75 and record.total_units == 1_200
    assert [r.call_id for r in await store.open_reservations()] == ["call-2"]
    account = await store.get_account(acct)
    assert account.held_units == live.reservation.amount_units
    assert account.balance_units == 250_000 - 1_200 - live.reservation.amount_units
    del never_answered


async def test_shared_store_recovery_takes_only_silent_reservations(
    service: AccountService, store: AccountStore
) -> None:
    await funded_ac(service)
    silent = await authorized(service, call(1))
    talking = await authorized(service, call(2))
    await service.heartbeat(silent.reservation_id, 30, T0 + timedelta(seconds=30))
    now = T0 + timedelta(seconds=120)
    await service.heartbeat(talking.reservation_id, 100, now - timedelta(seconds=5))
    other_node = AccountService(store, make_facilities())
    done = await other_node.recover(now, stale_after=timedelta(seconds=45))
    assert [s.reservation.call_id for s in done] == ["call-1"]
    assert done[0].reservation.charged_units == 600  # the 30 s heartbeat, one minute
    assert [r.call_id for r in await store.open_reservations()] == ["call-2"]


async def test_settle_input_is_checked(service: AccountService) -> None:
    await funded_ac(service)
    auth = await authorized(service, call(1))
    with pytest.raises(InvalidRequest):
        await service.settle(auth.reservation_id, -1, T0)
    with pytest.raises(InvalidRequest):
        await service.settle(auth.reservation_id, 1.5, T0)  # type: ignore[arg-type]
