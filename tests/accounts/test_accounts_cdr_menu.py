"""The voice menu's fields of a call record: the station and the (unbilled) menu time,
in the builder, both stores, the CSV export and what `ics rerate` reads."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from account_helpers import T0, TX_AC
from test_accounts_store import cdr

from accounts import AccountStore, CallOutcome, SqliteAccountStore, call_detail_record, export_csv
from accounts.cdr import CSV_COLUMNS
from accounts.sqlite_store import SCHEMA_VERSION
from ics.cli import main as ics_main

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def built(**facts: object) -> object:
    return call_detail_record(
        call_id="call-1", facility_id="tx", pin="100001", number=TX_AC, authorization=None,
        settlement=None, setup_at=T0, end_at=T0 + timedelta(seconds=60), talked_seconds=0,
        outcome=CallOutcome.REFUSED, **facts,  # type: ignore[arg-type]
    )


def test_the_builder_takes_the_station_and_the_menu_time() -> None:
    record = built(station="4001", menu_seconds=23)
    assert (record.station, record.menu_seconds) == ("4001", 23)  # type: ignore[attr-defined]
    plain = built()
    assert (plain.station, plain.menu_seconds) == ("", 0)  # type: ignore[attr-defined]
    # Menu time is never billed: a refused call in the menu costs nothing.
    assert record.total_units == 0 and record.billed_seconds == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_the_builder_refuses_a_menu_time_that_is_not_whole_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="menu_seconds"):
        built(menu_seconds=bad)


async def test_both_fields_round_trip_through_the_store(store: AccountStore) -> None:
    menu = cdr("c1", 0, station="4001", menu_seconds=31)
    header = cdr("c2", 5, station="pbx-trunk-7")
    assert await store.add_cdr(menu) == menu
    await store.add_cdr(header)
    assert await store.get_cdr("c1") == menu
    assert [(c.station, c.menu_seconds) for c in await store.list_cdrs()] == [
        ("4001", 31), ("pbx-trunk-7", 0)
    ]


def test_the_export_carries_them_in_the_last_columns() -> None:
    text = export_csv([cdr("c1", 0, station="4001", menu_seconds=31), cdr("c2", 5)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert CSV_COLUMNS[-2:] == ("station", "menu_seconds")
    assert [(r["station"], r["menu_seconds"]) for r in rows] == [("4001", "31"), ("", "0")]


def test_ics_rerate_reads_exports_with_and_without_the_new_columns(tmp_path: Path) -> None:
    record = replace(cdr("c1", 0), setup_at=T0, facility_id="tx-state-prison",
                     station="4001", menu_seconds=31)
    new = tmp_path / "new.csv"
    new.write_text(export_csv([record]))
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:  # an export written before the columns existed
        writer = csv.writer(f, lineterminator="\n")
        for row in csv.reader(io.StringIO(new.read_text())):
            writer.writerow(row[:-2])
    assert "station" not in old.read_text()
    totals = []
    for source in (new, old):
        rated = tmp_path / f"rated-{source.name}"
        assert ics_main(["rerate", str(source), "-o", str(rated),
                         "--config", str(DEMO_CONFIG)]) == 0
        (row,) = csv.DictReader(rated.open())
        totals.append((row["call_id"], row["seconds"], row["total"]))
    assert totals[0] == totals[1] and totals[0][:2] == ("c1", "168")


async def test_a_sqlite_record_written_before_the_fields_reads_as_the_defaults(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.sqlite3"
    store = SqliteAccountStore(path)
    await store.open()
    await store.add_cdr(cdr("c1", 0, station="4001", menu_seconds=31))
    await store.close()
    # Make it a version-2 file: no new columns, the JSON record without the fields.
    db = sqlite3.connect(path)
    (text,) = db.execute("SELECT record FROM cdrs").fetchone()
    data = json.loads(text)
    del data["station"], data["menu_seconds"]
    db.execute("ALTER TABLE cdrs DROP COLUMN station")
    db.execute("ALTER TABLE cdrs DROP COLUMN menu_seconds")
    db.execute("DROP TABLE pin_failures")
    db.execute("DROP TABLE station_locks")
    db.execute("UPDATE cdrs SET record = ?", (json.dumps(data),))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()

    again = SqliteAccountStore(path)
    await again.open()
    try:
        assert again.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        columns = {r[1] for r in again.db.execute("PRAGMA table_info(cdrs)")}
        assert {"station", "menu_seconds"} <= columns
        record = await again.get_cdr("c1")
        assert (record.station, record.menu_seconds) == ("", 0)
        assert record == replace(cdr("c1", 0), station="", menu_seconds=0)
        # The upgraded file keeps PIN-guessing counts and new records in full.
        await again.add_cdr(cdr("c2", 5, station="4002", menu_seconds=7))
        assert (await again.get_cdr("c2")).menu_seconds == 7
        assert await again.list_station_locks("tx", T0) == []
    finally:
        await again.close()
