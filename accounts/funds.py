"""Prepaid money: deposits, refunds, closures and the inactivity flag."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from accounts.errors import InsufficientFunds, InvalidRequest, InvalidState
from accounts.model import (
    Account,
    AccountStatus,
    Book,
    FundingMethod,
    LedgerTransaction,
    Leg,
    Refund,
    RefundMethod,
    RefundStatus,
)
from accounts.service_core import (
    RESERVE_ATTEMPTS,
    ServiceCore,
    parse_amount,
    parse_funding_method,
)
from rating import Product, deposit_fees

#: Funding methods accepted per product (Direct Bill takes payments, not deposits).
DEPOSIT_METHODS: Mapping[Product, frozenset[FundingMethod]] = {
    Product.ADVANCE_CONNECT: frozenset(
        {
            FundingMethod.CARD,
            FundingMethod.CHECK,
            FundingMethod.MONEY_ORDER,
            FundingMethod.CASH_AGENT,
        }
    ),
    Product.DEBIT: frozenset(FundingMethod),
}


class Funds(ServiceCore):
    """Money into prepaid accounts and back out to the people who paid it in."""

    # -- money in ------------------------------------------------------------
    async def deposit(
        self,
        account_id: str,
        amount: Decimal | str,
        method: FundingMethod | str,
        idempotency_key: str,
        at: datetime,
        *,
        facility_id: str | None = None,
    ) -> LedgerTransaction:
        """Credit a prepaid account; the depositor also pays any funding fee in force.

        The fee comes from the tariff of ``facility_id`` (the facility the
        family is funding calls from) and only where its rules allow one that day.
        """
        units = parse_amount(amount)
        if not idempotency_key:
            raise InvalidRequest("idempotency_key: required for a deposit")
        if not self.policy.deposit_min_units <= units <= self.policy.deposit_max_units:
            raise InvalidRequest(
                f"amount: a deposit must be between {self.policy.deposit_min_units / 10_000:.2f}"
                f" and {self.policy.deposit_max_units / 10_000:.2f}"
            )
        account = await self.store.get_account(account_id)
        funding = parse_funding_method(method)
        allowed = DEPOSIT_METHODS.get(account.product)
        if allowed is None:
            raise InvalidRequest(f"a {account.product} account takes payments, not deposits")
        if funding not in allowed:
            raise InvalidRequest(f"method: {funding} is not accepted for {account.product}")
        if account.status is not AccountStatus.OPEN:
            raise InvalidState(f"account {account_id!r} is {account.status}")
        fee = 0
        if facility_id is not None:
            fee = sum(
                line.amount_units
                for line in deposit_fees(self._facility(facility_id).rated, account.product, at)
            )
        legs = [
            Leg(Book.ACCOUNT, account_id, units),
            Leg(Book.FUNDS_IN, str(funding), -(units + fee)),
        ]
        if fee:
            legs.append(Leg(Book.FEES, str(account.product), fee))
        return await self.store.post(
            LedgerTransaction(
                kind="deposit",
                at=at,
                account_id=account_id,
                idempotency_key=idempotency_key,
                legs=tuple(legs),
                memo=str(funding),
            )
        )

    # -- refunds and closure ---------------------------------------------------
    async def _refund_method(self, account: Account, amount: int) -> RefundMethod:
        """Back to the card when card deposits cover the refund, otherwise by check."""
        card_in = 0
        for tx in await self.store.transactions(account_id=account.id, kind="deposit"):
            if tx.memo == FundingMethod.CARD:
                card_in += sum(
                    leg.amount_units for leg in tx.legs if leg.book is Book.ACCOUNT
                )
        card_out = sum(
            r.amount_units
            for r in await self.store.list_refunds(account_id=account.id)
            if r.method is RefundMethod.CARD and r.status is not RefundStatus.REJECTED
        )
        return RefundMethod.CARD if card_in - card_out >= amount else RefundMethod.CHECK

    async def request_refund(
        self, account_id: str, at: datetime, *, reason: str = "requested"
    ) -> Refund:
        """Refund the whole spendable balance of a prepaid account.

        Within the facility's window after the last call and up to the review
        threshold the refund is approved at once; otherwise it waits in the
        review queue. A balance is never forfeited.
        """
        for _ in range(RESERVE_ATTEMPTS):
            account = await self.store.get_account(account_id)
            if account.product not in (Product.ADVANCE_CONNECT, Product.DEBIT):
                raise InvalidRequest(
                    f"a {account.product} account has no prepaid balance to refund"
                )
            amount = account.balance_units
            if amount <= 0:
                raise InvalidState(f"account {account_id!r} has no balance to refund")
            window_days = self.policy.default_refund_window_days
            if account.last_call_facility in self.facilities:
                window_days = self.facilities[account.last_call_facility].refund_window_days
            within_window = account.last_call_at is None or (
                at - account.last_call_at <= timedelta(days=window_days)
            )
            review = amount > self.policy.refund_review_threshold_units or not within_window
            refund = Refund(
                id=self.new_id(),
                account_id=account_id,
                amount_units=amount,
                method=await self._refund_method(account, amount),
                status=RefundStatus.PENDING_REVIEW if review else RefundStatus.APPROVED,
                requested_at=at,
                reason=reason if within_window else f"{reason}; outside the refund window",
            )
            try:
                return await self.store.create_refund(refund, at=at)
            except InsufficientFunds:
                continue  # a call took a hold meanwhile: refund what is left now
        raise InvalidState(f"account {account_id!r} balance kept changing; try again")

    async def approve_refund(self, refund_id: str, at: datetime) -> Refund:
        return await self.store.decide_refund(refund_id, RefundStatus.APPROVED, at=at)

    async def reject_refund(self, refund_id: str, at: datetime) -> Refund:
        return await self.store.decide_refund(refund_id, RefundStatus.REJECTED, at=at)

    async def mark_refund_paid(self, refund_id: str, at: datetime) -> Refund:
        return await self.store.decide_refund(refund_id, RefundStatus.PAID, at=at)

    async def request_closure(self, account_id: str, at: datetime) -> Account:
        """Stop new calls now; the remainder is refunded once the hold period passes."""
        account = await self.store.get_account(account_id)
        if account.status is not AccountStatus.OPEN:
            raise InvalidState(f"account {account_id!r} is {account.status}")
        return await self.store.update_account(
            account_id,
            status=AccountStatus.CLOSING,
            closure_due_at=at + timedelta(days=self.policy.closure_hold_days),
        )

    async def process_closures(self, at: datetime) -> list[Account]:
        """Close accounts whose hold period passed and whose calls have all settled."""
        closed: list[Account] = []
        for account in await self.store.list_accounts(status=AccountStatus.CLOSING):
            if account.closure_due_at is None or account.closure_due_at > at:
                continue
            if account.held_units:
                continue  # a call is still in progress; try again on the next run
            if account.balance_units > 0 and account.product in (
                Product.ADVANCE_CONNECT,
                Product.DEBIT,
            ):
                await self.request_refund(account.id, at, reason="closure")
            if account.balance_units < 0:
                continue  # a Direct Bill account closes once its debt is paid
            closed.append(await self.store.update_account(account.id, status=AccountStatus.CLOSED))
        return closed

    async def flag_inactive(self, at: datetime) -> list[Account]:
        """Flag prepaid balances idle for the inactivity period for a refund effort."""
        cutoff = at - timedelta(days=self.policy.inactivity_flag_days)
        flagged: list[Account] = []
        for account in await self.store.list_accounts(status=AccountStatus.OPEN):
            if account.product not in (Product.ADVANCE_CONNECT, Product.DEBIT):
                continue
            if account.balance_units <= 0 or account.inactive_flagged_at is not None:
                continue
            last = account.last_activity_at or account.created_at
            if last <= cutoff:
                flagged.append(await self.store.update_account(account.id, inactive_flagged_at=at))
        return flagged

    async def release_person(self, facility_id: str, pin: str, at: datetime) -> Refund | None:
        """Mark a person released and refund their Debit balance."""
        await self.store.mark_released(facility_id, pin, at)
        for account in await self.store.list_accounts(product=Product.DEBIT):
            mine = account.facility_id == facility_id and account.pin == pin
            if mine and account.balance_units > 0:
                return await self.request_refund(account.id, at, reason="release")
        return None

