"""The reference Airflow DAG ``customer_etl_pipeline``, ported line by line to headrace.

Each Airflow construct of the reference (``../shared/reference/brief.md``) has its
headrace counterpart here, with no workaround:

=====================================  =================================================
Airflow                                headrace
=====================================  =================================================
``default_args``                       ``defaults=`` of ``@pipeline`` (every task; a task's own option wins)
``'retries': 3`` + exponential delay   ``Retry(attempts=4, delay=5 min, backoff=2.0, max_delay=1 h)``
``'execution_timeout'``                ``timeout``
``'sla'``                              ``sla`` (the scheduler records and alerts misses)
``'depends_on_past': False``           ``depends_on_past``
``'email'``, ``'email_on_failure'``,   ``email``, ``email_on_failure``, ``email_on_retry`` (through the
``'email_on_retry'``                   SMTP server of ``HEADRACE_ALERT_SMTP_URL``)
``description``, ``doc_md``, ``tags``  ``description``, ``doc``, ``tags``
``schedule_interval``, ``start_date``  ``schedule``, ``start_date``, ``catchup``, ``max_active_runs``
``catchup``, ``max_active_runs``
``context['ds']``, ``['prev_ds']``     ``ctx.ds``, ``ctx.prev_ds`` (the previous scheduled logical date)
``Variable.get('source_db_conn')``     ``ctx.var("source_db_conn")`` (``headrace vars set``, secret masked)
``xcom_push`` / ``xcom_pull``          return values, handed to the tasks that take them
``PythonOperator``                     ``@task``
``BashOperator('dbt test ...')``       ``dbt_task(...)`` (test results become check results)
``BashOperator('rm -rf ... {{ ds }}')``  ``shell_task(...)`` with the same ``{{ ds }}`` template
``extract >> transform >> ...``        the same chain with ``>>``
=====================================  =================================================

BigQuery becomes the ``warehouse`` connection (PostgreSQL or DuckDB); Great Expectations'
expectations become headrace checks on ``validate_data``. The source database URL is the
Variable ``source_db_conn`` (PostgreSQL, as in the reference). Where the declarative sync
(``headrace.sync``, being built) will replace extract/transform/load with one declaration,
this port keeps today's public API: a task per Airflow operator.

Run it:
    headrace vars set source_db_conn postgresql://etl@db/crm --secret
    HEADRACE_CONN_WAREHOUSE=postgresql://etl@dw/analytics headrace run examples/airflow_port.py --date 2024-01-02
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from headrace import Context, Retry, pipeline, task
from headrace.connectors import SqlSource, open_destination
from headrace.quality import between, matches_regex, not_null, reconcile, unique
from headrace.tasks import dbt_task, shell_task

if TYPE_CHECKING:  # the transform runs Polars (the polars extra); the file loads without it
    import polars as pl

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"

default_args = dict(
    owner="data-team",
    depends_on_past=False,
    email=["data-alerts@company.com"],
    email_on_failure=True,
    email_on_retry=False,
    retries=Retry(
        attempts=4,  # 'retries': 3 after the first try
        delay=dt.timedelta(minutes=5),  # 'retry_delay'
        backoff=2.0,  # 'retry_exponential_backoff': True
        max_delay=dt.timedelta(hours=1),  # 'max_retry_delay'
    ),
    timeout=dt.timedelta(hours=2),  # 'execution_timeout'
    sla=dt.timedelta(hours=3),
)

DOC_MD = """
# Customer ETL Pipeline

This pipeline extracts customer data from the source database,
transforms it, validates data quality, and loads it into the warehouse.

## Steps:
1. Extract: Pull customer data from PostgreSQL
2. Transform: Clean and enrich data
3. Validate: Run data quality checks
4. Load: Merge into the warehouse
5. Test: Run dbt tests
"""


@task(task_id="extract_data")
def extract_data(ctx: Context) -> pa.Table:
    """Extract data from source database with incremental logic."""
    execution_date = ctx.ds
    prev_execution_date = ctx.prev_ds
    logger.info("Extracting data for %s", execution_date)
    source = SqlSource(
        ctx.var("source_db_conn"),
        query=(
            "SELECT customer_id, email, first_name, last_name, phone, address, city, state, zip_code, "
            "created_at, updated_at FROM customers WHERE DATE(updated_at) BETWEEN $1 AND $2"
        ),
        params=[
            dt.date.fromisoformat(str(prev_execution_date)),
            dt.date.fromisoformat(execution_date),
        ],
    )
    df = source.read().to_table()
    logger.info("Extracted %d rows", df.num_rows)
    return df  # staged as Parquet by headrace: the reference's staging_path and XCom push


@task(task_id="transform_data")
def transform_data(ctx: Context, raw: pl.DataFrame) -> pl.DataFrame:
    """Transform and clean data with comprehensive transformations (Polars: the ``polars`` extra)."""
    import polars as pl

    execution_date = ctx.ds
    digits = pl.col("phone").str.replace_all(r"\D", "")
    df = raw.with_columns(
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
    )
    # Remove duplicates (keep latest)
    df = df.sort("updated_at", descending=True).unique(
        subset=["email"], keep="first", maintain_order=True
    )
    df = df.with_columns(
        etl_inserted_at=pl.lit(dt.datetime.now(dt.UTC)),
        etl_execution_date=pl.lit(dt.date.fromisoformat(execution_date)),
    )
    if not df["email"].str.contains("@").all():
        raise ValueError("Invalid emails found")
    if not df["phone"].str.len_chars().is_in([10, 0]).all():
        raise ValueError("Invalid phone numbers")
    logger.info("Transformed %d rows", df.height)
    return df


@task(
    task_id="validate_data",
    checks=[
        not_null("customer_id"),
        unique("customer_id"),
        matches_regex("email", EMAIL),
        not_null("email"),
        between("created_at", min=dt.datetime(2020, 1, 1)),
    ],
)
def validate_data(transformed: pa.Table) -> pa.Table:
    """Run data quality checks (a failed check fails the task, as the reference raises)."""
    return transformed


@task(task_id="load_to_warehouse")
def load_to_warehouse(ctx: Context, transformed: pa.Table) -> int:
    """Load data to the warehouse with upsert logic (MERGE on customer_id)."""
    dest = open_destination("warehouse", ctx.settings)
    result = dest.write(transformed, "customers", mode="merge", keys=["customer_id"])
    logger.info("Loaded %d rows to the warehouse", result.rows_loaded)
    return result.rows_loaded


@task(task_id="check_data_quality")
def check_data_quality_post_load(ctx: Context, transformed: pa.Table, loaded: int) -> bool:
    """Post-load data quality checks: the rows of this date in the warehouse are the rows transformed."""
    dest = open_destination("warehouse", ctx.settings)
    counted = dest.query(
        f"SELECT COUNT(*) AS actual_count FROM {dest.q('customers')} WHERE etl_execution_date = $1",
        [dt.date.fromisoformat(ctx.ds)],
    )
    actual_count = int(counted.column("actual_count")[0].as_py())
    reconcile(
        transformed.num_rows,
        actual_count,
        0,
        pipeline=ctx.pipeline,
        run_id=ctx.run_id,
        table="customers",
    )
    logger.info("Post-load quality checks passed (%d rows)", actual_count)
    return True


@pipeline(
    name="customer_etl_pipeline",
    defaults=default_args,
    description="ETL pipeline for customer data with validation",
    schedule="0 2 * * *",  # Daily at 2 AM
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["etl", "customers", "production"],
    doc=DOC_MD,
    params={"dbt_project_dir": str(HERE / "_demo" / "dbt"), "tmp_dir": "/tmp"},
)
def customer_etl_pipeline() -> None:
    extract = extract_data()
    transform = transform_data(extract)
    validate = validate_data(transform)
    load = load_to_warehouse(validate)
    quality_check = check_data_quality_post_load(validate, load)
    dbt_test = dbt_task(
        "test --select customers",
        task_id="run_dbt_tests",
        project_dir="{{ params.dbt_project_dir }}",
    )()
    cleanup = shell_task(
        "rm -rf {{ params.tmp_dir }}/staging/customers_{{ ds }}* {{ params.tmp_dir }}/transformed/customers_{{ ds }}*",
        task_id="cleanup_temp_files",
    )()
    extract >> transform >> validate >> load >> quality_check >> dbt_test >> cleanup
