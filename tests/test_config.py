"""Configuration loading: the demo data, defaults, relative paths, and precise errors."""

from __future__ import annotations

import re
import shutil
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from rating import FacilityKind, Product
from settings.config import ConfigError, ServiceConfig, default_config_path, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A private copy of configs/ to break."""
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target, ignore=shutil.ignore_patterns("var"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def load_error(configs: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(configs / "demo.toml")
    return str(info.value)


def test_demo_config_has_the_design_data() -> None:
    config = load_config(CONFIGS / "demo.toml")
    assert set(config.facilities) == {"tx-state-prison", "al-county-jail", "ak-regional-jail"}
    tx, al, ak = (config.facility(f) for f in
                  ("tx-state-prison", "al-county-jail", "ak-regional-jail"))
    assert (tx.kind, tx.state, tx.average_daily_population) == (FacilityKind.PRISON, "TX", 1800)
    assert (al.kind, al.state, al.average_daily_population) == (FacilityKind.JAIL, "AL", 45)
    assert (ak.kind, ak.state, ak.average_daily_population) == (FacilityKind.JAIL, "AK", 600)
    assert [f.trunk.sources for f in (tx, al, ak)] == [
        ["127.0.0.11/32"], ["127.0.0.12/32"], ["127.0.0.13/32"]]
    assert [f.max_call_minutes for f in (tx, al, ak)] == [20, 15, 15]
    assert [f.refund_window_days for f in (tx, al, ak)] == [365, 180, 365]
    assert tx.name == "Texas State Prison"
    assert tx.rated.max_call_seconds == 1200
    assert tx.rated.regulation is config.regulation
    assert config.sip.listen == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert config.sip.carrier_gateway == "127.0.0.1:5090"
    assert config.http.listen == "127.0.0.1:8080"
    assert [(t.token, t.role) for t in config.admin_tokens] == [("demo-admin-token", "admin")]
    assert config.accounts.deposit_max == Decimal("300.00")
    assert config.accounts.direct_bill_raised_limit == Decimal("50.00")
    assert config.facility_for_source("127.0.0.12") is al
    assert config.facility_for_source("127.0.0.99") is None
    assert len(config.regulation.tables) == 3


def test_relative_paths_are_relative_to_the_config_file(configs: Path) -> None:
    config = load_config(configs / "demo.toml")
    assert config.data_dir == (configs / "var").resolve()
    assert config.store.path == (configs / "var" / "ics.sqlite3").resolve()
    assert config.media.recordings_dir == (configs / "var" / "recordings").resolve()
    tariff = config.facility("tx-state-prison").tariff
    assert tariff == (configs / "tariffs" / "tx-state-prison.toml").resolve()


def test_defaults_apply(configs: Path) -> None:
    path = configs / "facilities" / "tx-state-prison.toml"
    text = path.read_text()
    text = re.sub(r"(?m)^(ring_timeout_seconds|refund_window_days|funding_order) = .*\n", "", text)
    path.write_text(text)
    (configs / "demo.toml").write_text('facilities = "facilities/*.toml"\n')
    config = load_config(configs / "demo.toml")
    tx = config.facility("tx-state-prison")
    assert (tx.ring_timeout_seconds, tx.refund_window_days) == (30, 180)
    assert tx.funding_order == [Product.SUBSCRIPTION, Product.DEBIT, Product.ADVANCE_CONNECT,
                                Product.DIRECT_BILL, Product.SINGLE_CALL]
    assert config.sip.listen == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert config.accounts.closure_hold_days == 7
    assert config.accounts.heartbeat_seconds == 15
    assert config.admin_tokens == []
    assert config.data_dir == (configs / "var").resolve()


def test_models_are_immutable() -> None:
    config = load_config(CONFIGS / "demo.toml")
    with pytest.raises(ValidationError):
        config.http = config.http  # type: ignore[misc]


def test_unknown_facility_names_known_ones() -> None:
    config = load_config(CONFIGS / "demo.toml")
    with pytest.raises(KeyError, match="known: ak-regional-jail, al-county-jail"):
        config.facility("nowhere")


def test_default_config_path_falls_back_to_the_repository(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_config_path() == REPO / "configs" / "demo.toml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.toml").write_text("")
    assert default_config_path() == tmp_path / "configs" / "demo.toml"


@pytest.mark.parametrize(
    ("file", "old", "new", "field", "reason"),
    [
        ("tariffs/tx-state-prison.toml", 'intrastate = "0.0600"', "intrastate = 0.06",
         "rates.advance_connect.intrastate", "decimal string"),
        ("tariffs/tx-state-prison.toml", 'intrastate = "0.0600"', 'intrastate = "0.06001"',
         "rates.advance_connect.intrastate", "more than 4 decimal places"),
        ("tariffs/tx-state-prison.toml", 'intrastate = "0.0600"', 'intrastate = "six cents"',
         "rates.advance_connect.intrastate", "not a decimal amount"),
        ("tariffs/tx-state-prison.toml", "[rates.debit]", "[rates.collect]",
         "rates.collect", "Input should be"),
        ("tariffs/tx-state-prison.toml", "increment_seconds = 60", "increment_seconds = 7",
         "increment_seconds", "Input should be"),
        ("tariffs/tx-state-prison.toml", 'percent = "36.6"', 'percent = "36.6"\nper_call = "1.00"',
         "charges.0", "exactly one of percent"),
        ("tariffs/tx-state-prison.toml", '"936291"', '"93629"', "local_exchanges.0",
         "area code"),
        ("tariffs/tx-state-prison.toml", "allowed_until = 2024-12-31",
         "allowed_until = 2020-12-31", "ancillary_fees.0", "allowed_until is before"),
        ("tariffs/ak-regional-jail.toml", 'per_minute = "0.0100"', 'percent = "1"',
         "charges.0", "charged per_minute"),
        ("facilities/tx-state-prison.toml", 'timezone = "America/Chicago"',
         'timezone = "America/Houston"', "timezone", "not an IANA time zone"),
        ("facilities/tx-state-prison.toml", 'state = "TX"', 'state = "Texas"', "state",
         "two-letter"),
        ("facilities/tx-state-prison.toml", 'kind = "prison"', 'kind = "camp"', "kind",
         "Input should be"),
        ("facilities/tx-state-prison.toml", "max_call_minutes = 20", "max_call_minutes = 0",
         "max_call_minutes", "greater than or equal to 1"),
        # One [trunk] table (al-county-jail) and several [[trunk]] entries (tx-state-prison).
        ("facilities/al-county-jail.toml", 'sources = ["127.0.0.12/32"]',
         'sources = ["127.0.0.300"]', "trunk.sources.0", "not an IP address"),
        ("facilities/al-county-jail.toml", "[trunk]", "[trunk]\nsourcez = []",
         "trunk.sourcez", "Extra inputs are not permitted"),
        ("facilities/al-county-jail.toml", "[trunk]", '[trunk]\npin_entry = "ivr"',
         "trunk.pin_entry", "Input should be 'header' or 'menu'"),
        ("facilities/tx-state-prison.toml", 'sources = ["127.0.0.21/32"]',
         'sources = ["127.0.0.300"]', "trunks.1.sources.0", "not an IP address"),
        ("facilities/tx-state-prison.toml", 'pin_entry = "menu"', 'pin_entry = "keypad"',
         "trunks.1.pin_entry", "Input should be 'header' or 'menu'"),
        ("facilities/tx-state-prison.toml", 'pin_entry = "header"', 'pin_entry = "header"\nx = 1',
         "trunks.0.x", "Extra inputs are not permitted"),
        ("facilities/tx-state-prison.toml", 'languages = ["en", "es"]', 'languages = ["en", "fr"]',
         "menu.languages.1", "Input should be 'en' or 'es'"),
        ("facilities/tx-state-prison.toml", 'languages = ["en", "es"]', 'languages = ["es", "es"]',
         "menu.languages", "listed twice"),
        ("facilities/tx-state-prison.toml", 'languages = ["en", "es"]', "languages = []",
         "menu.languages", "at least 1 item"),
        ("facilities/tx-state-prison.toml", "# pin_length = 6", "pin_length = 2",
         "menu.pin_length", "greater than or equal to 4"),
        ("facilities/tx-state-prison.toml", "limit_seconds = 90", "limit_seconds = 0",
         "menu.limit_seconds", "greater than 0"),
        ("facilities/tx-state-prison.toml", "failures = 5", "failures = 0",
         "menu.pin_lock.failures", "greater than or equal to 1"),
        ("facilities/tx-state-prison.toml", "[menu]", "[menu]\nlanguage = \"en\"",
         "menu.language", "Extra inputs are not permitted"),
        ("facilities/tx-state-prison.toml", 'end = "23:30"', 'end = "05:00"',
         "calling_hours.0", "end must be after start"),
        ("facilities/tx-state-prison.toml", 'days = ["mon",', 'days = ["monday",',
         "calling_hours.0.days.0", "Input should be"),
        ("facilities/tx-state-prison.toml", '"subscription", "debit"', '"debit", "debit"',
         "funding_order", "listed twice"),
        ("facilities/tx-state-prison.toml", "average_daily_population = 1800",
         "average_daily_population = -1", "average_daily_population", "greater than or equal"),
        ("demo.toml", 'listen = "127.0.0.1:8080"', "listen = 8080", "http.listen",
         "valid string"),
        ("demo.toml", 'kind = "sqlite"', 'kind = "mysql"', "store.kind", "Input should be"),
        ("demo.toml", 'role = "admin"', 'role = "root"', "admin_tokens.0.role",
         "Input should be"),
        ("demo.toml", 'deposit_max = "300.00"', 'deposit_max = "300.001"',
         "accounts.deposit_max", "more than 2 decimal places"),
        ("demo.toml", 'listen = ["udp:127.0.0.1:5060",', 'listen = ["sctp:127.0.0.1:5060",',
         "sip.listen", "udp:HOST:PORT"),
        ("demo.toml", "rtp_port_min = 20000", "rtp_port_min = 30000", "media",
         "rtp_port_min must not exceed"),
        ("regulation/fcc-2025-interim.toml", 'cap = "0.11"', "cap = 0.11", "tiers.0.cap",
         "decimal string"),
        ("regulation/fcc-2025-interim.toml", "max_adp = 49", "max_adp = 50", "(top level)",
         "overlap"),
    ],
)
def test_errors_name_file_field_and_reason(
    configs: Path, file: str, old: str, new: str, field: str, reason: str
) -> None:
    edit(configs / file, old, new)
    message = load_error(configs)
    path = str((configs / file).resolve())
    assert any(
        line.startswith(f"{path}: {field}") and reason in line for line in message.splitlines()
    ), message


def test_invalid_toml_names_the_file(configs: Path) -> None:
    edit(configs / "facilities" / "al-county-jail.toml", 'name = "Alabama', 'name = Alabama')
    message = load_error(configs)
    assert message.startswith(str((configs / "facilities" / "al-county-jail.toml").resolve()))
    assert "invalid TOML" in message


def test_missing_tariff_file_names_the_path(configs: Path) -> None:
    (configs / "tariffs" / "ak-regional-jail.toml").unlink()
    message = load_error(configs)
    assert "ak-regional-jail.toml: file not found" in message


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: file not found"):
        load_config("/nonexistent/nowhere.toml")


def test_glob_matching_nothing(configs: Path) -> None:
    edit(configs / "demo.toml", 'facilities = "facilities/*.toml"',
         'facilities = "facility/*.toml"')
    assert "facilities: 'facility/*.toml' matches no file" in load_error(configs)


def test_duplicate_facility_id(configs: Path) -> None:
    shutil.copy(configs / "facilities" / "tx-state-prison.toml",
                configs / "facilities" / "zz-copy.toml")
    message = load_error(configs)
    assert "zz-copy.toml: id: 'tx-state-prison' is already defined in" in message


def test_overlapping_trunks(configs: Path) -> None:
    edit(configs / "facilities" / "al-county-jail.toml", '"127.0.0.12/32"', '"127.0.0.0/28"')
    message = load_error(configs)
    assert "trunk.sources" in message and "overlaps" in message


@pytest.mark.parametrize(
    ("edited", "old", "new", "expected"),
    [
        # al-county-jail's single [trunk] takes the address of tx-state-prison's menu trunk.
        pytest.param(
            "al-county-jail", '"127.0.0.12/32"', '"127.0.0.21/32"',
            "trunks.1.sources: 127.0.0.21/32 overlaps 127.0.0.21/32 (trunk.sources) "
            "of facility 'al-county-jail'",
            id="a-menu-trunk-and-another-facility",
        ),
        pytest.param(
            "tx-state-prison", '"127.0.0.21/32"', '"127.0.0.8/30"',
            "trunks.1.sources: 127.0.0.8/30 overlaps 127.0.0.11/32 (trunks.0.sources)",
            id="two-trunks-of-one-facility",
        ),
    ],
)
def test_a_source_two_trunks_share_is_refused(
    configs: Path, edited: str, old: str, new: str, expected: str
) -> None:
    edit(configs / "facilities" / f"{edited}.toml", old, new)
    message = load_error(configs)
    tx = (configs / "facilities" / "tx-state-prison.toml").resolve()
    assert message == f"{tx}: {expected}"


def test_a_facility_needs_a_trunk(configs: Path) -> None:
    edit(configs / "facilities" / "ak-regional-jail.toml", '[trunk]\nsources = ["127.0.0.13/32"]',
         "")
    message = load_error(configs)
    ak = (configs / "facilities" / "ak-regional-jail.toml").resolve()
    assert f"{ak}: (top level): a facility needs a [trunk] table or [[trunk]] entries" in message


def test_trunks_is_not_a_way_to_write_trunk(configs: Path) -> None:
    edit(configs / "facilities" / "ak-regional-jail.toml", "[trunk]", "[[trunks]]")
    assert "write [trunk] or [[trunk]], not trunks" in load_error(configs)


def test_both_trunk_forms_load(configs: Path) -> None:
    # tx-state-prison writes [[trunk]] entries; turn ak-regional-jail's [trunk] into one entry.
    edit(configs / "facilities" / "ak-regional-jail.toml", "[trunk]", "[[trunk]]")
    config = load_config(configs / "demo.toml")
    tx, al, ak = (config.facility(f) for f in
                  ("tx-state-prison", "al-county-jail", "ak-regional-jail"))
    assert [(t.sources, t.pin_entry) for t in tx.trunks] == [
        (["127.0.0.11/32"], "header"), (["127.0.0.21/32"], "menu")]
    assert [(t.sources, t.pin_entry) for t in al.trunks] == [(["127.0.0.12/32"], "header")]
    assert ak.trunks == (ak.trunk,) and ak.trunk.sources == ["127.0.0.13/32"]
    assert config.facility_for_source("127.0.0.13") is ak


def test_menu_trunk_and_menu_settings_of_the_demo() -> None:
    config = load_config(CONFIGS / "demo.toml")
    tx, al = config.facility("tx-state-prison"), config.facility("al-county-jail")
    # The first trunk is the header trunk, as the single [trunk] was before.
    assert tx.trunk.sources == ["127.0.0.11/32"] and tx.trunk.pin_entry == "header"
    assert al.trunk.pin_entry == "header"
    found = config.trunk_for_source("127.0.0.21")
    assert found is not None and found[0] is tx and found[1].pin_entry == "menu"
    assert config.facility_for_source("127.0.0.21") is tx
    assert config.facility_for_source("127.0.0.11") is tx
    assert tx.trunk_for("127.0.0.12") is None and config.trunk_for_source("127.0.0.22") is None
    for facility in (tx, al):  # tx writes the defaults out; al has no [menu] at all
        menu = facility.menu
        assert menu.languages == ["en", "es"] and menu.pin_length is None
        assert (menu.limit_seconds, menu.interdigit_timeout_seconds, menu.tries) == (90, 5, 3)
        lock = menu.pin_lock
        assert (lock.failures, lock.window_minutes, lock.lock_minutes) == (5, 10, 15)


def test_menu_languages_are_the_languages_with_prompts() -> None:
    from ivr.phrases import LANGUAGE_KEYS, LANGUAGES
    from settings.config import MENU_LANGUAGES

    assert MENU_LANGUAGES == LANGUAGES and set(LANGUAGE_KEYS) == set(LANGUAGES)


def test_calling_windows_of_a_day(configs: Path) -> None:
    edit(configs / "facilities" / "tx-state-prison.toml", 'days = ["mon", "tue", "wed", "thu", '
         '"fri", "sat", "sun"]\nstart = "06:00"',
         'days = ["mon", "tue"]\nstart = "13:00"\nend = "14:00"\n\n[[calling_hours]]\n'
         'days = ["mon"]\nstart = "06:00"')
    tx = load_config(configs / "demo.toml").facility("tx-state-prison")
    assert tx.calling_windows_on("mon") == [(time(6, 0), time(23, 30)), (time(13, 0), time(14, 0))]
    assert tx.calling_windows_on("tue") == [(time(13, 0), time(14, 0))]
    assert tx.calling_windows_on("sun") == []


def test_menu_settings_are_read(configs: Path) -> None:
    edit(configs / "facilities" / "tx-state-prison.toml", 'languages = ["en", "es"]',
         'languages = ["es"]\npin_length = 6')
    edit(configs / "facilities" / "tx-state-prison.toml", "lock_minutes = 15",
         "lock_minutes = 60")
    tx = load_config(configs / "demo.toml").facility("tx-state-prison")
    assert tx.menu.languages == ["es"] and tx.menu.pin_length == 6
    assert tx.menu.pin_lock.lock_minutes == 60


def test_funding_order_product_without_rates(configs: Path) -> None:
    edit(configs / "facilities" / "ak-regional-jail.toml", 'funding_order = ["debit",',
         'funding_order = ["single_call", "debit",')
    message = load_error(configs)
    assert "ak-regional-jail.toml: funding_order: product single_call has no rates" in message


def test_admin_token_for_unknown_facility(configs: Path) -> None:
    edit(configs / "demo.toml", 'role = "admin"', 'role = "facility"\nfacilities = ["nowhere"]')
    assert "admin_tokens: unknown facility 'nowhere'" in load_error(configs)


def test_two_tables_on_one_day(configs: Path) -> None:
    edit(configs / "regulation" / "fcc-2024-permanent.toml", "effective_from = 2025-01-01",
         "effective_from = 2026-04-06")
    assert "effective_from: 2026-04-06 is also the effective date" in load_error(configs)


def test_nothing_half_loaded(configs: Path) -> None:
    edit(configs / "tariffs" / "ak-regional-jail.toml", 'local = "0.1100"', "local = 0.11")
    with pytest.raises(ConfigError):
        load_config(configs / "demo.toml")
    # The error is all a caller gets: no partially built config escapes.
    assert isinstance(load_config(CONFIGS / "demo.toml"), ServiceConfig)


def test_a_facility_call_limit_is_optional_and_positive(configs: Path) -> None:
    from callcontrol.app import ControllerSettings

    config = load_config(configs / "demo.toml")
    assert config.facility("tx-state-prison").max_concurrent_calls is None
    assert ControllerSettings.from_config(config).max_calls == {}
    path = configs / "facilities" / "tx-state-prison.toml"
    text = path.read_text()
    path.write_text(text.replace("max_call_minutes = 20\n",
                                 "max_call_minutes = 20\nmax_concurrent_calls = 40\n"))
    config = load_config(configs / "demo.toml")
    assert ControllerSettings.from_config(config).max_calls == {"tx-state-prison": 40}
    path.write_text(text.replace("max_call_minutes = 20\n",
                                 "max_call_minutes = 20\nmax_concurrent_calls = 0\n"))
    with pytest.raises(ConfigError, match="max_concurrent_calls"):
        load_config(configs / "demo.toml")
