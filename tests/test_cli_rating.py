"""`ics rate`, `ics rerate` and `ics config check`, driven through the real command line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ics.cli import main
from rating import Product, quote, quote_document
from settings.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.toml"
TODAY = "2026-11-25"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_rate_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "rate", "--facility", "tx-state-prison", "--number",
                         "+15125550100", "--minutes", "15", "--at", TODAY)
    assert status == 0
    assert "Jurisdiction: intrastate" in out
    assert "$0.11 per minute" in out
    row = next(line for line in out.splitlines() if line.startswith("advance_connect"))
    assert row.split() == ["advance_connect", "0.0600", "900", "s", "0.90", "0.00", "0.00", "0.90"]


def test_rate_table_lists_fee_lines(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "rate", "--facility", "al-county-jail", "--number",
                         "+12125550100", "--minutes", "10", "--at", TODAY, "--config", str(DEMO))
    assert status == 0
    assert "Facility cost recovery additive (facility_add_on) 0.20" in out
    assert "Federal Universal Service Fund recovery (authorized_fee) 0.55" in out


def test_rate_json_is_the_quote_document(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "rate", "--facility", "tx-state-prison", "--number",
                         "5125550100", "--minutes", "15", "--json", "--at", TODAY)
    assert status == 0
    doc = json.loads(out)
    facility = load_config(DEMO).facility("tx-state-prison").rated
    assert doc == quote_document(facility, "5125550100", 15, date(2026, 11, 25))
    assert doc["quotes"][0]["total"] == "0.90"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--facility", "nowhere", "--number", "+15125550100", "--minutes", "1"],
         "facility: unknown facility 'nowhere'"),
        (["--facility", "tx-state-prison", "--number", "hello", "--minutes", "1"],
         "number: 'hello' is not a dialable number"),
        (["--facility", "tx-state-prison", "--number", "+18005551212", "--minutes", "1"],
         "number: '+18005551212' is not a geographic"),
        (["--facility", "tx-state-prison", "--number", "+15125550100", "--minutes", "0"],
         "minutes: minutes must be between 1 and 1440"),
    ],
)
def test_rate_errors_name_the_field(capsys: pytest.CaptureFixture[str], args: list[str],
                                    message: str) -> None:
    status, out, err = run(capsys, "rate", *args)
    assert status == 2
    assert out == ""
    assert message in err


def test_rate_rejects_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["rate", "--facility", "tx-state-prison", "--number", "+15125550100",
              "--minutes", "1", "--at", "yesterday"])
    assert info.value.code == 2
    assert "not an ISO date" in capsys.readouterr().err


def test_config_check_passes_on_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "config", "check", "--at", TODAY)
    assert status == 0, err
    assert "OK: 3 facilities" in out and "FCC 2025 interim caps" in out


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(REPO / "configs", target, ignore=shutil.ignore_patterns("var"))
    return target


def test_config_check_rejects_a_tariff_above_the_cap(capsys: pytest.CaptureFixture[str],
                                                     configs: Path) -> None:
    tariff = configs / "tariffs" / "tx-state-prison.toml"
    text = tariff.read_text()
    head, sep, tail = text.partition("[rates.debit]\n")
    tail = tail.replace('interstate = "0.0600"', 'interstate = "0.1150"', 1)
    tariff.write_text(head + sep + tail)
    status, _, err = run(capsys, "config", "check", str(configs / "demo.toml"), "--at", TODAY)
    assert status == 1
    lines = [line for line in err.splitlines() if "exceeds" in line]
    assert len(lines) == 1
    assert lines[0].startswith(str(tariff.resolve()))
    for part in ("facility tx-state-prison", "product debit", "interstate rate 0.1150",
                 "cap of 0.11", "prisons", "FCC 2025 interim caps"):
        assert part in lines[0]
    assert "1 violation(s)" in err


def test_config_check_rejects_a_banned_fee(capsys: pytest.CaptureFixture[str],
                                           configs: Path) -> None:
    tariff = configs / "tariffs" / "tx-state-prison.toml"
    tariff.write_text(tariff.read_text().replace("allowed_until = 2024-12-31\n", ""))
    status, _, err = run(capsys, "config", "check", str(configs / "demo.toml"), "--at", TODAY)
    assert status == 1
    assert "ancillary fee 'Automated payment fee'" in err
    assert "bans separate ancillary service charges" in err
    # The same tariff was legal under the 2021 rules.
    status, _, _ = run(capsys, "config", "check", str(configs / "demo.toml"), "--at", "2023-06-01")
    assert status == 0


def test_config_check_reports_an_invalid_file(capsys: pytest.CaptureFixture[str],
                                              configs: Path) -> None:
    facility = configs / "facilities" / "ak-regional-jail.toml"
    facility.write_text(facility.read_text().replace('kind = "jail"', 'kind = "camp"'))
    status, _, err = run(capsys, "config", "check", str(configs / "demo.toml"))
    assert status == 1
    assert f"{facility.resolve()}: kind: Input should be" in err


def _write_cdrs(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["call_id", "facility", "number", "product", "seconds", "started_at",
                         "extra"])
        writer.writerows(rows)


def test_rerate_rates_good_rows_and_names_bad_lines(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    rows = [
        ["c1", "tx-state-prison", "+15125550100", "advance_connect", "900",
         "2026-11-25T14:00:00Z", "x"],
        ["c2", "tx-state-prison", "not-a-number", "debit", "60", "2026-11-25T14:00:00Z", ""],
        ["c3", "al-county-jail", "2125550100", "debit", "61", "2026-11-25T08:00:00-06:00", ""],
        ["c4", "nowhere", "+15125550100", "debit", "60", "2026-11-25T14:00:00Z", ""],
        ["c5", "ak-regional-jail", "+15125550100", "single_call", "60", "2026-11-25T14:00:00Z",
         ""],
        ["c6", "tx-state-prison", "+15125550100", "debit", "-3", "2026-11-25T14:00:00Z", ""],
        ["c7", "tx-state-prison", "+15125550100", "debit", "60", "last tuesday", ""],
        ["c8", "tx-state-prison", "011525512345678", "collect", "60", "2026-11-25T14:00:00Z", ""],
        ["c9", "ak-regional-jail", "011525512345678", "debit", "125", "2026-11-25T14:00:00", ""],
    ]
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_cdrs(source, rows)
    status, _, err = run(capsys, "rerate", str(source), "-o", str(target))
    assert status == 1
    for line, column in [(3, "number"), (5, "facility"), (6, "product"), (7, "seconds"),
                         (8, "started_at"), (9, "product")]:
        assert f"{source}:{line}: {column}:" in err
    assert "6 bad row(s)" in err
    with target.open(newline="") as fh:
        out = list(csv.DictReader(fh))
    assert [r["call_id"] for r in out] == ["c1", "c3", "c9"]
    assert (out[0]["jurisdiction"], out[0]["total"], out[0]["number"]) == (
        "intrastate", "0.90", "+15125550100")
    config = load_config(DEMO)
    al = config.facility("al-county-jail").rated
    q = quote(al, "2125550100", Product.DEBIT, 61, date(2026, 11, 25))
    assert out[1]["total"] == f"{q.total_units / 10000:.2f}"
    assert out[1]["number"] == "+12125550100"
    ak = config.facility("ak-regional-jail").rated
    q9 = quote(ak, "011525512345678", Product.DEBIT, 125, date(2026, 11, 25))
    assert (out[2]["jurisdiction"], out[2]["billed_seconds"]) == ("international", "180")
    assert out[2]["rate_per_minute"] == "0.2600"  # $0.11 + $0.15 termination
    assert out[2]["charge"] == f"{q9.charge_units / 10000:.2f}"
    assert out[2]["total"] == f"{q9.total_units / 10000:.2f}"


def test_rerate_leaves_out_calls_never_connected(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    rows = [
        ["c1", "tx-state-prison", "+15125550100", "advance_connect", "900",
         "2026-11-25T14:00:00Z", ""],
        ["refused", "tx-state-prison", "+15125550199", "", "0", "2026-11-25T14:00:00Z", ""],
        ["garbage", "tx-state-prison", "12", "", "0", "2026-11-25T14:00:00Z", ""],
        ["no-product-but-talked", "tx-state-prison", "+15125550100", "", "30",
         "2026-11-25T14:00:00Z", ""],
    ]
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_cdrs(source, rows)
    status, _, err = run(capsys, "rerate", str(source), "-o", str(target))
    assert status == 1  # the talked call without a product is malformed
    assert "2 call(s) never connected" in err
    assert f"{source}:5: product: missing" in err
    assert "1 bad row(s)" in err
    with target.open(newline="") as fh:
        assert [r["call_id"] for r in csv.DictReader(fh)] == ["c1"]


def test_rerate_rejects_a_file_without_the_columns(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("call_id,number\nc1,+15125550100\n")
    status, _, err = run(capsys, "rerate", str(source), "-o", str(target))
    assert status == 2
    assert "missing column(s): facility, product, seconds, started_at" in err
    assert not target.exists()


def test_rerate_all_good_exits_zero_via_the_console_script(tmp_path: Path) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_cdrs(source, [[f"c{i}", "tx-state-prison", "+12125550100", "direct_bill", str(i),
                          "2026-11-25T14:00:00Z", ""] for i in range(500)])
    result = subprocess.run(
        [sys.executable, "-m", "ics.cli", "rerate", str(source), "-o", str(target)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with target.open(newline="") as fh:
        out = list(csv.DictReader(fh))
    assert len(out) == 500
    assert out[61]["billed_seconds"] == "120"
    assert out[61]["charge"] == "0.12"
    assert out[61]["fees"] == "0.04"  # USF 36.6% of $0.12 = $0.0439
    assert out[0]["total"] == "0.00"
