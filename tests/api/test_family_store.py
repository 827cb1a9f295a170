"""The family records' contract, on SQLite, a real Redis and a real Redis Cluster; and the
sign-in rules over them (passcode, set-up code, sessions, throttling)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from accounts import AccountService, AccountStore, SqliteAccountStore, seed_if_empty
from accounts.errors import InvalidRequest
from accounts.family import (
    AlertPreferences,
    FamilyAccess,
    FamilyCredential,
    FamilyPolicy,
    FamilySession,
    SignInRefused,
    SignInThrottled,
    family_store_for,
)
from api.runner import demo_seed_path, open_account_service
from tests.api.conftest import NOW
from tests.api.family_helpers import AC, AC_NUMBER, CHEAP, DB

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redis"))
from redis_servers import redis_cluster_store, redis_store, require_redis


async def sqlite_store(tmp_path: Path) -> AccountStore:
    store = SqliteAccountStore(tmp_path / "family.sqlite3")
    await store.open()
    return store


async def single_redis(tmp_path: Path) -> AccountStore:
    require_redis()
    return await redis_store(tmp_path)


async def cluster_redis(tmp_path: Path) -> AccountStore:
    require_redis()
    return await redis_cluster_store(tmp_path)


STORES: dict[str, Callable[[Path], Awaitable[AccountStore]]] = {
    "sqlite": sqlite_store, "redis": single_redis, "cluster": cluster_redis}


@pytest.fixture(params=list(STORES))
async def family(request: Any, config: Any, tmp_path: Path) -> AsyncIterator[FamilyAccess]:
    store = await STORES[request.param](tmp_path)
    await seed_if_empty(store, demo_seed_path(config), at=NOW)
    service: AccountService = await open_account_service(config, store=store, seed=False)
    try:
        yield FamilyAccess(service, family_store_for(store), FamilyPolicy(**CHEAP))
    finally:
        await store.close()


async def test_records_round_trip(family: FamilyAccess) -> None:
    store = family.store
    assert await store.get_credential(AC) is None
    cred = FamilyCredential(AC, NOW, passcode_hash="h", setup_code_hash="c",
                            setup_expires_at=NOW + timedelta(days=1))
    await store.put_credential(cred)
    assert await store.get_credential(AC) == cred
    session = FamilySession(AC, "a" * 64, "csrf", NOW, NOW + timedelta(minutes=30))
    other = FamilySession(AC, "b" * 64, "csrf2", NOW, NOW + timedelta(minutes=30))
    await store.add_session(session)
    await store.add_session(other)
    assert await store.get_session(AC, "a" * 64) == session
    # A session is found only under its own account.
    assert await store.get_session(DB, "a" * 64) is None
    await store.delete_session(AC, "a" * 64)
    assert await store.get_session(AC, "a" * 64) is None
    await store.delete_sessions(AC)
    assert await store.get_session(AC, "b" * 64) is None
    prefs = AlertPreferences(AC, email="f@example.com", low_balance_units=50_000,
                             refund_alerts=True, refund_notified=("r1:approved",),
                             language="es")
    assert await store.get_alerts(AC) == AlertPreferences(AC)
    await store.put_alerts(prefs)
    assert await store.get_alerts(AC) == prefs
    assert await store.alert_accounts() == [AC]


async def test_failures_count_within_the_window(family: FamilyAccess) -> None:
    store = family.store
    key = f"number:{AC_NUMBER}"
    assert await store.count_failure(key, NOW, 60) == 1
    assert await store.count_failure(key, NOW + timedelta(seconds=30), 60) == 2
    assert await store.failures(key, NOW + timedelta(seconds=70), 60) == 1
    assert await store.failures("address:10.0.0.1", NOW, 60) == 0
    await store.clear_failures(key)
    assert await store.failures(key, NOW + timedelta(seconds=30), 60) == 0


async def test_passcode_is_hashed_and_sign_in_works(family: FamilyAccess) -> None:
    code, expires = await family.issue_setup_code(AC, NOW)
    assert expires == NOW + timedelta(days=7)
    signed = await family.set_passcode(AC_NUMBER, code.lower(), "a good passcode", "1.2.3.4",
                                       NOW)
    cred = await family.store.get_credential(AC)
    assert cred is not None and cred.passcode_hash is not None
    assert cred.passcode_hash.startswith("$argon2id$") and "a good passcode" not in \
        cred.passcode_hash
    assert cred.setup_code_hash is None
    assert await family.session(signed.cookie, NOW) == signed.session
    again = await family.sign_in("(512) 555-0100", "a good passcode", "1.2.3.4", NOW)
    assert again.session.account_id == AC
    # Expired: gone.
    later = NOW + timedelta(seconds=family.policy.session_seconds)
    assert await family.session(again.cookie, later) is None
    assert await family.session("garbage", NOW) is None
    assert await family.session(f"{DB}:{again.cookie.partition(':')[2]}", NOW) is None


async def test_a_new_passcode_signs_everyone_out(family: FamilyAccess) -> None:
    code, _ = await family.issue_setup_code(AC, NOW)
    first = await family.set_passcode(AC_NUMBER, code, "first passcode", "a", NOW)
    code, _ = await family.issue_setup_code(AC, NOW)
    await family.set_passcode(AC_NUMBER, code, "second passcode", "a", NOW)
    assert await family.session(first.cookie, NOW) is None
    with pytest.raises(SignInRefused):
        await family.sign_in(AC_NUMBER, "first passcode", "a", NOW)


async def test_expired_or_replaced_set_up_code_is_refused(family: FamilyAccess) -> None:
    old, _ = await family.issue_setup_code(AC, NOW)
    new, _ = await family.issue_setup_code(AC, NOW)
    with pytest.raises(SignInRefused):
        await family.set_passcode(AC_NUMBER, old, "some passcode", "a", NOW)
    late = NOW + timedelta(days=8)
    with pytest.raises(SignInRefused):
        await family.set_passcode(AC_NUMBER, new, "some passcode", "a", late)
    with pytest.raises(InvalidRequest):
        await family.set_passcode(AC_NUMBER, new, "short", "a", NOW)
    with pytest.raises(InvalidRequest):
        await family.issue_setup_code("debit-tx-100001", NOW)


async def test_throttled_per_number_and_per_address(family: FamilyAccess) -> None:
    code, _ = await family.issue_setup_code(AC, NOW)
    await family.set_passcode(AC_NUMBER, code, "right passcode", "a", NOW)
    for _ in range(family.policy.max_failures_per_number):
        with pytest.raises(SignInRefused):
            await family.sign_in(AC_NUMBER, "wrong passcode", "10.0.0.1", NOW)
    # Locked for the number, even with the right passcode, from anywhere.
    with pytest.raises(SignInThrottled):
        await family.sign_in(AC_NUMBER, "right passcode", "10.0.0.2", NOW)
    later = NOW + timedelta(seconds=family.policy.throttle_window_seconds + 1)
    assert (await family.sign_in(AC_NUMBER, "right passcode", "10.0.0.2", later)).cookie
    # One address trying many numbers is stopped too.
    for i in range(family.policy.max_failures_per_address):
        with pytest.raises(SignInRefused):
            await family.sign_in(f"+1512555{i:04d}", "guess passcode", "10.9.9.9", later)
    with pytest.raises(SignInThrottled):
        await family.sign_in(AC_NUMBER, "right passcode", "10.9.9.9", later)


async def test_pages_on_the_redis_store(config: Any, tmp_path: Path) -> None:
    """Sign-in, a page and a form through the app when the accounts live in Redis."""
    import httpx

    from api import create_app
    from tests.api.family_helpers import cheap_family, post_form, set_up

    store = await single_redis(tmp_path)
    await seed_if_empty(store, demo_seed_path(config), at=NOW)
    service = await open_account_service(config, store=store, seed=False)
    app = cheap_family(create_app(config, service, clock=lambda: NOW))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            assert (await set_up(client)).status_code == 303
            page = await client.get(f"/account/{AC}")
            assert 'id="balance">$25.00<' in page.text
            r = await post_form(client, f"/account/{AC}/blocks", {
                "number": AC_NUMBER, "facility": "al-county-jail", "action": "block"})
            assert r.status_code == 303
            assert await store.list_self_blocks(AC_NUMBER) == ["al-county-jail"]
            assert (await client.get(f"/account/{DB}")).status_code == 403
    finally:
        await store.close()


async def test_one_sweep_per_interval(family: FamilyAccess) -> None:
    import asyncio

    store = family.store
    assert await store.claim_sweep(NOW, 0.3) is True
    assert await store.claim_sweep(NOW, 0.3) is False  # another node within the interval
    await asyncio.sleep(0.35)
    assert await store.claim_sweep(NOW + timedelta(seconds=1), 0.3) is True
