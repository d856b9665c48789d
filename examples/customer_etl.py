"""The customer ETL as one declarative sync: incremental extract, clean, check, merge, test.

``customers`` of connection ``crm`` (else a messy SQLite demo CRM under ``.headrace/``)
is read past its checkpoint on ``updated_at`` (10-minute lookback), cleaned like the
reference ``transform_data`` (ZIP+4 codes cut to 5 digits), checked (bad rows go to
``customers_quarantine`` with their reason) and merged into ``customers`` of connection
``warehouse`` (default: embedded DuckDB); then the SQL tests of _demo/sql_tests run.
Run it: ``headrace run examples/customer_etl.py`` (or ``python examples/customer_etl.py``).

The transform is DuckDB SQL over the Arrow rows (the core install);
``customer_etl_polars.py`` is the same pipeline with the transform in Polars (the
``polars`` extra), and loads the same rows.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from _demo.crm import connection, run_once

from headrace import Context, Retry, cursor, destination, sql_source, sync
from headrace.quality import between, matches_regex, not_null, unique
from headrace.quality.patterns import to_re2

EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
TIMESTAMPS = {"created_at": pa.timestamp("us"), "updated_at": pa.timestamp("us")}


# The cleaning rules' regexes with Python's (Unicode) \s, \d, \D, spelled for DuckDB's RE2
ZIP = to_re2(r"^\s*(\d{1,5})(-\d{4})?\s*$")
NOT_DIGIT = to_re2(r"\D")
CLEAN = """
SELECT * EXCLUDE (_row) REPLACE (
    CASE WHEN coalesce(regexp_replace(phone, $not_digit, '', 'g'), '') = '' THEN '0000000000'
         ELSE regexp_replace(phone, $not_digit, '', 'g') END AS phone,
    coalesce(address, 'Unknown') AS address,
    -- ZIP+4 "02134-1234" -> "02134"; a zip that is still not 5 digits is quarantined
    CASE WHEN regexp_matches(CAST(zip_code AS VARCHAR), $zip)
         THEN lpad(regexp_extract(CAST(zip_code AS VARCHAR), $zip, 1), 5, '0') END AS zip_code
),
    first_name || ' ' || last_name AS full_name,
    string_split(email, '@')[2] AS email_domain,
    -- 1 for the most recently updated customer of each e-mail (ties: the first row)
    CASE WHEN updated_at IS NOT NULL THEN row_number() OVER (
        PARTITION BY email, updated_at IS NULL ORDER BY updated_at DESC, _row
    ) END AS email_rank,
    $now AS etl_inserted_at,
    $run_id AS etl_run_id
FROM rows
ORDER BY _row
"""


def clean(ctx: Context, rows: pa.Table) -> pa.Table:
    """Lower-case e-mails, title-case names, 10-digit phones, 5-digit zips; rank e-mails."""
    # Text in Arrow compute (Unicode trim, lower and title case), the rest in DuckDB SQL.
    text = {
        "email": pc.utf8_lower(pc.utf8_trim_whitespace(rows["email"])),
        "first_name": pc.utf8_title(pc.utf8_trim_whitespace(rows["first_name"])),
        "last_name": pc.utf8_title(pc.utf8_trim_whitespace(rows["last_name"])),
    }
    for name, values in text.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, values)
    # The window reorders rows: their position puts them back.
    rows = rows.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")  # etl_inserted_at arrives as timestamp[us, UTC]
        con.register("rows", rows)
        now = dt.datetime.now(dt.UTC)
        params = {"zip": ZIP, "not_digit": NOT_DIGIT, "now": now, "run_id": ctx.run_id}
        return con.sql(CLEAN, params=params).to_arrow_table()


# What every customer row must satisfy (customer_etl_polars.py checks the same)
CHECKS = [
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
]  # fmt: skip

# email_rank only decides the duplicates' quarantine: it is not loaded
WAREHOUSE = destination(
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
)

# How the pipeline runs (customer_etl_polars.py runs the same way)
OPTIONS = dict(
    schedule="0 2 * * *", start_date=dt.datetime(2024, 1, 1), catchup=False,
    max_active_runs=1, owner="data-team", tags=["etl", "customers", "production"],
    defaults=dict(
        retries=Retry(attempts=4, delay=dt.timedelta(minutes=5), backoff=2.0, max_delay=dt.timedelta(hours=1)),
        timeout=dt.timedelta(hours=2), sla=dt.timedelta(hours=3),
    ),
)  # fmt: skip

customers = sync(
    "customers",
    source=sql_source(connection, table="customers", types=TIMESTAMPS),
    incremental=cursor("updated_at", lookback=dt.timedelta(minutes=10), primary_key="customer_id"),
    transform=clean,
    checks=CHECKS,
    destination=WAREHOUSE,
    sql_tests=Path(__file__).parent / "_demo" / "sql_tests",
)
customer_etl = customers.pipeline(name="customer_etl", doc=__doc__, **OPTIONS)

if __name__ == "__main__":
    sys.exit(run_once(customer_etl))
