"""Errors of the rating layer: each names the input field it blames."""

from __future__ import annotations


class RatingError(ValueError):
    """A request could not be priced; ``field`` names the input at fault.

    The HTTP layer answers these with a 4xx naming ``field``; the call
    controller answers ``InvalidNumber`` with 404 (number not routable).
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidNumber(RatingError):
    """The called number is garbage, invalid, or cannot be routed or rated."""

    def __init__(self, message: str, *, field: str = "number") -> None:
        super().__init__(message, field=field)


class ProductNotOffered(RatingError):
    """The facility's tariff has no rate for this product."""

    def __init__(self, message: str, *, field: str = "product") -> None:
        super().__init__(message, field=field)
