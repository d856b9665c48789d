"""The customer ETL: incremental extract, clean, validate, merge, reconcile, test.

Extracts ``customers`` from connection ``crm`` incrementally on ``updated_at`` —
PostgreSQL (or any SQL source) when ``HEADRACE_CONN_CRM`` is set, otherwise a messy
SQLite demo CRM created under ``.headrace/`` on first run (later runs simulate a day
of CRM activity in it, so there is something new to load). Cleans it with Polars as
the reference ``transform_data`` does, checks it (bad rows are quarantined with their
reason, never dropped), merges it into ``customers`` of connection ``warehouse``
(default: the embedded DuckDB ``.headrace/warehouse.duckdb``) on ``customer_id``
together with the checkpoint and the quarantined rows — one transaction — then
reconciles counts and runs SQL tests on the warehouse.

Run it:  headrace run examples/customer_etl.py      (or: python examples/customer_etl.py)
Run it again: only new and changed rows are extracted and loaded.

It is scheduled like the reference DAG: daily at 02:00 (``headrace scheduler
examples/``), catchup off, one active run, every task retried 3 times after 5 minutes
with exponential backoff capped at 1 hour, a 2-hour timeout and a 3-hour SLA (the
extract overrides the retry delay: a flaky CRM connection is worth a quicker retry).
A manual ``headrace run`` without ``--date`` is a new run each time; cursor mode does
not depend on the data interval, so manual and scheduled runs share one checkpoint.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import polars as pl
import pyarrow as pa

from headrace import Context, Retry, pipeline, task
from headrace.config import Settings
from headrace.connectors import Checkpoint, Cursor, SqlSource, open_destination
from headrace.connectors.destinations.sqlbase import SqlDestination
from headrace.connectors.incremental import column_max
from headrace.connectors.naming import default_warehouse, resolve
from headrace.quality import between, matches_regex, not_null, reconcile, run_sql_tests, unique

PIPELINE = "customer_etl"
SOURCE = "crm.customers"
TABLE = "customers"
EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
# Rows committed up to 10 minutes late are still caught; re-read rows merge on the key.
CURSOR = Cursor("updated_at", lookback=dt.timedelta(minutes=10), primary_key=("customer_id",))
HERE = Path(__file__).resolve().parent


def _demo() -> Any:
    """The demo CRM module (examples/_demo/crm.py), loaded by path so the example runs from anywhere."""
    spec = importlib.util.spec_from_file_location("headrace_demo_crm", HERE / "_demo" / "crm.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def crm_source(settings: Settings, ctx: Context | None = None) -> SqlSource:
    """The ``crm`` connection, or the SQLite demo CRM (created, or given a day of activity)."""
    if settings.has_connection("crm"):
        return SqlSource.from_url("crm", settings, table="customers")
    path = Path(settings.home) / "demo_crm.db"
    demo = _demo()
    if not path.exists():
        n = demo.create_sqlite(path)
        if ctx:
            ctx.log.info("created the demo CRM %s with %d messy customers", path, n)
    elif ctx is None or ctx.attempt == 1:  # a retried extract does not simulate a second day
        changed, new = demo.simulate_activity(
            path, now=dt.datetime.now(dt.UTC).replace(tzinfo=None)
        )
        if ctx:
            ctx.log.info("demo CRM activity: %d customers changed, %d signed up", changed, new)
    # SQLite keeps timestamps as text: read them as timestamps
    types = {"created_at": pa.timestamp("us"), "updated_at": pa.timestamp("us")}
    return SqlSource(f"sqlite:///{path}", table="customers", types=types)


def warehouse(settings: Settings) -> SqlDestination:
    """The ``warehouse`` connection, or the embedded DuckDB under the headrace home."""
    if settings.has_connection("warehouse"):
        return open_destination("warehouse", settings)
    return open_destination(default_warehouse(settings))


@task(retries=Retry(attempts=3, delay=dt.timedelta(seconds=2), backoff=2.0))
def extract(ctx: Context) -> pa.Table:
    """Rows of ``customers`` changed since the checkpoint stored in the warehouse."""
    checkpoint = warehouse(ctx.settings).checkpoint(PIPELINE, SOURCE)
    rows = crm_source(ctx.settings, ctx).read(
        cursor=CURSOR,
        checkpoint=checkpoint,
        progress=lambda n: ctx.progress(n, None, "customers extracted"),
    )
    table = rows.to_table()
    since = checkpoint.value if checkpoint else "the beginning"
    ctx.log.info(
        "extracted %d customers changed since %s (lookback %s)",
        table.num_rows,
        since,
        CURSOR.lookback,
    )
    return table


CHECKS = [
    not_null("customer_id"),
    unique("customer_id"),
    not_null("email", severity="quarantine", reason="email is missing"),
    matches_regex("email", EMAIL, severity="quarantine", reason="email is not valid"),
    matches_regex("phone", r"^\d{10}$", severity="quarantine", reason="phone is not 10 digits"),
    between(
        "created_at",
        min=dt.datetime(2020, 1, 1),
        severity="quarantine",
        reason="created_at is before 2020-01-01",
    ),
    between(
        "email_rank",
        max=1,
        severity="quarantine",
        reason="duplicate email: a more recently updated customer has it",
    ),
]


@task(checks=CHECKS)
def transform(ctx: Context, raw: pa.Table) -> pl.DataFrame:
    """Clean and enrich like the reference transform_data; checks quarantine bad rows."""
    df = pl.from_arrow(raw)
    assert isinstance(df, pl.DataFrame)
    digits = pl.col("phone").str.replace_all(r"\D", "")
    df = df.with_columns(
        email=pl.col("email").str.strip_chars().str.to_lowercase(),
        first_name=pl.col("first_name").str.strip_chars().str.to_titlecase(),
        last_name=pl.col("last_name").str.strip_chars().str.to_titlecase(),
        phone=pl.when(digits.is_null() | (digits == ""))
        .then(pl.lit("0000000000"))
        .otherwise(digits),
        address=pl.col("address").fill_null("Unknown"),
        zip_code=pl.col("zip_code").cast(pl.String).str.zfill(5),
    ).with_columns(
        full_name=pl.concat_str([pl.col("first_name"), pl.col("last_name")], separator=" "),
        email_domain=pl.col("email").str.split("@").list.get(1, null_on_oob=True),
        # 1 = the latest row of its e-mail; older ones are quarantined as duplicates
        email_rank=pl.col("updated_at")
        .rank("ordinal", descending=True)
        .over("email")
        .cast(pl.Int64),
        etl_inserted_at=pl.lit(dt.datetime.now(dt.UTC)),
        etl_run_id=pl.lit(ctx.run_id),
    )
    ctx.log.info("transformed %d rows", df.height)
    return df


@task
def load(ctx: Context, raw: pa.Table, clean: pl.DataFrame) -> dict:
    """Merge the good rows on customer_id, with the quarantine and the checkpoint, atomically."""
    quarantined = ctx.quarantine_of("transform")
    n_quarantined = 0 if quarantined is None else quarantined.num_rows
    # before writing anything: every extracted row is either good or quarantined
    reconcile(
        raw.num_rows, clean.height, n_quarantined, pipeline=PIPELINE, run_id=ctx.run_id, table=TABLE
    )
    dest = warehouse(ctx.settings)
    load_id = f"{ctx.run_id}:load"
    if raw.num_rows == 0:
        return {"extracted": 0, "loaded": 0, "replaced": 0, "quarantined": 0, "load_id": None}
    result = dest.write(
        clean.drop("email_rank"),
        TABLE,
        mode="merge",
        keys=["customer_id"],
        quarantine=quarantined,
        checkpoint=Checkpoint(PIPELINE, SOURCE, column_max(raw, "updated_at")),
        load_id=load_id,  # a retried load task never applies the same load twice
        metadata=True,
    )
    ctx.log.info(
        "merged %d rows into %s (%d replaced), %d quarantined%s%s",
        result.rows_loaded,
        TABLE,
        result.rows_replaced,
        result.rows_quarantined,
        " (already loaded)" if result.already_loaded else "",
        # DuckDB: merges have now deleted 10% of the table since it was last compacted
        "; compacted the table" if result.compacted else "",
    )
    return {
        "extracted": raw.num_rows,
        "loaded": result.rows_loaded,
        "replaced": result.rows_replaced,
        "quarantined": result.rows_quarantined,
        "load_id": load_id,
    }


def _count(dest: SqlDestination, table: str, load_id: str | None = None) -> int:
    """Rows of ``table`` (of one load when ``load_id`` is given), counted in the warehouse."""
    where, params = (" WHERE _hr_load_id = $1", [load_id]) if load_id else ("", [])
    result = dest.query(f"SELECT count(*) AS n FROM {dest.q(table)}{where}", params)
    return int(result.column("n")[0].as_py())


def sql_test_target(settings: Settings) -> str:
    """The warehouse URL for the SQL tests; a PostgreSQL ``?schema=`` becomes its search_path."""
    if not settings.has_connection("warehouse"):
        return default_warehouse(settings)
    conn = resolve("warehouse", settings)
    schema = conn.options.get("schema")
    if conn.backend != "postgresql" or not schema:
        return conn.url
    options = urlencode({"options": f"-csearch_path={schema}"})
    return f"{conn.url}{'&' if '?' in conn.url else '?'}{options}"


@task
def verify(ctx: Context, stats: dict) -> dict:
    """Reconcile against the warehouse itself and run the SQL tests of examples/_demo/sql_tests."""
    dest = warehouse(ctx.settings)
    if stats["load_id"]:
        quarantined = (
            _count(dest, TABLE + "_quarantine", stats["load_id"]) if stats["quarantined"] else 0
        )
        reconcile(
            stats["extracted"], _count(dest, TABLE, stats["load_id"]), quarantined,
            pipeline=PIPELINE, run_id=ctx.run_id, table=TABLE,
        )  # fmt: skip
    report = run_sql_tests(
        sql_test_target(ctx.settings), HERE / "_demo" / "sql_tests", pipeline=PIPELINE
    )
    report.raise_for_failures()
    return {**stats, "warehouse_rows": _count(dest, TABLE), "sql_tests_passed": len(report.results)}


@pipeline(
    schedule="0 2 * * *",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    defaults=dict(
        retries=Retry(
            attempts=4,  # the first try and 3 retries
            delay=dt.timedelta(minutes=5),
            backoff=2.0,
            max_delay=dt.timedelta(hours=1),
        ),
        timeout=dt.timedelta(hours=2),
        sla=dt.timedelta(hours=3),
    ),
    owner="data-team",
    tags=["etl", "customers", "production"],
    doc=__doc__,
)
def customer_etl() -> None:
    raw = extract()
    verify(load(raw, transform(raw)))


def main() -> int:
    """Run the pipeline once in this process and print what it did."""
    from headrace.engine import Runner
    from headrace.state import open_store

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(customer_etl)
        if result.state != "success":
            failed = [t for t in result.tasks if t.state == "failed"]
            for t in failed:
                print(f"task {t.task_id} failed: {t.error}", file=sys.stderr)
            return 1
        stats = result.result_of("verify")
    print(
        f"customer_etl {result.run_id}: extracted {stats['extracted']}, loaded {stats['loaded']} "
        f"({stats['replaced']} updated), quarantined {stats['quarantined']}; "
        f"warehouse has {stats['warehouse_rows']} customers; "
        f"{stats['sql_tests_passed']} SQL tests passed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
