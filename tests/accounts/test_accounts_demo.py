"""The demo seed on the shipped configuration, and CDR exports that `ics rerate` reads back."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from account_helpers import T0

from accounts import (
    AccountService,
    AccountsPolicy,
    AccountStore,
    Authorization,
    CallDetailRecord,
    CallOutcome,
    CallRequest,
    FacilityPolicy,
    Refusal,
    RefusalReason,
    export_csv,
    seed_if_empty,
)
from ics.cli import main as ics_main
from rating import Product
from settings.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "demo.toml"
DEMO_SEED = ROOT / "configs" / "seed" / "demo.toml"
# A Monday afternoon in every demo facility's time zone.
AT = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)


@pytest.fixture
async def demo(store: AccountStore) -> AccountService:
    config = load_config(DEMO_CONFIG)
    facilities = {fid: FacilityPolicy.from_config(f) for fid, f in config.facilities.items()}
    service = AccountService(store, facilities, AccountsPolicy.from_config(config.accounts))
    assert await seed_if_empty(store, DEMO_SEED, at=T0)
    return service


async def test_seed_loads_once(demo: AccountService, store: AccountStore) -> None:
    assert not await seed_if_empty(store, DEMO_SEED, at=T0)
    balances = {a.id: a.balance_units for a in await store.list_accounts()}
    assert balances == {
        "ac-14155550100": 1_000_000_000,
        "ac-15125550100": 250_000,
        "db-13105550100": 0,
        "debit-tx-100001": 100_000,
    }
    assert (await store.get_account("db-13105550100")).credit_limit_units == 500_000
    people = {(p.facility_id, p.pin): p.language for p in await store.list_people()}
    assert people == {
        ("tx-state-prison", "100001"): "en",
        ("tx-state-prison", "100002"): "es",
        ("al-county-jail", "200001"): "en",
        ("ak-regional-jail", "300001"): "en",
    }


async def authorize(
    service: AccountService, number: str, pin: str = "100001", **kw: object
) -> Authorization | Refusal:
    return await service.authorize(
        CallRequest(f"c-{number}-{pin}", "tx-state-prison", pin, number, AT, **kw)  # type: ignore[arg-type]
    )


async def test_demo_numbers_behave_as_documented(demo: AccountService) -> None:
    ac = await authorize(demo, "5125550100")
    assert isinstance(ac, Authorization) and ac.payer_account_id == "ac-15125550100"
    db = await authorize(demo, "13105550100", pin="100002")
    assert isinstance(db, Authorization) and db.payer_account_id == "db-13105550100"
    single = await authorize(demo, "+12125550100")
    assert isinstance(single, Authorization) and single.product is Product.SINGLE_CALL
    blocked = await authorize(demo, "+15125550199")
    assert isinstance(blocked, Refusal) and blocked.reason is RefusalReason.BLOCKED
    lawyer = await authorize(demo, "+15125550123", use_debit=True)
    assert isinstance(lawyer, Authorization) and lawyer.privileged
    assert lawyer.payer_account_id == "debit-tx-100001"
    load = await authorize(demo, "+14155550100", pin="100002")
    assert isinstance(load, Authorization) and load.payer_account_id == "ac-14155550100"
    assert load.max_seconds == 20 * 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[accounts]]\nid = "x"\nproduct = "gold"\nnumbers = ["+15125550100"]\n', "product"),
        ('[[accounts]]\nid = "x"\nproduct = "advance_connect"\nnumbers = ["12"]\n', "numbers"),
        (
            '[[accounts]]\nid = "x"\nproduct = "advance_connect"\nnumbers = ["+15125550100"]\n'
            "deposit = 25.5\n",
            "decimal string",
        ),
        ('[[people]]\nfacility = "tx"\npin = "1"\nlanguage = "fr"\n', "language"),
        ("[bogus]\n", "unknown sections"),
        ("not toml [", "demo"),
    ],
)
async def test_bad_seed_files_change_nothing(
    store: AccountStore, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        await seed_if_empty(store, path, at=T0)
    assert await store.is_empty()


async def test_cdr_export_is_rerate_input(
    demo: AccountService, store: AccountStore, tmp_path: Path
) -> None:
    expected: dict[str, str] = {}
    for n, (number, seconds) in enumerate(
        [("+15125550100", 185), ("+13105550100", 61), ("+12125550100", 300)]
    ):
        auth = await demo.authorize(
            CallRequest(f"call-{n}", "tx-state-prison", "100001", number, AT)
        )
        assert isinstance(auth, Authorization)
        settled = await demo.settle(auth.reservation_id, seconds, AT + timedelta(minutes=6))
        q = settled.quote
        assert q is not None
        await store.add_cdr(
            CallDetailRecord(
                call_id=f"call-{n}",
                facility_id="tx-state-prison",
                pin="100001",
                number_e164=auth.called.e164,
                jurisdiction=str(q.jurisdiction),
                product=str(auth.product),
                payer_account_id=auth.payer_account_id,
                setup_at=AT,
                answer_at=AT + timedelta(seconds=5),
                accept_at=AT + timedelta(seconds=15),
                end_at=AT + timedelta(seconds=15 + seconds),
                talked_seconds=seconds,
                billed_seconds=q.billed_seconds,
                charge_units=q.charge_units,
                fee_units=q.fees_units,
                tax_units=q.taxes_units,
                total_units=q.total_units,
                outcome=CallOutcome.COMPLETED,
                disconnect_reason="caller hung up",
                disconnect_side="caller",
            )
        )
        expected[f"call-{n}"] = f"{q.total_units / 10_000:.2f}"
    exported = tmp_path / "cdrs.csv"
    exported.write_text(export_csv(await store.list_cdrs()))
    rows = list(csv.DictReader(exported.open()))
    assert {r["call_id"]: r["total"] for r in rows} == expected
    rated = tmp_path / "rated.csv"
    status = ics_main(["rerate", str(exported), "-o", str(rated), "--config", str(DEMO_CONFIG)])
    assert status == 0
    again = {r["call_id"]: r["total"] for r in csv.DictReader(rated.open())}
    assert again == expected


async def test_the_alaska_demo_person_may_call_their_allowed_number(
    demo: AccountService,
) -> None:
    # ak-regional-jail requires an allowed list; the seed puts +15125550100 on 300001's.
    allowed = await demo.authorize(
        CallRequest("c-ak-allowed", "ak-regional-jail", "300001", "+15125550100", AT)
    )
    assert isinstance(allowed, Authorization)
    assert allowed.payer_account_id == "ac-15125550100"
    other = await demo.authorize(
        CallRequest("c-ak-other", "ak-regional-jail", "300001", "+13105550100", AT)
    )
    assert isinstance(other, Refusal) and other.reason is RefusalReason.NOT_ALLOWED
