"""The accounts service: product rules, funding order and pricing over any account store."""

from __future__ import annotations

import calendar
import contextlib
import itertools
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from accounts.cdr import CallDetailRecord, CallOutcome
from accounts.errors import (
    DuplicateRequest,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    NotFound,
    Refusal,
    RefusalReason,
    StoreUnavailable,
)
from accounts.model import (
    Account,
    AccountStatus,
    Book,
    FundingMethod,
    Invoice,
    LedgerTransaction,
    Leg,
    Person,
    Receivable,
    ReceivableStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    Reservation,
    Subscription,
)
from accounts.policy import AccountsPolicy, FacilityPolicy
from accounts.pricing import CallPricer
from accounts.store import AccountStore, PayerCandidates
from rating import (
    CalledNumber,
    InvalidNumber,
    MoneyError,
    Product,
    ProductNotOffered,
    Quote,
    RatingError,
    classify_number,
    deposit_fees,
    quote,
    to_units,
)

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
PAYMENT_METHODS = frozenset(
    {FundingMethod.CARD, FundingMethod.CHECK, FundingMethod.MONEY_ORDER, FundingMethod.CASH_AGENT}
)
#: Reservation attempts before giving up on a payer whose balance keeps moving.
RESERVE_ATTEMPTS = 3
#: Entries kept in each in-process cache before it is emptied.
CACHE_LIMIT = 100_000


def normalize_number(number: str, field: str = "number") -> str:
    """A dialled or written number as E.164, with the same rules the controller dials by."""
    try:
        return classify_number(number, "").e164
    except InvalidNumber as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def parse_amount(value: object, field: str = "amount") -> int:
    """A positive money amount (Decimal or string, whole cents) in units."""
    try:
        units = to_units(value, places=2, field=field)  # type: ignore[arg-type]
    except MoneyError as exc:
        raise InvalidRequest(str(exc)) from None
    if units <= 0:
        raise InvalidRequest(f"{field}: must be greater than zero")
    return units


def ascending_ids() -> Callable[[], str]:
    """A source of 32-hex-digit ids: a random 64-bit prefix, then a counter.

    Unique across processes and nodes (the prefix) like a random UUID, but
    ascending within one process, so a store's index appends new ids at one
    end instead of splitting pages all over the tree.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


@dataclass(frozen=True)
class CallRequest:
    call_id: str
    facility_id: str
    pin: str
    dialled: str
    at: datetime
    #: The person asked to pay from their own Debit account.
    use_debit: bool = False


@dataclass(frozen=True)
class ScreeningResult:
    person: Person
    called: CalledNumber
    privileged: bool


@dataclass(frozen=True)
class Authorization:
    """A call that may proceed: who pays, for how long, and the funds held for it."""

    reservation: Reservation
    product: Product
    payer_account_id: str | None
    max_seconds: int
    called: CalledNumber
    person: Person
    privileged: bool
    #: Price of the longest call allowed (the amount held, for money products).
    max_quote: Quote | None
    #: Single Call: the called party must accept the one-time charge (press 3).
    single_call_offer: bool = False

    @property
    def reservation_id(self) -> str:
        return self.reservation.id

    @property
    def language(self) -> str:
        return self.person.language


@dataclass(frozen=True)
class Settlement:
    reservation: Reservation
    quote: Quote | None
    receivable_id: str | None = None


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


def _earning_legs(product: Product, q: Quote) -> list[Leg]:
    return [
        Leg(Book.REVENUE, str(product), q.charge_units),
        Leg(Book.FEES, str(product), q.fees_units),
        Leg(Book.TAX, str(product), q.taxes_units),
    ]


class AccountService:
    """Who pays for a call, decided in real time, over an ``AccountStore``."""

    def __init__(
        self,
        store: AccountStore,
        facilities: Mapping[str, FacilityPolicy],
        policy: AccountsPolicy | None = None,
        *,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.facilities = dict(facilities)
        self.policy = policy or AccountsPolicy()
        self.new_id = new_id or ascending_ids()
        # Rating is pure: classifications, quotes and affordable lengths are cached.
        self.pricer = CallPricer(self.facilities)
        # Reservations this instance made, so settling needs no extra read; the
        # store stays the authority (another node's or a restarted one's calls).
        self._reservations: dict[str, Reservation] = {}

    def _classify(self, facility: FacilityPolicy, number: str) -> CalledNumber:
        return self.pricer.classify(facility, number)

    def _price(
        self,
        facility: FacilityPolicy,
        number: str,
        product: Product,
        seconds: int,
        at: datetime,
    ) -> Quote:
        """``rating.quote`` of the call, from the pricer's caches."""
        return self.pricer.quote(facility, self._classify(facility, number), product, seconds, at)

    async def _reserve(self, reservation: Reservation, *, floor_units: int) -> Reservation:
        held = await self.store.reserve(reservation, floor_units=floor_units)
        if len(self._reservations) >= CACHE_LIMIT:
            self._reservations.clear()
        self._reservations[held.id] = held
        return held

    # -- opening accounts ----------------------------------------------------
    async def open_advance_connect(
        self,
        numbers: Collection[str],
        at: datetime,
        *,
        holder_name: str = "",
        account_id: str | None = None,
    ) -> Account:
        e164 = tuple(sorted({normalize_number(n) for n in numbers}))
        if not e164:
            raise InvalidRequest("numbers: an AdvanceConnect account needs a called number")
        return await self.store.create_account(
            Account(
                id=account_id or self.new_id(),
                product=Product.ADVANCE_CONNECT,
                created_at=at,
                numbers=e164,
                holder_name=holder_name,
            )
        )

    async def open_direct_bill(
        self,
        number: str,
        at: datetime,
        *,
        holder_name: str = "",
        credit_limit: Decimal | str | None = None,
        account_id: str | None = None,
    ) -> Account:
        limit = (
            self.policy.direct_bill_initial_limit_units
            if credit_limit is None
            else parse_amount(credit_limit, "credit_limit")
        )
        return await self.store.create_account(
            Account(
                id=account_id or self.new_id(),
                product=Product.DIRECT_BILL,
                created_at=at,
                numbers=(normalize_number(number),),
                holder_name=holder_name,
                credit_limit_units=limit,
            )
        )

    async def open_debit(
        self, facility_id: str, pin: str, at: datetime, *, account_id: str | None = None
    ) -> Account:
        person = await self.store.get_person(facility_id, pin)
        return await self.store.create_account(
            Account(
                id=account_id or self.new_id(),
                product=Product.DEBIT,
                created_at=at,
                facility_id=person.facility_id,
                pin=person.pin,
                holder_name=person.name,
            )
        )

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
        try:
            funding = FundingMethod(method)
        except ValueError:
            raise InvalidRequest(f"method: unknown funding method {method!r}") from None
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
        try:
            funding = FundingMethod(method)
        except ValueError:
            raise InvalidRequest(f"method: unknown funding method {method!r}") from None
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

    # -- screening -------------------------------------------------------------
    def _facility(self, facility_id: str) -> FacilityPolicy:
        try:
            return self.facilities[facility_id]
        except KeyError:
            raise InvalidRequest(f"facility: unknown facility {facility_id!r}") from None

    async def screen(
        self, facility_id: str, pin: str, number: str, at: datetime
    ) -> ScreeningResult | Refusal:
        """May this person call this number now? One store read."""
        facility = self.facilities.get(facility_id)
        if facility is None:
            return Refusal(RefusalReason.FACILITY_NOT_ALLOWED, facility_id)
        try:
            called = self._classify(facility, number)
        except RatingError as exc:
            return Refusal(RefusalReason.INVALID_NUMBER, str(exc))
        try:
            facts = await self.store.screening_facts(facility_id, pin, called.e164)
        except StoreUnavailable as exc:
            return Refusal(RefusalReason.STORE_UNAVAILABLE, str(exc))
        person = facts.person
        if person is None:
            return Refusal(RefusalReason.UNKNOWN_PIN)
        if person.released_at is not None and person.released_at <= at:
            return Refusal(RefusalReason.PERSON_RELEASED)
        for restriction in person.restrictions:
            if restriction.until is None or at < restriction.until:
                return Refusal(RefusalReason.PERSON_RESTRICTED, restriction.kind)
        if facts.facility_blocked:
            return Refusal(RefusalReason.BLOCKED)
        if facts.self_blocked:
            return Refusal(RefusalReason.SELF_BLOCKED)
        # Attorney calls are never refused for a missing allowed-list entry.
        if (
            facility.allowed_list_required
            and not facts.privileged
            and called.e164 not in person.allowed_numbers
        ):
            return Refusal(RefusalReason.NOT_ALLOWED)
        if not facility.within_calling_hours(at):
            return Refusal(RefusalReason.OUTSIDE_HOURS)
        return ScreeningResult(person=person, called=called, privileged=facts.privileged)

    # -- authorization ---------------------------------------------------------
    async def authorize(self, request: CallRequest) -> Authorization | Refusal:
        """Screen the call, find who pays in the facility's funding order, hold the funds."""
        screened = await self.screen(request.facility_id, request.pin, request.dialled, request.at)
        if isinstance(screened, Refusal):
            return screened
        facility = self.facilities[request.facility_id]
        e164 = screened.called.e164
        try:
            candidates = await self.store.payer_candidates(
                request.facility_id, request.pin, e164, request.at
            )
            for product in facility.funding_order:
                found = await self._try_payer(product, request, facility, screened, candidates)
                if found is not None:
                    return found
        except StoreUnavailable as exc:
            return Refusal(RefusalReason.STORE_UNAVAILABLE, str(exc))
        return Refusal(RefusalReason.NO_PAYER)

    def _reservation(
        self,
        request: CallRequest,
        called: CalledNumber,
        product: Product,
        max_seconds: int,
        *,
        amount: int = 0,
        account_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Reservation:
        return Reservation(
            id=self.new_id(),
            call_id=request.call_id,
            product=product,
            facility_id=request.facility_id,
            number_e164=called.e164,
            pin=request.pin,
            created_at=request.at,
            max_seconds=max_seconds,
            amount_units=amount,
            account_id=account_id,
            subscription_id=subscription_id,
        )

    async def _try_payer(
        self,
        product: Product,
        request: CallRequest,
        facility: FacilityPolicy,
        screened: ScreeningResult,
        candidates: PayerCandidates,
    ) -> Authorization | None:
        called = screened.called
        if product is Product.SUBSCRIPTION:
            return await self._try_subscription(request, facility, screened, candidates)
        if product is Product.SINGLE_CALL:
            if not facility.single_call_allowed or candidates.single_call_barred:
                return None
            try:
                max_quote = self._price(
                    facility, called.e164, product, facility.max_call_seconds, request.at
                )
            except ProductNotOffered:
                return None
            reservation = await self._reserve(
                self._reservation(request, called, product, facility.max_call_seconds),
                floor_units=0,
            )
            return Authorization(
                reservation=reservation,
                product=product,
                payer_account_id=None,
                max_seconds=reservation.max_seconds,
                called=called,
                person=screened.person,
                privileged=screened.privileged,
                max_quote=max_quote,
                single_call_offer=True,
            )
        account: Account | None
        if product is Product.DEBIT:
            account = candidates.debit if request.use_debit else None
        elif product is Product.ADVANCE_CONNECT:
            account = candidates.advance_connect
        elif product is Product.DIRECT_BILL:
            account = candidates.direct_bill
            if account is not None and self._past_due(candidates, request.at) > 0:
                return None
        else:
            return None
        if account is None:
            return None
        for _ in range(RESERVE_ATTEMPTS):
            if account.status is not AccountStatus.OPEN:
                return None
            budget = account.balance_units - account.floor_units
            if budget <= 0:
                return None
            try:
                seconds = self.pricer.longest_call(facility, called, product, budget, request.at)
            except ProductNotOffered:
                return None
            if seconds < self.policy.min_call_seconds:
                return None
            max_quote = self.pricer.quote(facility, called, product, seconds, request.at)
            try:
                reservation = await self._reserve(
                    self._reservation(
                        request,
                        called,
                        product,
                        seconds,
                        amount=max_quote.total_units,
                        account_id=account.id,
                    ),
                    floor_units=account.floor_units,
                )
            except InsufficientFunds:
                # Another call moved the balance between our read and the hold.
                account = await self.store.get_account(account.id)
                continue
            except InvalidState:
                return None
            return Authorization(
                reservation=reservation,
                product=product,
                payer_account_id=account.id,
                max_seconds=seconds,
                called=called,
                person=screened.person,
                privileged=screened.privileged,
                max_quote=max_quote,
            )
        return None

    async def _try_subscription(
        self,
        request: CallRequest,
        facility: FacilityPolicy,
        screened: ScreeningResult,
        candidates: PayerCandidates,
    ) -> Authorization | None:
        subscription = candidates.subscription
        for _ in range(RESERVE_ATTEMPTS):
            if subscription is None:
                return None
            seconds = min(subscription.remaining_seconds, facility.max_call_seconds)
            if seconds < self.policy.min_call_seconds:
                return None
            try:
                reservation = await self._reserve(
                    self._reservation(
                        request,
                        screened.called,
                        Product.SUBSCRIPTION,
                        seconds,
                        subscription_id=subscription.id,
                    ),
                    floor_units=0,
                )
            except InsufficientFunds:
                subscription = await self.store.get_subscription(subscription.id)
                continue
            return Authorization(
                reservation=reservation,
                product=Product.SUBSCRIPTION,
                payer_account_id=None,
                max_seconds=seconds,
                called=screened.called,
                person=screened.person,
                privileged=screened.privileged,
                max_quote=None,
            )
        return None

    async def heartbeat(self, reservation_id: str, seconds: int, at: datetime) -> Reservation:
        """Record how long the call has been talking; a crash settles from here."""
        return await self.store.heartbeat(reservation_id, seconds, at)

    async def settle(self, reservation_id: str, talked_seconds: int, at: datetime) -> Settlement:
        """Charge the rated call (never more than held) and release the rest."""
        if isinstance(talked_seconds, bool) or not isinstance(talked_seconds, int):
            raise InvalidRequest("talked_seconds must be a whole number")
        if talked_seconds < 0:
            raise InvalidRequest("talked_seconds must not be negative")
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is None:
            reservation = await self.store.get_reservation(reservation_id)
        return await self._settle(reservation, talked_seconds, at)

    async def release(self, reservation_id: str, at: datetime) -> Settlement:
        """A call that never connected: nothing is charged."""
        return await self.settle(reservation_id, 0, at)

    async def _settle(self, reservation: Reservation, talked: int, at: datetime) -> Settlement:
        # Never bill past the limit the call was authorized for.
        seconds = min(talked, reservation.max_seconds)
        if reservation.subscription_id is not None:
            settled = await self.store.settle(
                reservation.id, talked_seconds=seconds, charge_legs=(), at=at
            )
            return Settlement(settled, None)
        facility = self._facility(reservation.facility_id)
        # Priced as of authorization, so the charge never exceeds what was held.
        q = self._price(
            facility,
            reservation.number_e164,
            reservation.product,
            seconds,
            reservation.created_at,
        )
        receivable_id = None
        if reservation.account_id is None and q.total_units:
            receivable_id = f"rcv-{reservation.call_id}"
        settled = await self.store.settle(
            reservation.id,
            talked_seconds=seconds,
            charge_legs=_earning_legs(reservation.product, q),
            at=at,
            receivable_id=receivable_id,
        )
        return Settlement(settled, q, receivable_id)

    async def recover(
        self,
        at: datetime,
        live_call_ids: Collection[str] = (),
        *,
        stale_after: timedelta | None = None,
    ) -> list[Settlement]:
        """Settle reservations whose call is gone, from their last heartbeat.

        A crash costs the payer at most one heartbeat interval of talk, never
        more than was talked. A call detail record marked ``recovered`` is
        written when the controller did not write one.

        On a single node at start-up every open reservation not in
        ``live_call_ids`` is gone. Where nodes share a store, pass
        ``stale_after`` (a few heartbeat intervals) so that only reservations
        silent for that long are taken: another node's live calls keep
        heartbeating (with 0 seconds while they ring and prompt).
        """
        done: list[Settlement] = []
        for reservation in await self.store.open_reservations():
            if reservation.call_id in live_call_ids:
                continue
            last_sign = reservation.heartbeat_at or reservation.created_at
            if stale_after is not None and at - last_sign < stale_after:
                continue
            try:
                settlement = await self._settle(reservation, reservation.heartbeat_seconds, at)
            except InvalidState:
                continue  # settled by another node meanwhile
            done.append(settlement)
            await self._recovered_cdr(settlement, at)
        return done

    async def _recovered_cdr(self, settlement: Settlement, at: datetime) -> None:
        r = settlement.reservation
        q = settlement.quote
        try:
            await self.store.get_cdr(r.call_id)
            return
        except NotFound:
            pass
        talked = r.talked_seconds or 0
        answered = r.heartbeat_at is not None
        cdr = CallDetailRecord(
            call_id=r.call_id,
            facility_id=r.facility_id,
            pin=r.pin,
            number_e164=r.number_e164,
            jurisdiction=str(q.jurisdiction) if q is not None else "",
            product=str(r.product),
            payer_account_id=r.account_id,
            setup_at=r.created_at,
            answer_at=None,
            accept_at=None,
            end_at=r.heartbeat_at if answered else at,
            talked_seconds=talked,
            billed_seconds=q.billed_seconds if q is not None else 0,
            charge_units=q.charge_units if q is not None else 0,
            fee_units=q.fees_units if q is not None else 0,
            tax_units=q.taxes_units if q is not None else 0,
            total_units=q.total_units if q is not None else 0,
            outcome=CallOutcome.COMPLETED if talked else CallOutcome.FAILED,
            disconnect_reason="settled after restart from the last heartbeat",
            disconnect_side="controller",
            recovered=True,
            reservation_id=r.id,
        )
        with contextlib.suppress(DuplicateRequest):
            await self.store.add_cdr(cdr)

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

    # -- Direct Bill -----------------------------------------------------------
    @staticmethod
    def _past_due(candidates: PayerCandidates, at: datetime) -> int:
        due = sum(i.amount_units for i in candidates.direct_bill_invoices if i.due_at <= at)
        return max(0, due - candidates.direct_bill_paid_units)

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
        end = _add_month(start)
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

    async def housekeeping(self, at: datetime) -> dict[str, list[str]]:
        """The daily run: due closures, inactivity flags and Direct Bill limit reviews.

        Returns the ids of the accounts each step changed.
        """
        closed = [a.id for a in await self.process_closures(at)]
        flagged = [a.id for a in await self.flag_inactive(at)]
        raised: list[str] = []
        for account in await self.store.list_accounts(
            product=Product.DIRECT_BILL, status=AccountStatus.OPEN
        ):
            reviewed = await self.review_credit_limit(account.id, at)
            if reviewed.credit_limit_units != account.credit_limit_units:
                raised.append(account.id)
        return {"closed": closed, "flagged_inactive": flagged, "credit_limit_raised": raised}

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

    # -- subscriptions ---------------------------------------------------------
    async def buy_subscription(
        self,
        number: str,
        facility_id: str,
        starts_at: datetime,
        ends_at: datetime,
        price: Decimal | str,
        minutes: int,
        method: FundingMethod | str,
        idempotency_key: str,
        at: datetime,
    ) -> Subscription:
        """A fixed price for calls between one number and one facility for up to a month.

        It may not cost more per covered minute than the facility's per-minute
        rate for that number; minutes beyond it are paid by the next payer at
        the ordinary per-minute rate.
        """
        facility = self._facility(facility_id)
        e164 = normalize_number(number)
        units = parse_amount(price, "price")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise InvalidRequest("minutes: must be a positive whole number")
        if ends_at <= starts_at:
            raise InvalidRequest("ends_at must be after starts_at")
        if ends_at > _add_month(starts_at):
            raise InvalidRequest("a subscription period is at most one month")
        if not idempotency_key:
            raise InvalidRequest("idempotency_key: required for a subscription purchase")
        try:
            funding = FundingMethod(method)
        except ValueError:
            raise InvalidRequest(f"method: unknown funding method {method!r}") from None
        # The per-minute rate cap: the package may not cost more than its minutes
        # would at the best per-minute rate this number can be called at.
        per_minute: list[int] = []
        for product in (Product.ADVANCE_CONNECT, Product.DEBIT, Product.DIRECT_BILL):
            try:
                per_minute.append(
                    quote(facility.rated, e164, product, minutes * 60, starts_at).total_units
                )
            except ProductNotOffered:
                continue
        if per_minute and units > min(per_minute):
            raise InvalidRequest(
                "price: a subscription may not cost more than its minutes at the per-minute rate"
            )
        return await self.store.add_subscription(
            Subscription(
                id=self.new_id(),
                number_e164=e164,
                facility_id=facility_id,
                starts_at=starts_at,
                ends_at=ends_at,
                price_units=units,
                covered_seconds=minutes * 60,
            ),
            method=str(funding),
            idempotency_key=idempotency_key,
            at=at,
        )

    # -- Single Call receivables ------------------------------------------------
    async def confirm_single_call(
        self, receivable_id: str, method: FundingMethod | str, at: datetime
    ) -> Receivable:
        try:
            funding = FundingMethod(method)
        except ValueError:
            raise InvalidRequest(f"method: unknown funding method {method!r}") from None
        return await self.store.settle_receivable(
            receivable_id, ReceivableStatus.CONFIRMED, method=str(funding), at=at
        )

    async def fail_single_call(self, receivable_id: str, at: datetime) -> Receivable:
        return await self.store.settle_receivable(
            receivable_id, ReceivableStatus.FAILED, method="", at=at
        )

    # -- called-party blocks ------------------------------------------------------
    async def block_facility_for_number(self, number: str, facility_id: str | None) -> None:
        """The called party asks not to receive calls from a facility (or any facility)."""
        if facility_id is not None:
            self._facility(facility_id)
        await self.store.set_self_block(normalize_number(number), facility_id, True)

    async def unblock_facility_for_number(self, number: str, facility_id: str | None) -> None:
        await self.store.set_self_block(normalize_number(number), facility_id, False)

    # -- statements -------------------------------------------------------------
    async def statement(self, account_id: str, year: int, month: int) -> Statement:
        """Deposits, each call's duration and charge, and balances for one calendar month (UTC)."""
        if not 1 <= month <= 12:
            raise InvalidRequest("month must be 1..12")
        start = datetime(year, month, 1, tzinfo=UTC)
        end = _add_month(start)
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


def _add_month(at: datetime) -> datetime:
    """The same day and time one calendar month later (clamped to the month's end)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)
