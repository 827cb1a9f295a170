"""Calls: screening, authorization, heartbeats, settlement, recovery, Single Call receivables."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from accounts.cdr import CallDetailRecord, CallOutcome, call_detail_record
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
    Leg,
    Person,
    Receivable,
    ReceivableStatus,
    Reservation,
)
from accounts.policy import FacilityPolicy
from accounts.service_core import CACHE_LIMIT, RESERVE_ATTEMPTS, ServiceCore, parse_funding_method
from accounts.store import PayerCandidates
from rating import CalledNumber, Product, ProductNotOffered, Quote, RatingError


@dataclass(frozen=True)
class CallRequest:
    call_id: str
    facility_id: str
    pin: str
    dialled: str
    at: datetime
    #: The person asked to pay from their own Debit account.
    use_debit: bool = False
    #: The phone the call comes from (the From URI's user part), kept with the hold.
    station: str = ""


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


def _earning_legs(product: Product, q: Quote) -> list[Leg]:
    return [
        Leg(Book.REVENUE, str(product), q.charge_units),
        Leg(Book.FEES, str(product), q.fees_units),
        Leg(Book.TAX, str(product), q.taxes_units),
    ]


def _past_due_units(candidates: PayerCandidates, at: datetime) -> int:
    """What a Direct Bill payer owes on invoices due by ``at``, after payments."""
    due = sum(i.amount_units for i in candidates.direct_bill_invoices if i.due_at <= at)
    return max(0, due - candidates.direct_bill_paid_units)


class Calls(ServiceCore):
    """Who pays for a call, decided in real time, and what the call cost once it ended."""

    async def _reserve(self, reservation: Reservation, *, floor_units: int) -> Reservation:
        held = await self.store.reserve(reservation, floor_units=floor_units)
        if len(self._reservations) >= CACHE_LIMIT:
            self._reservations.clear()
        self._reservations[held.id] = held
        return held

    # -- screening -------------------------------------------------------------
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
        screened: ScreeningResult,
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
            number_e164=screened.called.e164,
            pin=request.pin,
            created_at=request.at,
            max_seconds=max_seconds,
            amount_units=amount,
            account_id=account_id,
            subscription_id=subscription_id,
            owner=self.node_id,
            jurisdiction=str(screened.called.jurisdiction),
            privileged=screened.privileged,
            station=request.station,
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
                self._reservation(request, screened, product, facility.max_call_seconds),
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
            if account is not None and _past_due_units(candidates, request.at) > 0:
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
                        screened,
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
                        screened,
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
            settlement = await self.settle_orphan(
                reservation, at, "settled after restart from the last heartbeat"
            )
            if settlement is not None:
                done.append(settlement)
        return done

    async def settle_orphan(
        self, reservation: Reservation, at: datetime, reason: str
    ) -> Settlement | None:
        """Settle a hold whose controller is gone from its last heartbeat, and write
        its CDR (marked ``recovered``, ``reason`` as the disconnect reason) unless
        the call has one. None when another node settled it first."""
        try:
            settlement = await self._settle(reservation, reservation.heartbeat_seconds, at)
        except InvalidState:
            return None  # settled by another node meanwhile
        # The settled record carries what the store keeps of it; the CDR's facts
        # that only the hold knew (jurisdiction, privileged, station) come from it.
        settled = replace(
            settlement.reservation,
            owner=reservation.owner,
            jurisdiction=reservation.jurisdiction,
            privileged=reservation.privileged,
            station=reservation.station,
        )
        settlement = replace(settlement, reservation=settled)
        await self._recovered_cdr(settlement, at, reason)
        return settlement

    async def _recovered_cdr(self, settlement: Settlement, at: datetime, reason: str) -> None:
        r = settlement.reservation
        try:
            await self.store.get_cdr(r.call_id)
            return
        except NotFound:
            pass
        talked = r.talked_seconds or 0
        record = call_detail_record(
            call_id=r.call_id,
            facility_id=r.facility_id,
            pin=r.pin,
            number=r.number_e164,
            authorization=None,
            settlement=settlement,
            setup_at=r.created_at,
            end_at=r.heartbeat_at if r.heartbeat_at is not None else at,
            talked_seconds=talked,
            outcome=CallOutcome.COMPLETED if talked else CallOutcome.FAILED,
            disconnect_reason=reason,
            disconnect_side="controller",
            recovered=True,
            station=r.station,
        )
        with contextlib.suppress(DuplicateRequest):
            await self.record_call(record)

    async def record_call(self, record: CallDetailRecord) -> CallDetailRecord:
        """Write the CDR of a finished call; ``DuplicateRequest`` if the call has one."""
        return await self.store.add_cdr(record)

    # -- Single Call receivables ------------------------------------------------
    async def confirm_single_call(
        self, receivable_id: str, method: FundingMethod | str, at: datetime
    ) -> Receivable:
        funding = parse_funding_method(method)
        return await self.store.settle_receivable(
            receivable_id, ReceivableStatus.CONFIRMED, method=str(funding), at=at
        )

    async def fail_single_call(self, receivable_id: str, at: datetime) -> Receivable:
        return await self.store.settle_receivable(
            receivable_id, ReceivableStatus.FAILED, method="", at=at
        )
