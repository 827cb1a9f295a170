"""Fixtures of the account-store contract suite: every test runs on every store factory."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from account_helpers import TX_AC, Ids, make_facilities

from accounts import (
    AccountService,
    AccountsPolicy,
    AccountStore,
    Person,
    SqliteAccountStore,
)

StoreFactory = Callable[[Path], Awaitable[AccountStore]]


async def sqlite_store(tmp_path: Path) -> AccountStore:
    store = SqliteAccountStore(tmp_path / "accounts.sqlite3")
    await store.open()
    return store


#: Every store implementation the contract suite runs against, by name.
STORE_FACTORIES: dict[str, StoreFactory] = {"sqlite": sqlite_store}

# The Redis stores run against real redis-server processes (tests/redis).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redis"))
from redis_servers import redis_cluster_store, redis_store  # noqa: E402

STORE_FACTORIES.update({"redis": redis_store, "redis-cluster": redis_cluster_store})


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """One store factory per run, for tests that need a fresh store per example."""
    return STORE_FACTORIES[request.param]


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[AccountStore]:
    s = await store_factory(tmp_path)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def service(store: AccountStore) -> AccountService:
    svc = AccountService(store, make_facilities(), AccountsPolicy(), new_id=Ids())
    await store.add_person(Person(facility_id="tx", pin="100001", language="en"))
    await store.add_person(Person(facility_id="tx", pin="100002", language="es"))
    await store.add_person(
        Person(facility_id="al", pin="200001", allowed_numbers=frozenset({TX_AC}))
    )
    return svc
