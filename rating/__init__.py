"""Pure pricing: tariffs, jurisdiction, regulatory caps, quotes and re-rating."""

from rating.money import (
    UNITS_PER_CENT,
    UNITS_PER_DOLLAR,
    MoneyError,
    apply_pct,
    cents_str,
    from_units,
    parse_money,
    rate_str,
    round_to_cent,
    to_units,
)

__all__ = [
    "UNITS_PER_CENT",
    "UNITS_PER_DOLLAR",
    "MoneyError",
    "apply_pct",
    "cents_str",
    "from_units",
    "parse_money",
    "rate_str",
    "round_to_cent",
    "to_units",
]
