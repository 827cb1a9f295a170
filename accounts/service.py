"""The accounts service: product rules, funding order and pricing over any account store.

``AccountService`` is composed of one part per seam, each over the shared
``ServiceCore``: calls (screen, authorize, settle, recover), prepaid funds,
Direct Bill and statements, called-party blocks, opening accounts,
subscriptions and PIN-guessing locks. The names the API, the CLI and the
controller use are re-exported here.
"""

from __future__ import annotations

from datetime import datetime

from accounts.billing import PAYMENT_METHODS, Billing, DirectBillStanding, Statement, StatementLine
from accounts.calls import Authorization, CallRequest, Calls, ScreeningResult, Settlement
from accounts.funds import DEPOSIT_METHODS, Funds
from accounts.model import AccountStatus
from accounts.opening import AccountOpening
from accounts.screening import CalledPartyBlocks
from accounts.service_core import (
    CACHE_LIMIT,
    RESERVE_ATTEMPTS,
    ServiceCore,
    ascending_ids,
    normalize_number,
    parse_amount,
)
from accounts.station_guard import StationGuard
from accounts.subscriptions import Subscriptions
from rating import Product

__all__ = [
    "CACHE_LIMIT",
    "DEPOSIT_METHODS",
    "PAYMENT_METHODS",
    "RESERVE_ATTEMPTS",
    "AccountService",
    "Authorization",
    "CallRequest",
    "DirectBillStanding",
    "ScreeningResult",
    "ServiceCore",
    "Settlement",
    "Statement",
    "StatementLine",
    "ascending_ids",
    "normalize_number",
    "parse_amount",
]


class AccountService(
    Calls, Funds, Billing, CalledPartyBlocks, AccountOpening, Subscriptions, StationGuard
):
    """Who pays for a call, decided in real time, over an ``AccountStore``."""

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
