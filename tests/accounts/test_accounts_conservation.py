"""Randomized concurrent steps: money is conserved and no account goes below its floor."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from datetime import timedelta

import pytest
from account_helpers import T0, Interleaved, make_facilities

from accounts import (
    AccountService,
    AccountsPolicy,
    AccountStore,
    Authorization,
    Book,
    CallRequest,
    InvalidState,
    Person,
    RefundStatus,
)
from rating import Product, to_units

WORKERS = 8
STEPS_PER_WORKER = 400
AC_NUMBERS = [f"+151255501{n:02d}" for n in range(6)]
DB_NUMBERS = [f"+131055501{n:02d}" for n in range(2)]
NOBODY = ["+12125550100"]
PINS = ["100001", "100002", "100003"]


@pytest.mark.parametrize("seed", [1, 2])
async def test_money_is_conserved_under_random_concurrent_steps(
    store: AccountStore, seed: int
) -> None:
    rng = random.Random(seed)
    # A low review threshold so that the review queue is exercised too.
    policy = AccountsPolicy(refund_review_threshold_units=to_units("5.00"))
    service = AccountService(Interleaved(store), make_facilities(), policy)  # type: ignore[arg-type]
    for pin in PINS:
        await store.add_person(Person(facility_id="tx", pin=pin))

    deposits: dict[str, int] = defaultdict(int)
    charges: dict[str, int] = defaultdict(int)
    refunds: dict[str, int] = defaultdict(int)
    receivables = 0
    accounts: dict[str, int] = {}  # id -> floor
    prepaid: list[str] = []
    for i, number in enumerate(AC_NUMBERS):
        account = await service.open_advance_connect([number], T0, account_id=f"ac{i}")
        accounts[account.id] = 0
        prepaid.append(account.id)
    for i, number in enumerate(DB_NUMBERS):
        account = await service.open_direct_bill(
            number, T0, account_id=f"db{i}", credit_limit="2.00"
        )
        accounts[account.id] = -account.credit_limit_units
    for pin in PINS[:2]:
        account = await service.open_debit("tx", pin, T0, account_id=f"debit{pin}")
        accounts[account.id] = 0
        prepaid.append(account.id)

    open_calls: list[Authorization] = []
    counter = iter(range(10**9))
    tally: dict[str, int] = defaultdict(int)

    async def check_floor(account_id: str | None) -> None:
        if account_id is not None:
            account = await store.get_account(account_id)
            assert account.balance_units >= accounts[account_id], account

    async def settle(auth: Authorization, seconds: int, at_offset: int) -> None:
        nonlocal receivables
        settled = await service.settle(
            auth.reservation_id, seconds, T0 + timedelta(seconds=at_offset)
        )
        charged = settled.reservation.charged_units or 0
        assert charged <= auth.reservation.amount_units or auth.payer_account_id is None
        if auth.payer_account_id is not None:
            charges[auth.payer_account_id] += charged
        elif auth.product is Product.SINGLE_CALL:
            receivables += charged
        await check_floor(auth.payer_account_id)

    async def worker(w: int) -> None:
        for step in range(STEPS_PER_WORKER):
            offset = step * 10 + w
            op = rng.choices(
                ["authorize", "heartbeat", "settle", "release", "deposit", "payment", "refund"],
                weights=[30, 10, 20, 6, 18, 6, 10],
            )[0]
            tally[op] += 1
            if op == "authorize":
                number = rng.choice(AC_NUMBERS + DB_NUMBERS + NOBODY)
                request = CallRequest(
                    call_id=f"c{next(counter)}",
                    facility_id="tx",
                    pin=rng.choice(PINS),
                    dialled=number,
                    at=T0 + timedelta(seconds=offset),
                    use_debit=rng.random() < 0.3,
                )
                result = await service.authorize(request)
                if isinstance(result, Authorization):
                    open_calls.append(result)
                    await check_floor(result.payer_account_id)
            elif op in ("heartbeat", "settle", "release") and open_calls:
                auth = rng.choice(open_calls)
                if op == "heartbeat":
                    # The call may be settled by another worker in the meantime.
                    with contextlib.suppress(InvalidState):
                        await service.heartbeat(
                            auth.reservation_id,
                            rng.randint(0, auth.max_seconds),
                            T0 + timedelta(seconds=offset),
                        )
                    continue
                open_calls.remove(auth)
                seconds = 0 if op == "release" else rng.randint(0, auth.max_seconds + 120)
                await settle(auth, seconds, offset)
            elif op == "deposit":
                account_id = rng.choice(prepaid)
                amount = rng.randint(1, 3_000)  # cents
                method = "trust" if account_id.startswith("debit") else "card"
                key = f"dep-{next(counter)}"
                try:
                    await service.deposit(
                        account_id, f"{amount / 100:.2f}", method, key, T0
                    )
                except InvalidState:
                    continue
                deposits[account_id] += amount * 100
            elif op == "payment":
                account_id = rng.choice([a for a in accounts if a.startswith("db")])
                amount = rng.randint(1, 200)
                await service.record_payment(
                    account_id, f"{amount / 100:.2f}", "card", f"pay-{next(counter)}", T0
                )
                deposits[account_id] += amount * 100
            elif op == "refund":
                pending = await store.list_refunds(status=RefundStatus.PENDING_REVIEW)
                if pending and rng.random() < 0.5:
                    refund = rng.choice(pending)
                    try:
                        if rng.random() < 0.5:
                            await service.reject_refund(refund.id, T0)
                            refunds[refund.account_id] -= refund.amount_units
                        else:
                            await service.approve_refund(refund.id, T0)
                            await service.mark_refund_paid(refund.id, T0)
                    except InvalidState:
                        pass  # decided by another worker first
                    continue
                account_id = rng.choice(prepaid)
                try:
                    refund = await service.request_refund(account_id, T0)
                except InvalidState:
                    continue  # nothing to refund
                refunds[account_id] += refund.amount_units
                await check_floor(account_id)

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    assert sum(tally.values()) == WORKERS * STEPS_PER_WORKER
    assert tally["authorize"] > 500 and tally["deposit"] > 300
    # Mid-run holds are what the open calls hold.
    held = defaultdict(int)
    for auth in open_calls:
        if auth.payer_account_id is not None:
            held[auth.payer_account_id] += auth.reservation.amount_units
    for account_id in accounts:
        assert (await store.get_account(account_id)).held_units == held[account_id]
    for auth in list(open_calls):
        await settle(auth, rng.randint(0, auth.max_seconds), 10**6)

    totals = await store.book_totals()
    assert sum(totals.values()) == 0, "every transaction balances"
    assert await store.open_reservations() == []
    paid_calls = 0
    for account_id, floor in accounts.items():
        account = await store.get_account(account_id)
        # The cached balance is the sum of the entries.
        assert account.balance_units == await store.book_balance(Book.ACCOUNT, account_id)
        assert account.held_units == await store.book_balance(Book.HOLD, account_id) == 0
        assert account.balance_units >= floor
        # deposits = balance + charges + refunds + holds, per account.
        assert deposits[account_id] == (
            account.balance_units + charges[account_id] + refunds[account_id] + account.held_units
        ), account_id
        paid_calls += charges[account_id]
    assert paid_calls > 0 and receivables > 0
    earned = sum(v for (book, _), v in totals.items() if book in ("revenue", "fees", "tax"))
    assert earned == paid_calls + receivables
    receivable_total = sum(v for (book, _), v in totals.items() if book == "receivable")
    assert receivable_total == -receivables
    refunded = sum(v for (book, _), v in totals.items() if book in ("refund_payable", "funds_out"))
    assert refunded == sum(refunds.values())
    funds_in = -sum(v for (book, _), v in totals.items() if book == "funds_in")
    assert funds_in == sum(deposits.values())
