"""The customer ETL with its transform in Polars (needs ``pip install 'headrace[polars]'``).

The same sync as ``customer_etl.py`` (whose transform is DuckDB SQL, for the core
install), under the pipeline name ``customer_etl_polars``: it loads the same rows.

``customers`` of connection ``crm`` (else a messy SQLite demo CRM under ``.headrace/``)
is read past its checkpoint on ``updated_at`` (10-minute lookback), cleaned like the
reference ``transform_data`` (ZIP+4 codes cut to 5 digits), checked (bad rows go to
``customers_quarantine`` with their reason) and merged into ``customers`` of connection
``warehouse`` (default: embedded DuckDB); then the SQL tests of _demo/sql_tests run.
Run it: ``headrace run examples/customer_etl_polars.py``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
from _demo.crm import connection, run_once

from headrace import Context, Retry, cursor, destination, sql_source, sync
from headrace.quality import between, matches_regex, not_null, unique

EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
TIMESTAMPS = {"created_at": pa.timestamp("us"), "updated_at": pa.timestamp("us")}


def clean(ctx: Context, df: pl.DataFrame) -> pl.DataFrame:
    """Lower-case e-mails, title-case names, 10-digit phones, 5-digit zips; rank e-mails."""
    digits = pl.col("phone").str.replace_all(r"\D", "")
    return df.with_columns(
        email=pl.col("email").str.strip_chars().str.to_lowercase(),
        first_name=pl.col("first_name").str.strip_chars().str.to_titlecase(),
        last_name=pl.col("last_name").str.strip_chars().str.to_titlecase(),
        phone=pl.when(digits.is_null() | (digits == ""))
        .then(pl.lit("0000000000"))
        .otherwise(digits),
        address=pl.col("address").fill_null("Unknown"),
        # ZIP+4 "02134-1234" -> "02134"; a zip that is still not 5 digits is quarantined
        zip_code=pl.col("zip_code")
        .cast(pl.String)
        .str.extract(r"^\s*(\d{1,5})(-\d{4})?\s*$")
        .str.zfill(5),
    ).with_columns(
        full_name=pl.concat_str([pl.col("first_name"), pl.col("last_name")], separator=" "),
        email_domain=pl.col("email").str.split("@").list.get(1, null_on_oob=True),
        email_rank=pl.col("updated_at")
        .rank("ordinal", descending=True)
        .over("email")
        .cast(pl.Int64),
        etl_inserted_at=pl.lit(dt.datetime.now(dt.UTC)),
        etl_run_id=pl.lit(ctx.run_id),
    )


customers = sync(
    "customers",
    source=sql_source(connection, table="customers", types=TIMESTAMPS),
    incremental=cursor("updated_at", lookback=dt.timedelta(minutes=10), primary_key="customer_id"),
    transform=clean,
    checks=[
        not_null("customer_id"),
        unique("customer_id"),
        not_null("email", severity="quarantine", reason="email is missing"),
        matches_regex("email", EMAIL, severity="quarantine", reason="email is not valid"),
        matches_regex("phone", r"^\d{10}$", severity="quarantine", reason="phone is not 10 digits"),
        matches_regex(
            "zip_code", r"^\d{5}$", severity="quarantine", reason="zip code is not 5 digits"
        ),
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
    ],  # fmt: skip
    # email_rank only decides the duplicates' quarantine: it is not loaded
    destination=destination(
        "warehouse",
        table="customers",
        mode="merge",
        keys="customer_id",
        exclude=["email_rank"],
        doc="One row per customer of the CRM, cleaned; duplicates by e-mail keep the latest update.",
        columns={
            "customer_id": "The CRM's customer id (merge key)",
            "email": "Lower-cased e-mail address",
            "phone": "10 digits",
            "zip_code": "5-digit ZIP code (ZIP+4 cut)",
            "full_name": {"doc": "First and last name", "from": ["first_name", "last_name"]},
            "email_domain": {"doc": "The e-mail's domain", "from": ["email"]},
        },
    ),
    sql_tests=Path(__file__).parent / "_demo" / "sql_tests",
)
customer_etl_polars = customers.pipeline(
    name="customer_etl_polars", schedule="0 2 * * *", start_date=dt.datetime(2024, 1, 1), catchup=False,
    max_active_runs=1, owner="data-team", tags=["etl", "customers", "production"], doc=__doc__,
    defaults=dict(
        retries=Retry(attempts=4, delay=dt.timedelta(minutes=5), backoff=2.0, max_delay=dt.timedelta(hours=1)),
        timeout=dt.timedelta(hours=2), sla=dt.timedelta(hours=3),
    ),
)  # fmt: skip

if __name__ == "__main__":
    sys.exit(run_once(customer_etl_polars))
