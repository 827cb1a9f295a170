"""Direct Bill and statements: payments, standing, invoices, credit review, statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from accounts.errors import DuplicateRequest, InvalidRequest
from accounts.model import (
    Account,
    AccountStatus,
    Book,
    FundingMethod,
    Invoice,
    LedgerTransaction,
    Leg,
)
from accounts.service_core import ServiceCore, add_month, parse_amount, parse_funding_method
from rating import Product

#: Funding methods a Direct Bill payment may come by.
PAYMENT_METHODS = frozenset(
    {FundingMethod.CARD, FundingMethod.CHECK, FundingMethod.MONEY_ORDER, FundingMethod.CASH_AGENT}
)


@dataclass(frozen=True)
class DirectBillStanding:
    account: Account
    past_due_units: int
    #: How much more may be charged before the credit limit is reached.
    headroom_units: int
    blocked: bool
    reason: str


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    kind: str
    description: str
    amount_units: int
    seconds: int | None = None


@dataclass(frozen=True)
class Statement:
    account_id: str
    period_start: datetime
    period_end: datetime
    opening_balance_units: int
    deposits: tuple[StatementLine, ...]
    calls: tuple[StatementLine, ...]
    other: tuple[StatementLine, ...]
    closing_balance_units: int


class Billing(ServiceCore):
    """What a Direct Bill account owes and has paid, and what any account did in a month."""

    # -- Direct Bill -----------------------------------------------------------
    async def record_payment(
        self,
        account_id: str,
        amount: Decimal | str,
        method: FundingMethod | str,
        idempotency_key: str,
        at: datetime,
    ) -> LedgerTransaction:
        """A Direct Bill payment; it unblocks the account at once if it clears the debt."""
        units = parse_amount(amount)
        if not idempotency_key:
            raise InvalidRequest("idempotency_key: required for a payment")
        funding = parse_funding_method(method)
        if funding not in PAYMENT_METHODS:
            raise InvalidRequest(f"method: {funding} is not accepted for a payment")
        account = await self.store.get_account(account_id)
        if account.product is not Product.DIRECT_BILL:
            raise InvalidRequest(f"a {account.product} account takes deposits, not payments")
        tx = await self.store.post(
            LedgerTransaction(
                kind="payment",
                at=at,
                account_id=account_id,
                idempotency_key=idempotency_key,
                legs=(
                    Leg(Book.ACCOUNT, account_id, units),
                    Leg(Book.FUNDS_IN, str(funding), -units),
                ),
                memo=str(funding),
            )
        )
        await self.review_credit_limit(account_id, at)
        return tx

    async def _payments(self, account_id: str) -> list[LedgerTransaction]:
        return await self.store.transactions(account_id=account_id, kind="payment")

    @staticmethod
    def _paid_units(payments: list[LedgerTransaction], account_id: str) -> int:
        return sum(
            leg.amount_units
            for tx in payments
            for leg in tx.legs
            if leg.book is Book.ACCOUNT and leg.ref == account_id
        )

    async def direct_bill_standing(self, account_id: str, at: datetime) -> DirectBillStanding:
        account = await self.store.get_account(account_id)
        if account.product is not Product.DIRECT_BILL:
            raise InvalidRequest(f"account {account_id!r} is not a Direct Bill account")
        invoices = await self.store.list_invoices(account_id)
        paid = self._paid_units(await self._payments(account_id), account_id)
        due = sum(i.amount_units for i in invoices if i.due_at <= at)
        past_due = max(0, due - paid)
        headroom = account.balance_units - account.floor_units
        if account.status is not AccountStatus.OPEN:
            reason = f"account {account.status}"
            return DirectBillStanding(account, past_due, headroom, True, reason)
        if past_due:
            return DirectBillStanding(account, past_due, headroom, True, "invoice past due")
        if headroom <= 0:
            return DirectBillStanding(account, past_due, headroom, True, "credit limit reached")
        return DirectBillStanding(account, past_due, headroom, False, "")

    async def issue_invoice(
        self, account_id: str, period_start: datetime, period_end: datetime, at: datetime
    ) -> Invoice | None:
        """Invoice the calls charged in ``[period_start, period_end)``; None if there were none."""
        account = await self.store.get_account(account_id)
        if account.product is not Product.DIRECT_BILL:
            raise InvalidRequest(f"account {account_id!r} is not a Direct Bill account")
        if period_end <= period_start:
            raise InvalidRequest("period_end must be after period_start")
        charged = 0
        for tx in await self.store.transactions(
            account_id=account_id, kind="call", since=period_start, until=period_end
        ):
            charged -= sum(
                leg.amount_units
                for leg in tx.legs
                if leg.book in (Book.ACCOUNT, Book.HOLD) and leg.ref == account_id
            )
        if charged <= 0:
            return None
        return await self.store.add_invoice(
            Invoice(
                id=f"{account_id}-{period_start.strftime('%Y%m%d')}",
                account_id=account_id,
                period_start=period_start,
                period_end=period_end,
                issued_at=at,
                due_at=at + timedelta(days=self.policy.invoice_due_days),
                amount_units=charged,
            )
        )

    async def issue_monthly_invoices(self, year: int, month: int, at: datetime) -> list[Invoice]:
        """Invoice every Direct Bill account for one calendar month (UTC); run once a month.

        Accounts already invoiced for that month are skipped, so a re-run is harmless.
        """
        if not 1 <= month <= 12:
            raise InvalidRequest("month must be 1..12")
        start = datetime(year, month, 1, tzinfo=UTC)
        end = add_month(start)
        if at < end:
            raise InvalidRequest("a month is invoiced after it ends")
        issued: list[Invoice] = []
        for account in await self.store.list_accounts(product=Product.DIRECT_BILL):
            try:
                invoice = await self.issue_invoice(account.id, start, end, at)
            except DuplicateRequest:
                continue
            if invoice is not None:
                issued.append(invoice)
        return issued

    async def review_credit_limit(self, account_id: str, at: datetime) -> Account:
        """Raise the credit limit once the account has paid on time for long enough."""
        account = await self.store.get_account(account_id)
        raised = self.policy.direct_bill_raised_limit_units
        if account.product is not Product.DIRECT_BILL or account.credit_limit_units >= raised:
            return account
        if at - account.created_at < timedelta(days=self.policy.direct_bill_on_time_days):
            return account
        invoices = [i for i in await self.store.list_invoices(account_id) if i.due_at <= at]
        if not invoices:
            return account  # nothing billed yet, so nothing paid on time either
        payments = await self._payments(account_id)
        # Each invoice is paid when the running total of payments reaches the
        # running total invoiced; it was on time if that happened by its due date.
        owed = 0
        for invoice in invoices:
            owed += invoice.amount_units
            paid_at: datetime | None = None
            running = 0
            for tx in payments:
                running += self._paid_units([tx], account_id)
                if running >= owed:
                    paid_at = tx.at
                    break
            if paid_at is None or paid_at > invoice.due_at:
                return account
        return await self.store.update_account(account_id, credit_limit_units=raised)

    # -- statements -------------------------------------------------------------
    async def statement(self, account_id: str, year: int, month: int) -> Statement:
        """Deposits, each call's duration and charge, and balances for one calendar month (UTC)."""
        if not 1 <= month <= 12:
            raise InvalidRequest("month must be 1..12")
        start = datetime(year, month, 1, tzinfo=UTC)
        end = add_month(start)
        await self.store.get_account(account_id)
        opening = 0
        deposits: list[StatementLine] = []
        calls: list[StatementLine] = []
        other: list[StatementLine] = []
        for tx in await self.store.transactions(account_id=account_id, until=end):
            net = sum(
                leg.amount_units
                for leg in tx.legs
                if leg.book in (Book.ACCOUNT, Book.HOLD) and leg.ref == account_id
            )
            if tx.at < start:
                opening += net
                continue
            line = StatementLine(tx.at, tx.kind, tx.memo, net, tx.seconds)
            if tx.kind in ("deposit", "payment"):
                deposits.append(line)
            elif tx.kind == "call":
                calls.append(line)
            elif net:
                other.append(line)
        closing = opening + sum(
            line.amount_units for line in (*deposits, *calls, *other)
        )
        return Statement(
            account_id=account_id,
            period_start=start,
            period_end=end,
            opening_balance_units=opening,
            deposits=tuple(deposits),
            calls=tuple(calls),
            other=tuple(other),
            closing_balance_units=closing,
        )
