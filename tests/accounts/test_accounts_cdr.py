"""The one CDR builder: a call's record is the same whether it ended normally or was recovered."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from account_helpers import CA_DB, NY_NONE, T0, TX_AC, Ids, make_facilities

from accounts import (
    AccountService,
    AccountStore,
    Authorization,
    CallDetailRecord,
    CallOutcome,
    CallRequest,
    DuplicateRequest,
    Person,
    Settlement,
    SqliteAccountStore,
    call_detail_record,
)
from rating import Product

RECOVERED_REASON = "settled after restart from the last heartbeat"
#: The call talked 75 s, heartbeated at 80 s; it was set up at T0.
HEARTBEAT_AT = T0 + timedelta(seconds=80)


async def open_store(path: Path) -> SqliteAccountStore:
    store = SqliteAccountStore(path / "accounts.sqlite3")
    await store.open()
    await store.add_person(Person(facility_id="tx", pin="100001"))
    return store


def controller_record(
    authorization: Authorization | None,
    settlement: Settlement | None,
    **facts: Any,
) -> CallDetailRecord:
    """The record of a call that ended under its controller; ``facts`` override the defaults."""
    defaults: dict[str, Any] = {
        "call_id": "call-1",
        "facility_id": "tx",
        "pin": "100001",
        "number": TX_AC,
        "setup_at": T0,
        "end_at": T0 + timedelta(seconds=60),
        "talked_seconds": 0,
        "outcome": CallOutcome.COMPLETED,
    }
    return call_detail_record(
        authorization=authorization, settlement=settlement, **(defaults | facts)
    )


async def fund(service: AccountService, product: Product) -> str:
    """Make ``product`` the payer of a call from tx/100001 to its number; return the number."""
    if product is Product.ADVANCE_CONNECT:
        account = await service.open_advance_connect([TX_AC], T0, account_id="ac1")
        await service.deposit(account.id, "25.00", "card", "dep-1", T0)
        return TX_AC
    if product is Product.DIRECT_BILL:
        await service.open_direct_bill(CA_DB, T0, account_id="db1")
        return CA_DB
    if product is Product.SUBSCRIPTION:
        await service.buy_subscription(
            TX_AC, "tx", T0, T0 + timedelta(days=30), "5.00", 100, "card", "sub-1", T0
        )
        return TX_AC
    return NY_NONE  # nobody pays for it: Single Call


async def talking_call(service: AccountService, number: str) -> Authorization:
    auth = await service.authorize(
        CallRequest(call_id="call-1", facility_id="tx", pin="100001", dialled=number, at=T0)
    )
    assert isinstance(auth, Authorization), auth
    await service.heartbeat(auth.reservation_id, 75, HEARTBEAT_AT)
    return auth


@pytest.mark.parametrize(
    "product",
    [Product.ADVANCE_CONNECT, Product.DIRECT_BILL, Product.SINGLE_CALL, Product.SUBSCRIPTION],
)
async def test_normal_end_and_recovery_give_the_same_record_for_the_same_call(
    tmp_path: Path, product: Product
) -> None:
    """Two stores, one call each with the same facts: one hangs up, one crashes after 75 s."""
    (tmp_path / "ended").mkdir()
    (tmp_path / "crashed").mkdir()
    ended_store = await open_store(tmp_path / "ended")
    crashed_store = await open_store(tmp_path / "crashed")
    try:
        ended = AccountService(ended_store, make_facilities(), new_id=Ids())
        crashed = AccountService(crashed_store, make_facilities(), new_id=Ids())
        number = await fund(ended, product)
        assert await fund(crashed, product) == number

        auth = await talking_call(ended, number)
        settlement = await ended.settle(auth.reservation_id, 75, HEARTBEAT_AT)
        normal = controller_record(
            auth,
            settlement,
            number=number,
            answer_at=T0 + timedelta(seconds=3),
            accept_at=T0 + timedelta(seconds=5),
            end_at=HEARTBEAT_AT,
            talked_seconds=75,
            disconnect_reason="caller hung up",
            disconnect_side="caller",
        )
        assert await ended.record_call(normal) == normal
        assert await ended_store.get_cdr("call-1") == normal

        await talking_call(crashed, number)
        restarted = AccountService(crashed_store, make_facilities())
        [recovered_settlement] = await restarted.recover(T0 + timedelta(minutes=5))
        assert recovered_settlement.quote == settlement.quote
        recovered = await crashed_store.get_cdr("call-1")
    finally:
        await ended_store.close()
        await crashed_store.close()

    assert recovered.product == str(product) and recovered.talked_seconds == 75
    # A recovered call knows no answer time and no hang-up; everything else is the same.
    expected = replace(
        normal,
        answer_at=None,
        accept_at=None,
        disconnect_reason=RECOVERED_REASON,
        disconnect_side="controller",
        recovered=True,
    )
    if product is Product.SUBSCRIPTION:
        # No price, and the authorization died with the process: the jurisdiction
        # comes from the hold, which keeps it.
        assert normal.jurisdiction == recovered.jurisdiction == "intrastate"
    assert recovered == expected


async def test_a_recovered_call_record_in_every_field(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        service = AccountService(store, make_facilities(), new_id=Ids())
        await fund(service, Product.ADVANCE_CONNECT)
        auth = await talking_call(service, TX_AC)
        never_answered = await service.authorize(
            CallRequest(call_id="call-2", facility_id="tx", pin="100001", dialled=TX_AC, at=T0)
        )
        assert isinstance(never_answered, Authorization)
        now = T0 + timedelta(minutes=5)
        await AccountService(store, make_facilities()).recover(now)
        talked = await store.get_cdr("call-1")
        silent = await store.get_cdr("call-2")
    finally:
        await store.close()
    assert talked == CallDetailRecord(
        call_id="call-1",
        facility_id="tx",
        pin="100001",
        number_e164=TX_AC,
        jurisdiction="intrastate",
        product="advance_connect",
        payer_account_id="ac1",
        setup_at=T0,
        answer_at=None,
        accept_at=None,
        end_at=HEARTBEAT_AT,
        talked_seconds=75,
        billed_seconds=120,
        charge_units=1_200,
        fee_units=0,
        tax_units=0,
        total_units=1_200,
        outcome=CallOutcome.COMPLETED,
        disconnect_reason=RECOVERED_REASON,
        disconnect_side="controller",
        privileged=False,
        recording_path=None,
        recovered=True,
        reservation_id=auth.reservation_id,
    )
    # Never heartbeated: nothing talked, ended when recovery found it.
    assert (silent.outcome, silent.talked_seconds, silent.total_units) == (
        CallOutcome.FAILED,
        0,
        0,
    )
    assert (silent.end_at, silent.reservation_id) == (now, never_answered.reservation_id)


async def authorized_ac_call(service: AccountService, deposit: str) -> Authorization:
    account = await service.open_advance_connect([TX_AC], T0, account_id="ac1")
    await service.deposit(account.id, deposit, "card", "dep-1", T0)
    auth = await service.authorize(
        CallRequest(call_id="call-1", facility_id="tx", pin="100001", dialled=TX_AC, at=T0)
    )
    assert isinstance(auth, Authorization), auth
    return auth


async def test_the_controller_record_of_a_call_that_never_got_a_payer() -> None:
    record = controller_record(
        None,
        None,
        number="5125550100",
        outcome=CallOutcome.REFUSED,
        disconnect_reason="no payer",
    )
    # What was dialled, as dialled; nobody pays, nothing is charged.
    assert (record.number_e164, record.jurisdiction, record.product) == ("5125550100", "", "")
    assert (record.payer_account_id, record.reservation_id) == (None, None)
    assert (record.total_units, record.billed_seconds, record.recovered) == (0, 0, False)
    assert (record.outcome, record.disconnect_reason) == (CallOutcome.REFUSED, "no payer")


async def test_a_settlement_that_failed_leaves_the_controller_s_count_and_no_charge(
    service: AccountService,
) -> None:
    auth = await authorized_ac_call(service, "25.00")
    record = controller_record(auth, None, number="5125550100", talked_seconds=42)
    assert (record.number_e164, record.jurisdiction, record.product) == (
        TX_AC,
        "intrastate",
        "advance_connect",
    )
    assert (record.payer_account_id, record.reservation_id) == ("ac1", auth.reservation_id)
    assert (record.talked_seconds, record.total_units) == (42, 0)


async def test_the_settled_length_wins_over_the_controller_s_count(
    service: AccountService,
) -> None:
    auth = await authorized_ac_call(service, "1.00")
    # Talked past the authorized limit (the hang-up came late): billed at the limit.
    settlement = await service.settle(auth.reservation_id, auth.max_seconds + 30, T0)
    record = controller_record(auth, settlement, talked_seconds=auth.max_seconds + 30)
    assert record.talked_seconds == auth.max_seconds
    assert settlement.quote is not None
    assert record.total_units == settlement.quote.total_units == auth.reservation.amount_units


async def test_a_call_s_record_is_written_once(
    service: AccountService, store: AccountStore
) -> None:
    record = controller_record(None, None, call_id="call-9", outcome=CallOutcome.FAILED)
    await service.record_call(record)
    with pytest.raises(DuplicateRequest):
        await service.record_call(replace(record, outcome=CallOutcome.COMPLETED))
    assert (await store.get_cdr("call-9")).outcome is CallOutcome.FAILED
