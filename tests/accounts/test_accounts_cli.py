"""`ics accounts`: the scheduled jobs and lookups, run on a copy of the demo configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from account_helpers import T0

from accounts import SqliteAccountStore, seed_if_empty
from ics.cli import main as ics_main
from settings.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def config_path(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("var"))
    path = tmp_path / "configs" / "demo.toml"
    store = SqliteAccountStore(load_config(path).store.path)
    await store.open()
    await seed_if_empty(store, tmp_path / "configs" / "seed" / "demo.toml", at=T0)
    await store.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = ics_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_show_housekeeping_and_invoices(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "accounts", "--config", str(config_path), "show", "ac-15125550100")
    assert status == 0
    shown = json.loads(out)
    assert (shown["balance"], shown["held"]) == ("25.00", "0.00")
    assert shown["numbers"] == ["+15125550100"]
    status, out, _ = run(capsys, "accounts", "--config", str(config_path), "housekeeping")
    assert status == 0
    assert set(json.loads(out)) == {"closed", "flagged_inactive", "credit_limit_raised"}
    status, out, _ = run(
        capsys, "accounts", "--config", str(config_path), "invoice", "--month", "2026-01"
    )
    assert status == 0 and json.loads(out) == {"invoices": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("invoice", "--month", "2026-13"), "YYYY-MM"),
        (("invoice", "--month", "2999-01"), "after it ends"),
        (("show", "nope"), "no account"),
    ],
)
def test_bad_requests_exit_non_zero(
    config_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    status, _, err = run(capsys, "accounts", "--config", str(config_path), *argv)
    assert status == 1 and message in err
