"""Loading demo (or site) accounts, people and blocks into a fresh store from TOML."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accounts.errors import InvalidRequest
from accounts.model import (
    Account,
    Book,
    FundingMethod,
    LedgerTransaction,
    Leg,
    Person,
)
from accounts.store import AccountStore
from rating import MoneyError, Product, to_units


def _field(table: dict[str, Any], name: str, where: str) -> Any:
    if name not in table:
        raise ValueError(f"{where}: missing {name!r}")
    return table[name]


def _money(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{where}: money must be a decimal string like \"25.00\"")
    try:
        units = to_units(value, places=2, field=where)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    if units <= 0:
        raise ValueError(f"{where}: must be greater than zero")
    return units


def _number(value: Any, where: str) -> str:
    from accounts.service import normalize_number

    if not isinstance(value, str):
        raise ValueError(f"{where}: a number must be a string")
    try:
        return normalize_number(value, where)
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None


def load_seed(path: str | Path) -> dict[str, Any]:
    """Parse and validate a seed file; ``ValueError`` names the faulty entry."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    known = {"people", "accounts", "blocks", "privileged"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    return data


async def seed_if_empty(
    store: AccountStore, path: str | Path, *, at: datetime | None = None
) -> bool:
    """Load ``path`` into ``store`` if the store is fresh; True if it did.

    The whole file is validated before anything is written.
    """
    if not await store.is_empty():
        return False
    data = load_seed(path)
    when = at or datetime.now(UTC)
    people: list[Person] = []
    for i, p in enumerate(data.get("people", [])):
        where = f"people[{i}]"
        language = p.get("language", "en")
        if language not in ("en", "es"):
            raise ValueError(f"{where}: language must be 'en' or 'es'")
        people.append(
            Person(
                facility_id=str(_field(p, "facility", where)),
                pin=str(_field(p, "pin", where)),
                name=str(p.get("name", "")),
                language=language,
                allowed_numbers=frozenset(
                    _number(n, f"{where}.allowed_numbers") for n in p.get("allowed_numbers", [])
                ),
            )
        )
    accounts: list[tuple[Account, int, FundingMethod | None]] = []
    for i, a in enumerate(data.get("accounts", [])):
        where = f"accounts[{i}]"
        try:
            product = Product(_field(a, "product", where))
        except ValueError:
            raise ValueError(f"{where}: unknown product {a.get('product')!r}") from None
        if product not in (Product.ADVANCE_CONNECT, Product.DIRECT_BILL, Product.DEBIT):
            raise ValueError(f"{where}: {product} is not an account product")
        numbers = tuple(_number(n, f"{where}.numbers") for n in a.get("numbers", []))
        if product is not Product.DEBIT and not numbers:
            raise ValueError(f"{where}: a {product} account needs numbers")
        deposit = _money(a["deposit"], f"{where}.deposit") if "deposit" in a else 0
        method = None
        if deposit:
            try:
                method = FundingMethod(a.get("deposit_method", "card"))
            except ValueError:
                raise ValueError(f"{where}: unknown deposit_method") from None
        accounts.append(
            (
                Account(
                    id=str(_field(a, "id", where)),
                    product=product,
                    created_at=when,
                    numbers=numbers,
                    facility_id=str(_field(a, "facility", where))
                    if product is Product.DEBIT
                    else None,
                    pin=str(_field(a, "pin", where)) if product is Product.DEBIT else None,
                    holder_name=str(a.get("holder", "")),
                    credit_limit_units=_money(a["credit_limit"], f"{where}.credit_limit")
                    if product is Product.DIRECT_BILL
                    else 0,
                ),
                deposit,
                method,
            )
        )
    blocks = [
        (
            str(_field(b, "facility", f"blocks[{i}]")),
            str(b["prefix"]) if "prefix" in b else _number(b.get("number"), f"blocks[{i}]"),
            "prefix" in b,
        )
        for i, b in enumerate(data.get("blocks", []))
    ]
    privileged = [
        (
            _number(_field(p, "number", f"privileged[{i}]"), f"privileged[{i}]"),
            str(p.get("note", "")),
        )
        for i, p in enumerate(data.get("privileged", []))
    ]

    for person in people:
        await store.add_person(person)
    for account, deposit, method in accounts:
        await store.create_account(account)
        if deposit and method is not None:
            await store.post(
                LedgerTransaction(
                    kind="deposit",
                    at=when,
                    account_id=account.id,
                    idempotency_key=f"seed-{account.id}",
                    legs=(
                        Leg(Book.ACCOUNT, account.id, deposit),
                        Leg(Book.FUNDS_IN, str(method), -deposit),
                    ),
                    memo=str(method),
                )
            )
    for facility_id, pattern, prefix in blocks:
        await store.set_facility_block(facility_id, pattern, prefix=prefix, blocked=True)
    for number, note in privileged:
        await store.set_privileged(number, True, note)
    return True
