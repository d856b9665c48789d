"""A daily file drop, backfilled: each day's CSV replaces that day's partition.

Every day a partner drops ``orders_<YYYY-MM-DD>.csv`` into a landing folder. The
pipeline ``file_backfill`` runs once per day (data interval ``[day, day + 1)``):

1. reads that day's file with :class:`~headrace.connectors.FileSource` — a line with
   the wrong number of fields, or a value that does not fit its column (``twelve``
   as an amount), is never dropped: it is kept with its file, line number and reason;
2. loads the good rows into ``orders`` with ``mode="replace_partition"`` on
   ``ordered_at`` — the day's rows are deleted and inserted in one transaction, so
   re-running a day (a corrected file was re-delivered) never duplicates — and
   appends the kept lines to ``orders_quarantine`` in the same transaction;
3. checks that nothing was lost: the reader accounts for every line of the file
   (``extract.reports``: lines = header + loaded + quarantined + blank), and the
   warehouse took exactly the rows loaded and the lines kept.

Run it:

    python examples/file_backfill.py                       # demo: 3 days, 2024-01-01..03
    python examples/file_backfill.py --start 2024-01-02 --end 2024-01-02 --rerun
    python examples/file_backfill.py --landing /data/orders --start 2024-03-01 --end 2024-03-31

Without ``--landing``, demo files are written to ``$HEADRACE_HOME/landing`` (default
``.headrace``) on the first run; the warehouse is connection ``warehouse`` or the
DuckDB file ``$HEADRACE_HOME/file_backfill.duckdb``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from headrace import Context, pipeline, task
from headrace.config import Settings
from headrace.connectors import FileSource, Interval, open_destination
from headrace.errors import ConnectorError

TABLE = "orders"
TYPES = {
    "order_id": pa.int64(),
    "customer_id": pa.int64(),
    "amount": pa.float64(),
    "ordered_at": pa.timestamp("us"),
}


def landing_folder(settings: Settings) -> Path:
    """Where the daily files are: ``$HEADRACE_LANDING`` or ``<home>/landing``."""
    return Path(os.environ.get("HEADRACE_LANDING") or settings.home / "landing")


def warehouse_url(settings: Settings) -> str:
    """Connection ``warehouse``, or a DuckDB file under the headrace home."""
    if settings.has_connection("warehouse"):
        return settings.connection("warehouse")
    return f"duckdb:///{settings.home / 'file_backfill.duckdb'}"


@task
def load_day(ctx: Context) -> dict[str, int]:
    """Replace the day's partition of ``orders`` with the day's file; keep bad lines."""
    file = landing_folder(ctx.settings) / f"orders_{ctx.ds}.csv"
    if not file.exists():
        raise ConnectorError(
            f"Pipeline file_backfill, run {ctx.ds}: no file {file}; the partner has not "
            "delivered this day yet (rerun the day once it is there)."
        )
    source = FileSource(file, types=TYPES)
    extract = source.read()
    good = extract.to_table()
    # the reader accounts for every line of the file (it fails loudly if it cannot):
    # lines = header + loaded + quarantined + blank + continuation lines of quoted values
    (report,) = extract.reports
    kept = extract.quarantine_table()  # file, line, reason, text of each line kept aside
    # the interval is in UTC; the files hold naive UTC timestamps
    day = Interval(
        "ordered_at",
        ctx.data_interval_start.replace(tzinfo=None),
        ctx.data_interval_end.replace(tzinfo=None),
    )
    result = open_destination(warehouse_url(ctx.settings)).write(
        good,
        TABLE,
        mode="replace_partition",
        partition=day,
        quarantine=kept if kept.num_rows else None,
    )
    lines = report.lines - report.header - report.blank
    if (report.loaded, report.quarantined) != (result.rows_loaded, result.rows_quarantined):
        raise ConnectorError(
            f"Pipeline file_backfill, run {ctx.ds}: {report}, but the warehouse took "
            f"{result.rows_loaded} rows and {result.rows_quarantined} kept aside."
        )
    for row in source.malformed:
        ctx.log.warning("kept aside %s", row)
    ctx.log.info(
        "%s: %d orders loaded (%d replaced), %d lines kept aside",
        file.name,
        result.rows_loaded,
        result.rows_replaced,
        result.rows_quarantined,
    )
    return {
        "lines": lines,
        "loaded": result.rows_loaded,
        "replaced": result.rows_replaced,
        "kept": result.rows_quarantined,
    }


@pipeline(schedule="0 0 * * *", timezone="UTC", start_date=datetime(2024, 1, 1), catchup=False)
def file_backfill() -> None:
    load_day()


# ---------------------------------------------------------------------- demo driver

DEMO = {
    "2024-01-01": [
        "order_id,customer_id,amount,ordered_at",
        "1,10,19.99,2024-01-01 08:15:00",
        "2,11,5.00,2024-01-01 09:30:00",
        "3,10,42.50,2024-01-01 17:45:00",
    ],
    "2024-01-02": [
        "order_id,customer_id,amount,ordered_at",
        "4,12,7.25,2024-01-02 10:00:00",
        "5,13,12.00,2024-01-02 11:20:00",
        "6,14,3.10",  # a field is missing: kept with its line number (4)
        "7,10,99.90,2024-01-02 23:59:59",
    ],
    "2024-01-03": [
        "order_id,customer_id,amount,ordered_at",
        "8,15,twelve,2024-01-03 07:00:00",  # not a number: kept (line 2)
        "9,11,15.75,2024-01-03 12:30:00",
        "10,12,8.00,2024-01-03 18:05:00",
    ],
}


def write_demo_files(folder: Path) -> None:
    """Three daily files, one with a short line and one with a bad amount."""
    folder.mkdir(parents=True, exist_ok=True)
    for day, lines in DEMO.items():
        (folder / f"orders_{day}.csv").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Backfill the days ``--start``..``--end``, then show the table and the kept lines."""
    from rich.console import Console

    from headrace.scheduler import Backfill, InlineLauncher
    from headrace.state import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-01-03")
    parser.add_argument("--landing", help="folder of orders_<day>.csv files (default: demo)")
    parser.add_argument("--rerun", action="store_true", help="run days that succeeded again")
    args = parser.parse_args(argv)
    if args.landing:
        os.environ["HEADRACE_LANDING"] = args.landing
    settings = Settings.from_env()
    folder = landing_folder(settings)
    if not args.landing and not folder.exists():
        write_demo_files(folder)
    start = datetime.fromisoformat(args.start)
    end = datetime.fromisoformat(args.end)
    with open_store(settings.state_url) as store:
        launcher = InlineLauncher(store, settings, executor="inprocess")
        report = Backfill(
            file_backfill, store, launcher=launcher, console=Console(stderr=True)
        ).run(start, end + timedelta(days=1) - timedelta(microseconds=1), rerun=args.rerun)
        for interval, plan, state, run_id in report.outcomes:
            tis = store.get_task_instances(run_id) if run_id else []
            raw = next((t.result_json for t in tis if t.task_id == "load_day"), None)
            done = json.loads(raw) if isinstance(raw, str) else raw
            error = next((t.error for t in tis if t.error), None)
            figures = (
                f"{done['lines']} lines: {done['loaded']} loaded "
                f"({done['replaced']} replaced), {done['kept']} kept aside"
                if done
                else (error or "-")
            )
            print(
                f"{interval.start:%Y-%m-%d}: {plan.value} -> "
                f"{state.value if state else '?'}, {figures}"
            )
    dest = open_destination(warehouse_url(settings))
    per_day = dest.query(
        f"SELECT CAST(ordered_at AS DATE) AS day, count(*) AS n FROM {dest.q(TABLE)} "
        "GROUP BY day ORDER BY day"
    ).to_pylist()
    print("orders per day: " + ", ".join(f"{r['day']} {r['n']}" for r in per_day))
    kept = dest.query(
        f"SELECT file, line, reason, text, count(*) AS times FROM {dest.q(TABLE + '_quarantine')} "
        "GROUP BY ALL ORDER BY file, line"
    ).to_pylist()
    for row in kept:  # a day loaded again keeps its bad lines again, with the new load's id
        again = f" (by {row['times']} loads)" if row["times"] > 1 else ""
        print(
            f"kept: {Path(row['file']).name}:{row['line']}: {row['reason']}: {row['text']!r}{again}"
        )
    print(
        f"backfill: {report.succeeded} succeeded, {report.skipped} skipped, "
        f"{len(report.failed)} failed"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
