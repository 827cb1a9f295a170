"""Product rules: deposits, refunds, closure, inactivity, Direct Bill, Debit, subscriptions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from account_helpers import CA_DB, T0, TX_AC, make_facilities

from accounts import (
    AccountService,
    AccountStatus,
    AccountStore,
    Authorization,
    Book,
    CallRequest,
    DuplicateRequest,
    InvalidRequest,
    InvalidState,
    RefundMethod,
    RefundStatus,
    UnknownAccount,
)
from rating import AncillaryFee, AncillaryKind, AncillaryTrigger, DateRange, Product


async def snapshot(store: AccountStore) -> tuple[object, ...]:
    return (
        await store.book_totals(),
        len(await store.transactions()),
        [(a.id, a.balance_units, a.held_units, a.status) for a in await store.list_accounts()],
    )


def call(n: int, number: str = TX_AC, at=T0, **kw: object) -> CallRequest:  # type: ignore[no-untyped-def]
    return CallRequest(f"call-{n}", "tx", "100001", number, at, **kw)  # type: ignore[arg-type]


async def talk(service: AccountService, n: int, seconds: int, at=T0, **kw: object) -> Authorization:  # type: ignore[no-untyped-def]
    auth = await service.authorize(call(n, at=at, **kw))
    assert isinstance(auth, Authorization), auth
    await service.settle(auth.reservation_id, seconds, at + timedelta(seconds=seconds))
    return auth


# -- deposits and bad input ------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "method", "message"),
    [
        ("0", "card", "greater than zero"),
        ("-5.00", "card", "greater than zero"),
        ("1.001", "card", "decimal places"),
        (1.5, "card", "decimal string"),
        ("ten", "card", "not a decimal"),
        ("NaN", "card", "not a finite"),
        ("500.01", "card", "between"),
        ("5.00", "bitcoin", "unknown funding method"),
        ("5.00", "trust", "not accepted"),
    ],
)
async def test_bad_deposits_are_refused_and_change_nothing(
    service: AccountService, store: AccountStore, amount: object, method: str, message: str
) -> None:
    account = await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    before = await snapshot(store)
    with pytest.raises(InvalidRequest, match=message):
        await service.deposit(account.id, amount, method, "k1", T0)  # type: ignore[arg-type]
    assert await snapshot(store) == before


async def test_duplicate_and_misdirected_deposits(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "50.00", "card", "k1", T0)
    await service.open_direct_bill(CA_DB, T0, account_id="db1")
    before = await snapshot(store)
    with pytest.raises(DuplicateRequest):
        await service.deposit("ac1", "50.00", "card", "k1", T0)
    with pytest.raises(UnknownAccount):
        await service.deposit("nope", "5.00", "card", "k2", T0)
    with pytest.raises(InvalidRequest, match="idempotency"):
        await service.deposit("ac1", "5.00", "card", "", T0)
    with pytest.raises(InvalidRequest, match="payments"):
        await service.deposit("db1", "5.00", "card", "k3", T0)
    assert await snapshot(store) == before
    # No minimum balance, and $50 in one deposit is accepted.
    assert (await store.get_account("ac1")).balance_units == 500_000


async def test_bad_numbers_open_no_account(service: AccountService, store: AccountStore) -> None:
    for bad in ("12", "+1800555010", "+18005550100", "call me"):
        with pytest.raises(InvalidRequest):
            await service.open_advance_connect([bad], T0)
    assert await store.list_accounts() == []


async def test_funding_fee_only_where_the_rules_allow_it(store: AccountStore) -> None:
    facilities = make_facilities()
    tx = facilities["tx"]
    fee = AncillaryFee(
        name="automated payment fee",
        kind=AncillaryKind.AUTOMATED_PAYMENT,
        trigger=AncillaryTrigger.DEPOSIT,
        amount=30_000,
        allowed=DateRange(end=date(2026, 3, 31)),
    )
    rated = replace(tx.rated, tariff=replace(tx.rated.tariff, ancillary_fees=(fee,)))
    facilities["tx"] = replace(tx, rated=rated)
    service = AccountService(store, facilities)
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "20.00", "card", "k1", T0, facility_id="tx")
    assert (await store.get_account("ac1")).balance_units == 200_000
    assert await store.book_balance(Book.FEES, "advance_connect") == 30_000
    assert await store.book_balance(Book.FUNDS_IN, "card") == -230_000
    # After the fee's allowed range ends no fee is charged.
    await service.deposit("ac1", "20.00", "card", "k2", T0 + timedelta(days=60), facility_id="tx")
    assert await store.book_balance(Book.FEES, "advance_connect") == 30_000


# -- refunds, closure, inactivity --------------------------------------------------


async def test_refund_small_balance_to_card_at_once(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "25.00", "card", "k1", T0)
    await talk(service, 1, 120)
    refund = await service.request_refund("ac1", T0 + timedelta(days=10))
    assert (refund.amount_units, refund.method, refund.status) == (
        250_000 - 1_200,
        RefundMethod.CARD,
        RefundStatus.APPROVED,
    )
    assert (await store.get_account("ac1")).balance_units == 0
    await service.mark_refund_paid(refund.id, T0 + timedelta(days=11))
    assert await store.book_balance(Book.FUNDS_OUT, "card") == 248_800
    with pytest.raises(InvalidState, match="no balance"):
        await service.request_refund("ac1", T0 + timedelta(days=12))


async def test_refund_over_threshold_waits_for_review_and_check_for_cash(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    for i in range(3):
        await service.deposit("ac1", "40.00", "money_order", f"k{i}", T0)
    refund = await service.request_refund("ac1", T0)
    assert (refund.status, refund.method) == (RefundStatus.PENDING_REVIEW, RefundMethod.CHECK)
    assert [r.id for r in await store.list_refunds(status=RefundStatus.PENDING_REVIEW)] == [
        refund.id
    ]
    # The money is out of reach of calls while under review.
    assert (await store.get_account("ac1")).balance_units == 0
    with pytest.raises(InvalidState):
        await service.mark_refund_paid(refund.id, T0)
    await service.approve_refund(refund.id, T0)
    paid = await service.mark_refund_paid(refund.id, T0)
    assert paid.status is RefundStatus.PAID
    assert await store.book_balance(Book.FUNDS_OUT, "check") == 1_200_000


async def test_rejected_refund_returns_the_money(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "150.00", "card", "k1", T0)
    refund = await service.request_refund("ac1", T0)
    await service.reject_refund(refund.id, T0)
    assert (await store.get_account("ac1")).balance_units == 1_500_000


async def test_refund_window_follows_the_facility_of_the_last_call(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "25.00", "card", "k1", T0)
    await talk(service, 1, 60)
    # tx keeps a 365-day window: still automatic after 300 days.
    inside = await service.request_refund("ac1", T0 + timedelta(days=300))
    assert inside.status is RefundStatus.APPROVED
    await service.deposit("ac1", "25.00", "card", "k2", T0 + timedelta(days=300))
    outside = await service.request_refund("ac1", T0 + timedelta(days=700))
    # Past the window the balance is still never taken: it goes to review.
    assert outside.status is RefundStatus.PENDING_REVIEW
    assert "outside the refund window" in outside.reason


async def test_closure_holds_then_refunds_the_remainder(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "25.00", "card", "k1", T0)
    in_progress = await service.authorize(call(1))
    assert isinstance(in_progress, Authorization)
    closing = await service.request_closure("ac1", T0)
    assert closing.status is AccountStatus.CLOSING
    assert closing.closure_due_at == T0 + timedelta(days=7)
    # No new calls from a closing account (the next payer, Single Call, is offered).
    after = await service.authorize(call(2))
    assert isinstance(after, Authorization) and after.product is Product.SINGLE_CALL
    assert await service.process_closures(T0 + timedelta(days=6)) == []
    # The call made before the request is still running: closure waits for it.
    assert await service.process_closures(T0 + timedelta(days=8)) == []
    await service.settle(in_progress.reservation_id, 300, T0 + timedelta(days=8))
    closed = await service.process_closures(T0 + timedelta(days=9))
    assert [(a.id, a.status) for a in closed] == [("ac1", AccountStatus.CLOSED)]
    [refund] = await store.list_refunds(account_id="ac1")
    assert refund.amount_units == 250_000 - 3_000 and refund.reason == "closure"
    with pytest.raises(InvalidState):
        await service.deposit("ac1", "5.00", "card", "k9", T0 + timedelta(days=10))


async def test_inactive_balances_are_flagged_never_taken(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "25.00", "card", "k1", T0)
    assert await service.flag_inactive(T0 + timedelta(days=179)) == []
    [flagged] = await service.flag_inactive(T0 + timedelta(days=181))
    assert flagged.inactive_flagged_at == T0 + timedelta(days=181)
    assert flagged.balance_units == 250_000
    assert await service.flag_inactive(T0 + timedelta(days=200)) == []
    # Activity clears the flag.
    await service.deposit("ac1", "1.00", "card", "k2", T0 + timedelta(days=201))
    assert (await store.get_account("ac1")).inactive_flagged_at is None


# -- Direct Bill ---------------------------------------------------------------------


async def test_direct_bill_invoice_past_due_blocks_and_payment_unblocks(
    service: AccountService, store: AccountStore
) -> None:
    account = await service.open_direct_bill(CA_DB, T0, account_id="db1")
    assert account.credit_limit_units == 300_000  # $30 to start
    await talk(service, 1, 600, number=CA_DB)
    await talk(service, 2, 300, number=CA_DB)
    month_end = T0 + timedelta(days=30)
    invoice = await service.issue_invoice("db1", T0, month_end, month_end)
    assert invoice is not None and invoice.amount_units == 9_000
    assert invoice.due_at == month_end + timedelta(days=21)
    with pytest.raises(DuplicateRequest):
        await service.issue_invoice("db1", T0, month_end, month_end)
    standing = await service.direct_bill_standing("db1", month_end + timedelta(days=1))
    assert not standing.blocked
    late = month_end + timedelta(days=22)
    standing = await service.direct_bill_standing("db1", late)
    assert (standing.blocked, standing.reason, standing.past_due_units) == (
        True,
        "invoice past due",
        9_000,
    )
    blocked = await service.authorize(call(3, CA_DB, at=late))
    assert isinstance(blocked, Authorization) and blocked.product is Product.SINGLE_CALL
    await service.release(blocked.reservation_id, late)
    await service.record_payment("db1", "0.90", "card", "p0", late)
    standing = await service.direct_bill_standing("db1", late)
    assert not standing.blocked and standing.past_due_units == 0
    ok = await service.authorize(call(4, CA_DB, at=late))
    assert isinstance(ok, Authorization) and ok.product is Product.DIRECT_BILL


async def test_direct_bill_partial_payment_keeps_the_block(service: AccountService) -> None:
    await service.open_direct_bill(CA_DB, T0, account_id="db1")
    await talk(service, 1, 600, number=CA_DB)
    end = T0 + timedelta(days=30)
    await service.issue_invoice("db1", T0, end, end)
    late = end + timedelta(days=25)
    await service.record_payment("db1", "0.30", "card", "p1", late)
    assert (await service.direct_bill_standing("db1", late)).past_due_units == 3_000
    await service.record_payment("db1", "0.30", "card", "p2", late)
    assert not (await service.direct_bill_standing("db1", late)).blocked


async def test_direct_bill_limit_raised_after_paying_on_time(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_direct_bill(CA_DB, T0, account_id="db1")
    for month in range(3):
        start = T0 + timedelta(days=30 * month)
        end = start + timedelta(days=30)
        await talk(service, month, 300, at=start + timedelta(days=1), number=CA_DB)
        invoice = await service.issue_invoice("db1", start, end, end)
        assert invoice is not None
        await service.record_payment("db1", "0.30", "card", f"p{month}", end + timedelta(days=5))
    assert (await store.get_account("db1")).credit_limit_units == 500_000


async def test_direct_bill_limit_not_raised_after_a_late_payment(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_direct_bill(CA_DB, T0, account_id="db1")
    await talk(service, 1, 300, number=CA_DB)
    end = T0 + timedelta(days=30)
    await service.issue_invoice("db1", T0, end, end)
    await service.record_payment("db1", "0.30", "card", "p1", end + timedelta(days=40))
    await service.record_payment("db1", "0.01", "card", "p2", T0 + timedelta(days=100))
    assert (await store.get_account("db1")).credit_limit_units == 300_000


# -- Debit -------------------------------------------------------------------------------


async def test_debit_pays_any_number_and_is_refunded_on_release(
    service: AccountService, store: AccountStore
) -> None:
    debit = await service.open_debit("tx", "100001", T0, account_id="debit1")
    await service.deposit(debit.id, "10.00", "trust", "t1", T0)
    await service.deposit(debit.id, "5.00", "card", "f1", T0)
    auth = await talk(service, 1, 120, number="+12125550100", use_debit=True)
    assert auth.product is Product.DEBIT
    refund = await service.release_person("tx", "100001", T0 + timedelta(days=1))
    assert refund is not None and refund.amount_units == 150_000 - 1_200
    assert refund.method is RefundMethod.CHECK
    assert refund.reason == "release"
    with pytest.raises(InvalidState):
        await service.open_debit("tx", "100001", T0)


# -- subscriptions ---------------------------------------------------------------------


async def test_subscription_covers_its_minutes_then_the_next_payer_pays(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", "25.00", "card", "k1", T0)
    sub = await service.buy_subscription(
        TX_AC, "tx", T0, T0 + timedelta(days=30), "1.00", 25, "card", "s1", T0
    )
    first = await talk(service, 1, 1200)
    assert first.product is Product.SUBSCRIPTION
    # 300 covered seconds remain: still at least a minute, capped there.
    second = await service.authorize(call(2))
    assert isinstance(second, Authorization) and second.product is Product.SUBSCRIPTION
    assert second.max_seconds == 300
    await service.settle(second.reservation_id, 300, T0)
    third = await service.authorize(call(3))
    assert isinstance(third, Authorization) and third.product is Product.ADVANCE_CONNECT
    used = await store.get_subscription(sub.id)
    assert used.used_seconds == 1500 and used.remaining_seconds == 0
    held = third.reservation.amount_units
    assert (await store.get_account("ac1")).balance_units == 250_000 - held


@pytest.mark.parametrize(
    ("days", "price", "minutes", "message"),
    [
        (32, "1.00", 25, "at most one month"),
        (30, "1.51", 25, "per-minute rate"),
        (30, "1.00", 0, "positive"),
        (30, "-1.00", 10, "greater than zero"),
    ],
)
async def test_subscription_rules(
    service: AccountService, store: AccountStore, days: int, price: str, minutes: int, message: str
) -> None:
    before = await snapshot(store)
    with pytest.raises(InvalidRequest, match=message):
        await service.buy_subscription(
            TX_AC, "tx", T0, T0 + timedelta(days=days), price, minutes, "card", "s1", T0
        )
    assert await snapshot(store) == before
    assert await store.list_subscriptions() == []


# -- statements ---------------------------------------------------------------------------


async def test_monthly_statement(service: AccountService) -> None:
    await service.open_advance_connect([TX_AC], T0 - timedelta(days=5), account_id="ac1")
    await service.deposit("ac1", "5.00", "card", "k0", T0 - timedelta(days=5))  # February
    await service.deposit("ac1", "20.00", "cash_agent", "k1", T0)
    await talk(service, 1, 61)
    await talk(service, 2, 600, at=T0 + timedelta(days=3))
    await talk(service, 3, 60, at=T0 + timedelta(days=40))  # April
    statement = await service.statement("ac1", 2026, 3)
    assert statement.opening_balance_units == 50_000
    assert [line.amount_units for line in statement.deposits] == [200_000]
    assert [(line.seconds, line.amount_units) for line in statement.calls] == [
        (61, -1_200),
        (600, -6_000),
    ]
    assert statement.closing_balance_units == 250_000 - 7_200
    with pytest.raises(InvalidRequest):
        await service.statement("ac1", 2026, 13)


async def test_amount_types(service: AccountService, store: AccountStore) -> None:
    await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit("ac1", Decimal("12.34"), "card", "k1", T0)
    await service.deposit("ac1", "$0.66", "card", "k2", T0)
    assert (await store.get_account("ac1")).balance_units == 130_000


async def test_monthly_invoices_and_housekeeping(
    service: AccountService, store: AccountStore
) -> None:
    await service.open_direct_bill(CA_DB, T0, account_id="db1")
    await service.open_direct_bill("+13105550101", T0, account_id="db2")  # no calls
    await talk(service, 1, 120, number=CA_DB)
    with pytest.raises(InvalidRequest, match="after it ends"):
        await service.issue_monthly_invoices(2026, 3, T0)
    april = T0 + timedelta(days=31)
    [invoice] = await service.issue_monthly_invoices(2026, 3, april)
    assert (invoice.account_id, invoice.amount_units) == ("db1", 1_200)
    assert await service.issue_monthly_invoices(2026, 3, april) == []
    await service.record_payment("db1", "0.12", "card", "p1", april + timedelta(days=3))
    # No raise before 90 days; then the daily run raises the limit of the punctual payer
    # (db2 was never billed, so it has no record of paying on time).
    assert (await service.housekeeping(april))["credit_limit_raised"] == []
    report = await service.housekeeping(T0 + timedelta(days=91))
    assert report == {"closed": [], "flagged_inactive": [], "credit_limit_raised": ["db1"]}
    assert (await store.get_account("db1")).credit_limit_units == 500_000
    assert (await store.get_account("db2")).credit_limit_units == 300_000
