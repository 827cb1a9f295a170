"""`ics rerate`: re-rate a CDR file with the vectorized engine.

Input CSV (the call controller exports CDRs in the same format), with a
header row; columns may come in any order and extra columns are ignored:

``call_id``     the call's id (any text, copied through)
``facility``    facility id (``tx-state-prison``)
``number``      called number as dialled or E.164 (``+15125550100``)
``product``     who paid: advance_connect, direct_bill, debit, single_call,
                subscription
``seconds``     connected duration in whole seconds (0 to 86,400)
``started_at``  ISO 8601 start time with UTC offset (``2026-11-25T14:03:00Z``;
                a time without offset is taken as UTC). Fee date ranges and
                cap tables are judged on the calendar day in the facility's
                time zone.

Output CSV: ``call_id, facility, number`` (E.164), ``product, seconds,
started_at, jurisdiction, rate_per_minute, billed_seconds, charge, fees,
taxes, total`` with money as decimal strings. A malformed row is reported on
stderr with its line number and left out; the others are rated, and the exit
status is 1 when any row was bad. A call that was never connected (empty
``product`` and 0 seconds: refused, declined, unanswered; the controller's
export has such rows) is not a malformed row: it is left out and counted.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS = ("call_id", "facility", "number", "product", "seconds", "started_at")
OUTPUT_COLUMNS = (
    *REQUIRED_COLUMNS,
    "jurisdiction",
    "rate_per_minute",
    "billed_seconds",
    "charge",
    "fees",
    "taxes",
    "total",
)
CHUNK_ROWS = 50_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rerate",
        help="re-rate a CDR file",
        description="Re-rate call detail records (CSV columns: "
        + ", ".join(REQUIRED_COLUMNS)
        + ") with the facility tariffs, and write the rated records.",
    )
    parser.add_argument("input", type=Path, help="CDR CSV file to rate")
    parser.add_argument("-o", "--output", type=Path, required=True, help="rated CSV to write")
    parser.add_argument("--config", type=Path, default=None,
                        help="service config (default configs/demo.toml)")
    parser.set_defaults(func=run)


class RowError(ValueError):
    """A malformed CDR row; the message names the column."""


class UnbilledRow(Exception):
    """A call that was never connected: nothing to rate."""


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ics.commands.rate import load_or_report
    from rating import (
        JURISDICTIONS,
        Jurisdiction,
        Product,
        RatingError,
        cents_str,
        classify,
        day_number,
        rate_str,
        rerate_arrays,
    )
    from rating.rerate import JURISDICTION_INDEX, PRODUCT_INDEX

    config = load_or_report(args.config, "ics rerate")
    if config is None:
        return 2
    facility_ids = sorted(config.facilities)
    facility_index = {fid: i for i, fid in enumerate(facility_ids)}
    rated = [config.facilities[fid].rated for fid in facility_ids]
    zones = [config.facilities[fid].zone for fid in facility_ids]
    placed: dict[tuple[int, str], tuple[str, int, int]] = {}

    def parse_row(row: dict[str, str | None]) -> tuple[Any, ...]:
        if not (row.get("product") or "").strip() and (row.get("seconds") or "").strip() == "0":
            raise UnbilledRow
        values = {}
        for column in REQUIRED_COLUMNS:
            value = row.get(column)
            if value is None or value.strip() == "":
                raise RowError(f"{column}: missing")
            values[column] = value.strip()
        fid = values["facility"]
        if fid not in facility_index:
            raise RowError(f"facility: unknown facility {fid!r}")
        f = facility_index[fid]
        try:
            product = Product(values["product"])
        except ValueError:
            raise RowError(f"product: {values['product']!r} is not one of "
                           + ", ".join(p.value for p in Product)) from None
        if product not in rated[f].tariff.rates:
            raise RowError(f"product: {product} is not offered at {fid}")
        text = values["seconds"]
        if not text.isdigit() or int(text) > 86_400:
            raise RowError(f"seconds: {text!r} is not a whole number of seconds from 0 to 86400")
        try:
            started = datetime.fromisoformat(values["started_at"])
        except ValueError:
            raise RowError(
                f"started_at: {values['started_at']!r} is not an ISO 8601 time"
            ) from None
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        day = day_number(started.astimezone(zones[f]).date())
        key = (f, values["number"])
        if key not in placed:
            try:
                called = classify(rated[f], values["number"])
            except RatingError as exc:
                raise RowError(f"number: {exc}") from None
            termination = (
                rated[f].tariff.termination(called.region)
                if called.jurisdiction is Jurisdiction.INTERNATIONAL
                else 0
            )
            placed[key] = (called.e164, JURISDICTION_INDEX[called.jurisdiction], termination)
        e164, jur, termination = placed[key]
        return (values["call_id"], fid, e164, product, int(text), values["started_at"],
                f, PRODUCT_INDEX[product], jur, day, termination)

    bad = unbilled = 0
    try:
        source = args.input.open(newline="", encoding="utf-8")
    except OSError as exc:
        print(f"ics rerate: {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    with source, tqdm(desc="rating", unit=" CDRs", unit_scale=True, disable=None,
                      file=sys.stderr) as progress:
        reader = csv.DictReader(source)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            print(f"ics rerate: {args.input}:1: missing column(s): {', '.join(missing)}",
                  file=sys.stderr)
            return 2
        try:
            sink = args.output.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            print(f"ics rerate: {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
        with sink:
            writer = csv.writer(sink)
            writer.writerow(OUTPUT_COLUMNS)
            chunk: list[tuple[Any, ...]] = []

            def flush() -> None:
                if not chunk:
                    return
                cols = list(zip(*chunk, strict=True))
                batch = rerate_arrays(
                    rated,
                    np.array(cols[6], dtype=np.int64),
                    np.array(cols[7], dtype=np.int64),
                    np.array(cols[8], dtype=np.int64),
                    np.array(cols[4], dtype=np.int64),
                    np.array(cols[9], dtype=np.int64),
                    np.array(cols[10], dtype=np.int64),
                )
                columns = (batch.rate_units.tolist(), batch.billed_seconds.tolist(),
                           batch.charge_units.tolist(), batch.fees_units.tolist(),
                           batch.taxes_units.tolist(), batch.total_units.tolist())
                for i, rec in enumerate(chunk):
                    writer.writerow((
                        rec[0], rec[1], rec[2], rec[3].value, rec[4], rec[5],
                        JURISDICTIONS[rec[8]].value, rate_str(columns[0][i]), columns[1][i],
                        cents_str(columns[2][i]), cents_str(columns[3][i]),
                        cents_str(columns[4][i]), cents_str(columns[5][i]),
                    ))
                progress.update(len(chunk))
                chunk.clear()

            for row in reader:
                try:
                    if None in row:
                        raise RowError("too many fields")
                    chunk.append(parse_row(row))
                except UnbilledRow:
                    unbilled += 1
                except RowError as exc:
                    bad += 1
                    progress.clear()
                    print(f"{args.input}:{reader.line_num}: {exc}", file=sys.stderr)
                if len(chunk) >= CHUNK_ROWS:
                    flush()
            flush()

    if unbilled:
        print(f"ics rerate: {unbilled} call(s) never connected (no product, 0 seconds) "
              "left out", file=sys.stderr)
    if bad:
        print(f"ics rerate: {bad} bad row(s) left out; the others were rated", file=sys.stderr)
        return 1
    return 0
