"""Opening accounts: AdvanceConnect and Direct Bill for called numbers, Debit for a person."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from accounts.errors import InvalidRequest
from accounts.model import Account
from accounts.service_core import ServiceCore, normalize_number, parse_amount
from rating import Product


class AccountOpening(ServiceCore):
    """New accounts, one per product, with their numbers or owner checked."""

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

