"""Fees charged on a deposit into an account (ancillary fees allowed that day)."""

from __future__ import annotations

from datetime import date, datetime

from rating.facility import RatedFacility
from rating.money import round_to_cent
from rating.quote import ChargeLine, day_of
from rating.tariff import AncillaryTrigger, FeeCategory, Product


def deposit_fees(
    facility: RatedFacility, product: Product, at: date | datetime
) -> tuple[ChargeLine, ...]:
    """The ancillary fees the tariff charges on one deposit into a ``product`` account.

    Only fees whose allowed date range contains ``at``'s day are returned;
    empty where the rules in force ban separate ancillary charges and the
    tariff says so with its dates.
    """
    day = day_of(at)
    return tuple(
        ChargeLine(fee.name, FeeCategory.ANCILLARY, round_to_cent(fee.amount))
        for fee in facility.tariff.ancillary_fees
        if fee.trigger is AncillaryTrigger.DEPOSIT
        and (not fee.products or product in fee.products)
        and fee.allowed.contains(day)
    )
