"""Subscriptions: a fixed price for calls between one number and one facility for a period."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from accounts.errors import InvalidRequest
from accounts.model import FundingMethod, Subscription
from accounts.service_core import (
    ServiceCore,
    add_month,
    normalize_number,
    parse_amount,
    parse_funding_method,
)
from rating import Product, ProductNotOffered, quote


class Subscriptions(ServiceCore):
    """Selling subscriptions, capped at the per-minute price of the minutes they cover."""

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
        if ends_at > add_month(starts_at):
            raise InvalidRequest("a subscription period is at most one month")
        if not idempotency_key:
            raise InvalidRequest("idempotency_key: required for a subscription purchase")
        funding = parse_funding_method(method)
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

