"""Admin API for money: accounts of every product, deposits, payments, refunds,
closures, statements, Single Call receivables and subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from accounts import (
    AccountStatus,
    DuplicateRequest,
    LedgerTransaction,
    ReceivableStatus,
    RefundStatus,
    StatementLine,
)
from api.deps import Caller, Context, StrictQuery
from api.deps import e164 as _number
from api.errors import Conflict, InvalidParameter, responses
from api.schemas import (
    AccountDetail,
    AccountOut,
    EntryOut,
    IsoDateTime,
    ReceivableOut,
    RefundOut,
    SubscriptionOut,
    money_str,
)

router = APIRouter(prefix="/v1", tags=["accounts"], dependencies=[StrictQuery])

MONEY_ROLES = ("admin", "finance")
_ERRORS = responses(401, 403, 404, 409, 422, 503)

AMOUNT_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,4})?$"
Money = Annotated[str, Field(pattern=AMOUNT_PATTERN, description="Decimal string, e.g. '25.00'",
                             examples=["25.00"])]
Id = Annotated[str, Path(min_length=1, max_length=100)]
IdempotencyKey = Annotated[str, Field(
    min_length=1, max_length=200,
    description="Client-chosen key; repeating a request with the same key and the same "
    "content returns the original result and moves no money twice.",
)]
FundingMethodName = Literal["card", "check", "money_order", "cash_agent", "trust"]


class NewAccount(BaseModel):
    product: Literal["advance_connect", "direct_bill", "debit"]
    numbers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20,
        description="AdvanceConnect: called numbers it pays for; Direct Bill: exactly one.")
    holder_name: str = Field(default="", max_length=200)
    credit_limit: Money | None = Field(default=None, description="Direct Bill only.")
    facility: str | None = Field(default=None, max_length=100, description="Debit only.")
    pin: str | None = Field(default=None, max_length=40, description="Debit only.")
    id: str | None = Field(default=None, min_length=1, max_length=100,
                           pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                           description="Optional account id; generated if omitted.")


class Deposit(BaseModel):
    amount: Money
    method: FundingMethodName
    idempotency_key: IdempotencyKey
    facility: str | None = Field(
        default=None, max_length=100,
        description="Facility the family funds calls from: its tariff's funding fee applies.")


class Payment(BaseModel):
    amount: Money
    method: Literal["card", "check", "money_order", "cash_agent"]
    idempotency_key: IdempotencyKey


class MoneyMoved(BaseModel):
    """A deposit or payment, and the account after it."""

    entry: EntryOut
    account: AccountOut
    replayed: bool = Field(description="True when this answers a repeated idempotency key.")


class RefundRequest(BaseModel):
    reason: str = Field(default="requested", max_length=200)


class StatementLineOut(BaseModel):
    at: datetime
    kind: str
    description: str
    amount: str
    seconds: int | None = None


class StatementOut(BaseModel):
    account_id: str
    period_start: datetime
    period_end: datetime
    opening_balance: str
    deposits: list[StatementLineOut]
    calls: list[StatementLineOut]
    other: list[StatementLineOut]
    closing_balance: str


class StandingOut(BaseModel):
    account: AccountOut
    past_due: str
    headroom: str = Field(description="How much more may be charged before the limit.")
    blocked: bool
    reason: str


class SingleCallConfirmation(BaseModel):
    method: Literal["card", "check", "money_order", "cash_agent"]


class NewSubscription(BaseModel):
    number: str = Field(min_length=1, max_length=40)
    facility: str = Field(min_length=1, max_length=100)
    starts_at: IsoDateTime
    ends_at: IsoDateTime
    price: Money
    minutes: int = Field(ge=1, le=100_000)
    method: Literal["card", "check", "money_order", "cash_agent"]
    idempotency_key: IdempotencyKey


# -- accounts ---------------------------------------------------------------


@router.post("/accounts", status_code=201, response_model=AccountOut,
             summary="Open an account", responses=_ERRORS)
async def create_account(body: NewAccount, caller: Caller, ctx: Context) -> AccountOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    now = ctx.clock()
    if body.product == "advance_connect":
        account = await service.open_advance_connect(
            body.numbers, now, holder_name=body.holder_name, account_id=body.id)
    elif body.product == "direct_bill":
        if len(body.numbers) != 1:
            raise InvalidParameter("a Direct Bill account has exactly one number",
                                   field="numbers")
        account = await service.open_direct_bill(
            body.numbers[0], now, holder_name=body.holder_name,
            credit_limit=body.credit_limit, account_id=body.id)
    else:
        if not body.facility or not body.pin:
            raise InvalidParameter("a Debit account needs facility and pin",
                                   field="facility" if not body.facility else "pin")
        if body.facility not in ctx.config.facilities:
            raise InvalidParameter(f"unknown facility {body.facility!r}", field="facility")
        account = await service.open_debit(body.facility, body.pin, now, account_id=body.id)
    return AccountOut.of(account)


@router.get("/accounts", response_model=list[AccountOut], summary="List accounts",
            responses=_ERRORS)
async def list_accounts(
    caller: Caller, ctx: Context,
    product: Annotated[Literal["advance_connect", "direct_bill", "debit"] | None,
                       Query()] = None,
    status: Annotated[Literal["open", "closing", "closed"] | None, Query()] = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
) -> list[AccountOut]:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    e164 = _number(number) if number else None
    found = await service.store.list_accounts(
        product=product, status=AccountStatus(status) if status else None, number_e164=e164)
    return [AccountOut.of(a) for a in found]


@router.get("/accounts/{account_id}", response_model=AccountDetail,
            summary="An account with its balance and ledger entries", responses=_ERRORS)
async def get_account(
    account_id: Id, caller: Caller, ctx: Context,
    since: Annotated[IsoDateTime | None, Query()] = None,
    until: Annotated[IsoDateTime | None, Query()] = None,
) -> AccountDetail:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    account = await service.store.get_account(account_id)
    txs = await service.store.transactions(account_id=account_id, since=since, until=until)
    base = AccountOut.of(account).model_dump()
    return AccountDetail(**base, entries=[EntryOut.of(tx, account_id) for tx in txs])


async def _replay(ctx: Context, account_id: str, kind: str, key: str, amount_units: int,
                  method: str) -> LedgerTransaction | None:
    """The earlier transaction with this idempotency key, if it was the same request."""
    service = ctx.require_accounts()
    for tx in await service.store.transactions(account_id=account_id, kind=kind):
        if tx.idempotency_key != key:
            continue
        credited = sum(leg.amount_units for leg in tx.legs
                       if str(leg.book) == "account" and leg.ref == account_id)
        if credited == amount_units and tx.memo == method:
            return tx
        break
    return None


async def _move_money(ctx: Context, account_id: str, kind: str, body: Deposit | Payment,
                      response: Response) -> MoneyMoved:
    from accounts import parse_amount

    service = ctx.require_accounts()
    now = ctx.clock()
    try:
        if isinstance(body, Deposit):
            tx = await service.deposit(account_id, body.amount, body.method,
                                       body.idempotency_key, now, facility_id=body.facility)
        else:
            tx = await service.record_payment(account_id, body.amount, body.method,
                                              body.idempotency_key, now)
        replayed = False
    except DuplicateRequest:
        earlier = await _replay(ctx, account_id, kind, body.idempotency_key,
                                parse_amount(body.amount), body.method)
        if earlier is None:
            raise Conflict("this idempotency key was already used for a different request",
                           field="idempotency_key") from None
        tx, replayed = earlier, True
        response.status_code = 200
    account = await service.store.get_account(account_id)
    return MoneyMoved(entry=EntryOut.of(tx, account_id), account=AccountOut.of(account),
                      replayed=replayed)


@router.post("/accounts/{account_id}/deposits", status_code=201, response_model=MoneyMoved,
             summary="Deposit into an AdvanceConnect or Debit account",
             responses={**_ERRORS, 200: {"model": MoneyMoved,
                                         "description": "Repeated idempotency key"}})
async def deposit(account_id: Id, body: Deposit, caller: Caller, ctx: Context,
                  response: Response) -> MoneyMoved:
    caller.require(*MONEY_ROLES)
    if body.facility is not None and body.facility not in ctx.config.facilities:
        raise InvalidParameter(f"unknown facility {body.facility!r}", field="facility")
    return await _move_money(ctx, account_id, "deposit", body, response)


@router.post("/accounts/{account_id}/payments", status_code=201, response_model=MoneyMoved,
             summary="Record a Direct Bill payment",
             responses={**_ERRORS, 200: {"model": MoneyMoved,
                                         "description": "Repeated idempotency key"}})
async def payment(account_id: Id, body: Payment, caller: Caller, ctx: Context,
                  response: Response) -> MoneyMoved:
    caller.require(*MONEY_ROLES)
    return await _move_money(ctx, account_id, "payment", body, response)


@router.post("/accounts/{account_id}/refunds", status_code=201, response_model=RefundOut,
             summary="Request a refund of the whole prepaid balance", responses=_ERRORS)
async def request_refund(account_id: Id, caller: Caller, ctx: Context,
                         body: RefundRequest | None = None) -> RefundOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    reason = body.reason if body is not None else "requested"
    return RefundOut.of(await service.request_refund(account_id, ctx.clock(), reason=reason))


@router.post("/accounts/{account_id}/closure", response_model=AccountOut,
             summary="Close an account (remainder refunded after the hold period)",
             responses=_ERRORS)
async def close_account(account_id: Id, caller: Caller, ctx: Context) -> AccountOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    return AccountOut.of(await service.request_closure(account_id, ctx.clock()))


@router.get("/accounts/{account_id}/statements/{year}/{month}", response_model=StatementOut,
            summary="Monthly statement (UTC calendar month)", responses=_ERRORS)
async def statement(
    account_id: Id, caller: Caller, ctx: Context,
    year: Annotated[int, Path(ge=2000, le=9998)],
    month: Annotated[int, Path(ge=1, le=12)],
) -> StatementOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    s = await service.statement(account_id, year, month)

    def lines(items: tuple[StatementLine, ...]) -> list[StatementLineOut]:
        return [StatementLineOut(at=i.at, kind=i.kind, description=i.description,
                                 amount=money_str(i.amount_units), seconds=i.seconds)
                for i in items]

    return StatementOut(
        account_id=s.account_id, period_start=s.period_start, period_end=s.period_end,
        opening_balance=money_str(s.opening_balance_units), deposits=lines(s.deposits),
        calls=lines(s.calls), other=lines(s.other),
        closing_balance=money_str(s.closing_balance_units),
    )


@router.get("/accounts/{account_id}/standing", response_model=StandingOut,
            summary="Direct Bill standing: past due, headroom, blocked", responses=_ERRORS)
async def standing(account_id: Id, caller: Caller, ctx: Context) -> StandingOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    s = await service.direct_bill_standing(account_id, ctx.clock())
    return StandingOut(account=AccountOut.of(s.account), past_due=money_str(s.past_due_units),
                       headroom=money_str(s.headroom_units), blocked=s.blocked, reason=s.reason)


# -- refunds --------------------------------------------------------------


@router.get("/refunds", response_model=list[RefundOut], summary="List refunds (review queue)",
            responses=_ERRORS)
async def list_refunds(
    caller: Caller, ctx: Context,
    status: Annotated[Literal["pending_review", "approved", "paid", "rejected"] | None,
                      Query()] = None,
    account_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> list[RefundOut]:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    found = await service.store.list_refunds(
        status=RefundStatus(status) if status else None, account_id=account_id)
    return [RefundOut.of(r) for r in found]


@router.get("/refunds/{refund_id}", response_model=RefundOut, summary="A refund",
            responses=_ERRORS)
async def get_refund(refund_id: Id, caller: Caller, ctx: Context) -> RefundOut:
    caller.require(*MONEY_ROLES)
    return RefundOut.of(await ctx.require_accounts().store.get_refund(refund_id))


@router.post("/refunds/{refund_id}/approve", response_model=RefundOut,
             summary="Approve a refund under review", responses=_ERRORS)
async def approve_refund(refund_id: Id, caller: Caller, ctx: Context) -> RefundOut:
    caller.require(*MONEY_ROLES)
    return RefundOut.of(await ctx.require_accounts().approve_refund(refund_id, ctx.clock()))


@router.post("/refunds/{refund_id}/deny", response_model=RefundOut,
             summary="Deny a refund under review (money returns to the account)",
             responses=_ERRORS)
async def deny_refund(refund_id: Id, caller: Caller, ctx: Context) -> RefundOut:
    caller.require(*MONEY_ROLES)
    return RefundOut.of(await ctx.require_accounts().reject_refund(refund_id, ctx.clock()))


@router.post("/refunds/{refund_id}/paid", response_model=RefundOut,
             summary="Record that an approved refund was paid out", responses=_ERRORS)
async def refund_paid(refund_id: Id, caller: Caller, ctx: Context) -> RefundOut:
    caller.require(*MONEY_ROLES)
    return RefundOut.of(await ctx.require_accounts().mark_refund_paid(refund_id, ctx.clock()))


# -- Single Call receivables --------------------------------------------------


@router.get("/single-calls", response_model=list[ReceivableOut],
            summary="Single Call charges awaiting or past settlement", responses=_ERRORS)
async def list_single_calls(
    caller: Caller, ctx: Context,
    status: Annotated[Literal["pending", "confirmed", "failed"] | None, Query()] = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
) -> list[ReceivableOut]:
    caller.require(*MONEY_ROLES)
    found = await ctx.require_accounts().store.list_receivables(
        number_e164=_number(number) if number else None,
        status=ReceivableStatus(status) if status else None)
    return [ReceivableOut.of(r) for r in found]


@router.post("/single-calls/{receivable_id}/confirm", response_model=ReceivableOut,
             summary="The processor collected a Single Call charge", responses=_ERRORS)
async def confirm_single_call(receivable_id: Id, body: SingleCallConfirmation, caller: Caller,
                              ctx: Context) -> ReceivableOut:
    caller.require(*MONEY_ROLES)
    service = ctx.require_accounts()
    return ReceivableOut.of(
        await service.confirm_single_call(receivable_id, body.method, ctx.clock()))


@router.post("/single-calls/{receivable_id}/fail", response_model=ReceivableOut,
             summary="The processor failed a Single Call charge", responses=_ERRORS)
async def fail_single_call(receivable_id: Id, caller: Caller, ctx: Context) -> ReceivableOut:
    caller.require(*MONEY_ROLES)
    return ReceivableOut.of(
        await ctx.require_accounts().fail_single_call(receivable_id, ctx.clock()))


# -- subscriptions --------------------------------------------------------------


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut,
             summary="Sell a calling subscription", responses=_ERRORS)
async def buy_subscription(body: NewSubscription, caller: Caller, ctx: Context) -> SubscriptionOut:
    caller.require(*MONEY_ROLES)
    if body.facility not in ctx.config.facilities:
        raise InvalidParameter(f"unknown facility {body.facility!r}", field="facility")
    service = ctx.require_accounts()
    sub = await service.buy_subscription(
        body.number, body.facility, body.starts_at, body.ends_at, body.price, body.minutes,
        body.method, body.idempotency_key, ctx.clock())
    return SubscriptionOut.of(sub)


@router.get("/subscriptions", response_model=list[SubscriptionOut],
            summary="List subscriptions", responses=_ERRORS)
async def list_subscriptions(
    caller: Caller, ctx: Context,
    number: Annotated[str | None, Query(max_length=40)] = None,
    facility: Annotated[str | None, Query(max_length=100)] = None,
) -> list[SubscriptionOut]:
    caller.require(*MONEY_ROLES)
    found = await ctx.require_accounts().store.list_subscriptions(
        number_e164=_number(number) if number else None, facility_id=facility)
    return [SubscriptionOut.of(s) for s in found]


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut,
            summary="A subscription", responses=_ERRORS)
async def get_subscription(subscription_id: Id, caller: Caller, ctx: Context) -> SubscriptionOut:
    caller.require(*MONEY_ROLES)
    return SubscriptionOut.of(
        await ctx.require_accounts().store.get_subscription(subscription_id))

