"""Property: whatever the sequence of deposits, calls and refunds, the ledger adds up."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from account_helpers import T0, TX_AC, make_facilities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import (
    AccountService,
    AccountStore,
    Authorization,
    Book,
    CallRequest,
    InvalidState,
    Person,
)

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(1, 5_000)),  # cents
        st.tuples(st.just("call"), st.integers(0, 1_500)),  # talked seconds
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("refund"), st.just(0)),
    ),
    max_size=25,
)


async def run_steps(store: AccountStore, plan: list[Step]) -> None:
    service = AccountService(store, make_facilities())
    await store.add_person(Person(facility_id="tx", pin="1"))
    await service.open_advance_connect([TX_AC], T0, account_id="ac")
    deposited = charged = refunded = 0
    for n, (op, value) in enumerate(plan):
        if op == "deposit":
            await service.deposit("ac", f"{value / 100:.2f}", "card", f"k{n}", T0)
            deposited += value * 100
        elif op == "refund":
            try:
                refund = await service.request_refund("ac", T0)
            except InvalidState:
                continue
            refunded += refund.amount_units
        else:
            before = (await store.get_account("ac")).balance_units
            auth = await service.authorize(CallRequest(f"c{n}", "tx", "1", TX_AC, T0))
            if not isinstance(auth, Authorization) or auth.payer_account_id != "ac":
                # Nothing to pay with: only when less than a minute is affordable.
                assert before < 600
                if isinstance(auth, Authorization):
                    await service.release(auth.reservation_id, T0)
                continue
            assert auth.reservation.amount_units <= before
            settled = await service.settle(auth.reservation_id, value, T0)
            charge = settled.reservation.charged_units or 0
            assert charge <= auth.reservation.amount_units
            assert charge == settled.quote.total_units if settled.quote else charge == 0
            charged += charge
        account = await store.get_account("ac")
        assert account.balance_units >= 0 and account.held_units == 0
        assert account.balance_units == deposited - charged - refunded
    totals = await store.book_totals()
    assert sum(totals.values()) == 0
    assert totals.get((Book.REVENUE.value, "advance_connect"), 0) == charged
    assert await store.book_balance(Book.ACCOUNT, "ac") == deposited - charged - refunded


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
def test_ledger_adds_up_for_any_sequence(
    store_factory: Callable[[Path], Awaitable[AccountStore]], plan: list[Step]
) -> None:
    async def example() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = await store_factory(Path(tmp))
            try:
                await run_steps(store, plan)
            finally:
                await store.close()

    asyncio.run(example())
