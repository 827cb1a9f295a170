"""A facility's tariff: per-minute rates, billing increment, taxes and fees.

All money here is already in integer units (1/10,000 dollar, see
``rating.money``); parsing the TOML form is the configuration loader's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from rating.jurisdiction import Jurisdiction


class Product(StrEnum):
    """Who pays for a call, and how."""

    ADVANCE_CONNECT = "advance_connect"
    DIRECT_BILL = "direct_bill"
    DEBIT = "debit"
    SINGLE_CALL = "single_call"
    SUBSCRIPTION = "subscription"


class FacilityKind(StrEnum):
    PRISON = "prison"
    JAIL = "jail"


class FeeCategory(StrEnum):
    """Regulatory category of a line on the bill (47 CFR 64.6000 terms).

    ``mandatory_tax``: a tax or fee the provider must collect from the
    consumer and remit to a government, passed through at cost.
    ``authorized_fee``: a government-authorized fee remitted to a
    government, passed through at cost.
    ``facility_add_on``: a per-minute additive that recovers the facility's
    costs of making calls available (the 2021 site-commission component, the
    2025 interim rate additive).
    ``ancillary``: a separate charge for an ancillary service (account
    funding, paper bills, single-call services).
    """

    MANDATORY_TAX = "mandatory_tax"
    AUTHORIZED_FEE = "authorized_fee"
    FACILITY_ADD_ON = "facility_add_on"
    ANCILLARY = "ancillary"


class FeeBasis(StrEnum):
    """How a line's amount is computed.

    ``percent`` of the call's usage charge (after its rounding to the cent);
    ``per_call`` a fixed amount on every connected call; ``per_minute`` an
    amount per billed minute (pro rata for per-second billing).
    """

    PERCENT = "percent"
    PER_CALL = "per_call"
    PER_MINUTE = "per_minute"


class AncillaryKind(StrEnum):
    """Ancillary services the FCC rules name (47 CFR 64.6000(a))."""

    AUTOMATED_PAYMENT = "automated_payment"
    LIVE_AGENT = "live_agent"
    PAPER_BILL = "paper_bill"
    SINGLE_CALL = "single_call"
    THIRD_PARTY_TRANSACTION = "third_party_transaction"


class AncillaryTrigger(StrEnum):
    """When an ancillary fee is charged: on each connected call or on a deposit."""

    CALL = "call"
    DEPOSIT = "deposit"


@dataclass(frozen=True, slots=True)
class DateRange:
    """Inclusive range of calendar days; open ends are ``None``."""

    start: date | None = None
    end: date | None = None

    def contains(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def overlaps(self, start: date, end: date | None) -> bool:
        """Whether this range shares a day with ``[start, end]`` (``end`` None: open)."""
        if self.end is not None and self.end < start:
            return False
        return not (end is not None and self.start is not None and self.start > end)


ALWAYS = DateRange()


@dataclass(frozen=True, slots=True)
class Surcharge:
    """A tax, fee or add-on line added to a call's usage charge.

    ``value`` is in pct units (1/10,000 of a percent, ``rating.money``) for
    ``percent``, in money units for ``per_call``, and in money units per
    minute for ``per_minute``. ``products``/``jurisdictions`` empty means all.
    """

    name: str
    category: FeeCategory
    basis: FeeBasis
    value: int
    products: frozenset[Product] = frozenset()
    jurisdictions: frozenset[Jurisdiction] = frozenset()
    allowed: DateRange = ALWAYS
    ancillary_kind: AncillaryKind | None = None

    @property
    def is_tax(self) -> bool:
        return self.category is FeeCategory.MANDATORY_TAX

    def applies_to(self, product: Product, jurisdiction: Jurisdiction) -> bool:
        return (not self.products or product in self.products) and (
            not self.jurisdictions or jurisdiction in self.jurisdictions
        )


@dataclass(frozen=True, slots=True)
class AncillaryFee:
    """A separately charged ancillary service fee, allowed only in ``allowed``.

    A ``call`` fee is added to the quote of each connected call of the listed
    products; a ``deposit`` fee is charged on a deposit into the listed
    products' accounts (``rating.deposit_fees``).
    """

    name: str
    kind: AncillaryKind
    trigger: AncillaryTrigger
    amount: int
    allowed: DateRange
    products: frozenset[Product] = frozenset()

    def as_surcharge(self) -> Surcharge:
        return Surcharge(
            name=self.name,
            category=FeeCategory.ANCILLARY,
            basis=FeeBasis.PER_CALL,
            value=self.amount,
            products=self.products,
            allowed=self.allowed,
            ancillary_kind=self.kind,
        )


@dataclass(frozen=True, slots=True)
class Tariff:
    """Rates in units per minute by product and jurisdiction, and the extras.

    ``international_termination`` maps an ISO region ("MX") to the
    provider's per-minute termination cost for that destination, added on
    top of the international rate; the key ``"*"`` is the fallback.
    ``local_prefixes`` are the NANP area codes or area code + exchange
    prefixes rated as local calls.
    """

    name: str
    increment_seconds: int
    rates: Mapping[Product, Mapping[Jurisdiction, int]]
    surcharges: tuple[Surcharge, ...] = ()
    ancillary_fees: tuple[AncillaryFee, ...] = ()
    international_termination: Mapping[str, int] = field(default_factory=dict)
    local_prefixes: tuple[str, ...] = ()
    #: Call lines that apply to each (product, jurisdiction), precomputed.
    lines_by_key: Mapping[tuple[Product, Jurisdiction], tuple[Surcharge, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 1 <= self.increment_seconds <= 60 or 60 % self.increment_seconds:
            raise ValueError(
                f"increment_seconds: {self.increment_seconds} must divide a minute (1..60)"
            )
        for product, by_jurisdiction in self.rates.items():
            for jurisdiction, units in by_jurisdiction.items():
                if units < 0:
                    raise ValueError(f"rates.{product}.{jurisdiction}: rate must not be negative")
        for line in self.surcharges:
            if line.value < 0:
                raise ValueError(f"surcharge {line.name!r}: amount must not be negative")
        for fee in self.ancillary_fees:
            if fee.amount < 0:
                raise ValueError(f"ancillary fee {fee.name!r}: amount must not be negative")
        lines = self.call_lines()
        for line in lines:
            add_on = line.category is FeeCategory.FACILITY_ADD_ON
            if add_on and line.basis is not FeeBasis.PER_MINUTE:
                raise ValueError(
                    f"surcharge {line.name!r}: a facility add-on is charged per minute, "
                    f"not {line.basis}"
                )
        by_key = {
            (product, jurisdiction): tuple(
                line for line in lines if line.applies_to(product, jurisdiction)
            )
            for product in Product
            for jurisdiction in Jurisdiction
        }
        object.__setattr__(self, "lines_by_key", by_key)

    @property
    def products(self) -> tuple[Product, ...]:
        return tuple(p for p in Product if p in self.rates)

    def termination(self, region: str) -> int:
        """Per-minute termination units for an international destination."""
        terms = self.international_termination
        return terms.get(region, terms.get("*", 0))

    def call_lines(self) -> tuple[Surcharge, ...]:
        """Every line that may be added to a call: surcharges, then per-call ancillary fees."""
        return self.surcharges + tuple(
            fee.as_surcharge()
            for fee in self.ancillary_fees
            if fee.trigger is AncillaryTrigger.CALL
        )
