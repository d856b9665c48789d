"""A scheduled, interval-based customer ETL with the brief's production policies.

Daily at 02:00 UTC; every task retried 3 times after a 5-minute delay with exponential
backoff capped at 1 hour; 2-hour timeout; 3-hour SLA (alerted when
``HEADRACE_ALERT_WEBHOOK_URL`` or ``HEADRACE_ALERT_SMTP_URL`` is set); catchup off;
one active run. Each run handles its data interval only, so any day can be
(re)run or backfilled:

1. ``extract``: a SQL task on connection ``crm`` selecting the customers updated in
   ``[data_interval_start, data_interval_end)`` (bound parameters, never pasted);
2. ``transform``: cleans them and stages ``customers_<ds>.parquet`` like the brief;
3. ``load``: replaces that day's partition of ``customers_daily`` in the DuckDB
   warehouse in one transaction (idempotent: a rerun never duplicates);
4. ``count_loaded``: a SQL task on connection ``warehouse`` reading the result back;
5. ``cleanup_temp_files``: the brief's shell task
   ``rm -rf <staging>/customers_{{ ds }}*``, values shell-quoted, run even when an
   upstream task failed (trigger rule ``all_done``).

Run it:

    python examples/scheduled_pipeline.py --start 2024-01-01 --end 2024-01-03   # demo backfill
    HEADRACE_CONN_CRM=... HEADRACE_CONN_WAREHOUSE=... headrace scheduler examples/scheduled_pipeline.py
    HEADRACE_CONN_CRM=... HEADRACE_CONN_WAREHOUSE=... headrace backfill examples/scheduled_pipeline.py \\
        --start 2024-01-01 --end 2024-01-31

Without connections, ``python examples/scheduled_pipeline.py`` creates a demo CRM
(SQLite) and warehouse (DuckDB) under ``$HEADRACE_HOME`` (default ``.headrace``).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from headrace import Context, Retry, pipeline, task
from headrace.config import Settings
from headrace.tasks import shell_task, sql_task

# Shared scratch folder, as in the brief's /tmp/staging; one file per day.
STAGING = str((Path(os.environ.get("HEADRACE_HOME", ".headrace")) / "staging_files").resolve())

POLICIES = dict(
    retries=Retry(
        attempts=4,  # the first try + 3 retries
        delay=timedelta(minutes=5),
        backoff=2.0,
        max_delay=timedelta(hours=1),
    ),
    timeout=timedelta(hours=2),
    sla=timedelta(hours=3),
)


def _interval_as_text(ctx: Context) -> dict[str, str]:
    # The demo CRM keeps timestamps as 'YYYY-MM-DD HH:MM:SS' text in UTC.
    return {
        "start": ctx.data_interval_start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "end": ctx.data_interval_end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


extract = sql_task(
    "SELECT customer_id, email, first_name, last_name, phone, zip_code, updated_at "
    "FROM customers WHERE updated_at >= :start AND updated_at < :end ORDER BY customer_id",
    conn="crm",
    task_id="extract",
    parameters=_interval_as_text,
)


@task
def transform(ctx: Context, raw: pa.Table) -> pa.Table:
    """Clean like the reference transform and stage ``customers_<ds>.parquet`` (Polars: the
    ``polars`` extra)."""
    import polars as pl

    df = pl.from_arrow(raw)
    assert isinstance(df, pl.DataFrame)
    digits = pl.col("phone").cast(pl.String).str.replace_all(r"\D", "")
    df = df.with_columns(
        email=pl.col("email").str.strip_chars().str.to_lowercase(),
        first_name=pl.col("first_name").str.strip_chars().str.to_titlecase(),
        last_name=pl.col("last_name").str.strip_chars().str.to_titlecase(),
        phone=pl.when(digits.is_null() | (digits == ""))
        .then(pl.lit("0000000000"))
        .otherwise(digits),
        zip_code=pl.col("zip_code").cast(pl.String).str.zfill(5),
        load_date=pl.lit(ctx.data_interval_start.date()),
    )
    table = df.to_arrow()
    Path(STAGING).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, Path(STAGING) / f"customers_{ctx.ds}.parquet")
    ctx.log.info("transformed %d customers of %s", table.num_rows, ctx.ds)
    return table


@task
def load(ctx: Context, clean: pa.Table) -> int:
    """Replace this day's partition of ``customers_daily``, in one transaction."""
    path = ctx.connection("warehouse").removeprefix("duckdb:///")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS customers_daily (customer_id BIGINT, email VARCHAR, "
            "first_name VARCHAR, last_name VARCHAR, phone VARCHAR, zip_code VARCHAR, "
            "updated_at VARCHAR, load_date DATE)"
        )
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "DELETE FROM customers_daily WHERE load_date = $1", [ctx.data_interval_start.date()]
        )
        con.register("batch", clean)
        con.execute("INSERT INTO customers_daily SELECT * FROM batch")
        con.execute("COMMIT")
    ctx.log.info("loaded %d customers for %s", clean.num_rows, ctx.ds)
    return clean.num_rows


count_loaded = sql_task(
    "SELECT count(*) AS customers FROM customers_daily WHERE load_date = CAST(:ds AS DATE)",
    conn="warehouse",
    task_id="count_loaded",
)

cleanup = shell_task(
    "rm -rf {{ params.staging }}/customers_{{ ds }}*",
    task_id="cleanup_temp_files",
    trigger_rule="all_done",
)


@pipeline(
    schedule="0 2 * * *",
    timezone="UTC",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    defaults=POLICIES,
    params={"staging": STAGING},
    tags=["etl", "customers", "production"],
    owner="data-team",
)
def scheduled_customer_etl() -> None:
    loaded = load(transform(extract()))
    loaded >> count_loaded() >> cleanup()


# ---------------------------------------------------------------------- demo driver


def create_demo_crm(path: Path, days: int = 31, per_day: int = 40) -> dict[str, int]:
    """A small SQLite CRM whose customers were updated through January 2024.

    Returns:
        customers per interval start date (an interval starts at 02:00 UTC).
    """
    rng = random.Random(5)
    rows: list[tuple] = []
    per_interval: dict[str, int] = {}
    for i in range(days * per_day):
        updated = datetime(2024, 1, 1, 2) + timedelta(seconds=rng.randint(0, days * 86400 - 1))
        day = (updated - timedelta(hours=2)).date().isoformat()
        per_interval[day] = per_interval.get(day, 0) + 1
        email = f"  User{i}@Example.COM " if i % 7 else f"user{i}@example.com"
        phone = f"({rng.randint(200, 999)}) 555-{i % 10000:04d}" if i % 11 else None
        rows.append(
            (
                i,
                email,
                " ada ",
                "LOVELACE ",
                phone,
                rng.randint(501, 99950),
                f"{updated:%Y-%m-%d %H:%M:%S}",
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
            "last_name TEXT, phone TEXT, zip_code INTEGER, updated_at TEXT)"
        )
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return per_interval


def main(argv: list[str] | None = None) -> int:
    """Backfill the demo: one run per day, oldest first, skipping days already done."""
    from rich.console import Console

    from headrace.scheduler import Backfill, InlineLauncher
    from headrace.state import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-01-03")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    connections = dict(settings.connections)
    if "crm" not in connections:
        crm = settings.home / "scheduled_demo_crm.db"
        if not crm.exists():
            create_demo_crm(crm)
        connections["crm"] = f"sqlite:///{crm}"
    connections.setdefault("warehouse", f"duckdb:///{settings.home / 'scheduled_warehouse.duckdb'}")
    settings = replace(settings, connections=connections)  # keeps pools, queue and alert settings
    start = datetime.fromisoformat(args.start)
    end = datetime.fromisoformat(args.end) + timedelta(days=1) - timedelta(microseconds=1)
    with open_store(settings.state_url) as store:
        launcher = InlineLauncher(store, settings, executor="inprocess")
        report = Backfill(scheduled_customer_etl, store, launcher=launcher, console=Console()).run(
            start, end
        )
        for interval, plan, state, run_id in report.outcomes:
            result = store.get_task_instances(run_id) if run_id else []
            counted = next((t.result_json for t in result if t.task_id == "load"), None)
            print(
                f"{interval.start:%Y-%m-%d}: {plan.value} -> {state.value if state else '?'}, loaded {counted}"
            )
    print(
        f"backfill: {report.succeeded} succeeded, {report.skipped} skipped, {len(report.failed)} failed"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
