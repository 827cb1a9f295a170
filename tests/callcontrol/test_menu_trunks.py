"""Which trunks take the caller's menu: every ``[[trunk]]`` of a facility becomes a trunk of
the controller, a menu trunk is known as such, and its facility's ``[menu]`` builds the menu."""

from __future__ import annotations

from pathlib import Path

from callcontrol.app import ControllerSettings, trunk_ids, trunks_from_config
from settings.config import load_config


def test_every_trunk_of_a_facility_is_served_and_the_menu_trunk_is_marked(
    demo_config: Path,
) -> None:
    config = load_config(demo_config)
    ids = {tid: (fid, trunk.pin_entry) for tid, fid, trunk in trunk_ids(config)}
    # The first trunk is known by the facility's id (header trunks as before).
    assert ids["tx-state-prison"] == ("tx-state-prison", "header")
    assert ids["tx-state-prison/1"] == ("tx-state-prison", "menu")
    assert ids["al-county-jail"] == ("al-county-jail", "header")
    trunks = {t.id: [str(n) for n in t.networks] for t in trunks_from_config(config)}
    assert trunks["tx-state-prison"] == ["127.0.0.11/32"]
    assert trunks["tx-state-prison/1"] == ["127.0.0.21/32"]
    settings = ControllerSettings.from_config(config)
    assert settings.menu_trunks == frozenset({"tx-state-prison/1"})
    assert settings.trunk_facility == {"tx-state-prison/1": "tx-state-prison"}
    menu = settings.menus["tx-state-prison"].caller_menu()
    assert menu.languages == ("en", "es") and menu.menu_limit == 90.0
    assert "tx-state-prison" in settings.debit_facilities
    windows = settings.calling_windows["tx-state-prison"]
    from datetime import UTC, datetime
    assert windows(datetime(2026, 12, 3, 15, 0, tzinfo=UTC))  # the demo's daily window


def test_the_menu_says_the_debit_balance_only_of_a_person_whose_debit_account_can_pay(
    demo_config: Path,
) -> None:
    """Over the demo's SQLite store: 100001 has $10.00 in Debit; 100002 has no Debit account;
    a person nobody knows at the facility is no one (whatever exists elsewhere)."""
    import asyncio
    from datetime import UTC, datetime
    from decimal import Decimal

    from api.runner import open_account_service
    from callcontrol.app import CallController

    at = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)

    async def main() -> None:
        config = load_config(demo_config)
        service = await open_account_service(config)
        try:
            controller = CallController(ControllerSettings.from_config(config), service,
                                        trunks_from_config(config))
            assert await controller._debit_balance("tx-state-prison", "100001", at) == \
                Decimal("10.00")
            assert await controller._debit_balance("tx-state-prison", "100002", at) is None
            person = await controller._person("tx-state-prison", "100002")
            assert person is not None and person.language == "es"
            # 200001 is a person at al-county-jail, not here.
            assert await controller._person("tx-state-prison", "200001") is None
        finally:
            await service.store.close()

    asyncio.run(main())
