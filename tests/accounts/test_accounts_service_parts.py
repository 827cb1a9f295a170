"""AccountService is composed of one part per seam; the composition loses and shadows nothing."""

from __future__ import annotations

import inspect

from accounts import AccountService
from accounts.service_core import ServiceCore

#: The operations the API, the CLI and the call controller use.
PUBLIC_OPERATIONS = {
    "approve_refund",
    "authorize",
    "block_facility_for_number",
    "buy_subscription",
    "clear_station_lock",
    "confirm_single_call",
    "deposit",
    "direct_bill_standing",
    "fail_single_call",
    "flag_inactive",
    "heartbeat",
    "housekeeping",
    "issue_invoice",
    "issue_monthly_invoices",
    "list_station_locks",
    "mark_refund_paid",
    "open_advance_connect",
    "open_debit",
    "open_direct_bill",
    "pin_failed",
    "process_closures",
    "record_call",
    "record_payment",
    "recover",
    "reject_refund",
    "release",
    "release_person",
    "request_closure",
    "request_refund",
    "review_credit_limit",
    "screen",
    "settle",
    "statement",
    "station_lock",
    "unblock_facility_for_number",
}


def parts() -> list[type]:
    mro = AccountService.__mro__[1:]
    return [c for c in mro if issubclass(c, ServiceCore) and c is not ServiceCore]


def test_every_operation_is_on_the_service_and_is_a_coroutine() -> None:
    for name in PUBLIC_OPERATIONS:
        assert inspect.iscoroutinefunction(getattr(AccountService, name)), name


def test_no_operation_is_defined_in_two_parts() -> None:
    # With mixins, a name defined twice would silently resolve to the first part.
    seen: dict[str, str] = {}
    for part in parts():
        for name, value in vars(part).items():
            if callable(value) and not name.startswith("__"):
                assert name not in seen, f"{name} is in {seen.get(name)} and {part.__name__}"
                seen[name] = part.__name__
    assert len(parts()) == 7
    assert PUBLIC_OPERATIONS - {"housekeeping"} <= set(seen)
