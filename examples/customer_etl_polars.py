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
from typing import TYPE_CHECKING

from _demo.crm import connection, run_once
from customer_etl import CHECKS, OPTIONS, TIMESTAMPS, WAREHOUSE  # the same rules and schedule

from headrace import Context, cursor, sql_source, sync

if TYPE_CHECKING:  # imported where it runs: listing this file needs no Polars
    import polars as pl


def clean(ctx: Context, df: pl.DataFrame) -> pl.DataFrame:
    """Lower-case e-mails, title-case names, 10-digit phones, 5-digit zips; rank e-mails."""
    import polars as pl

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
    checks=CHECKS,
    destination=WAREHOUSE,
    sql_tests=Path(__file__).parent / "_demo" / "sql_tests",
)
customer_etl_polars = customers.pipeline(name="customer_etl_polars", doc=__doc__, **OPTIONS)

if __name__ == "__main__":
    sys.exit(run_once(customer_etl_polars))
