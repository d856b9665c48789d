"""Data-quality checks on a small customers table: severities, quarantine, SQL tests.

What it shows, in order:
1. expectations with the three severities checked in one pass (apply_checks);
   rows failing a ``quarantine`` rule are set aside with their reasons;
2. the rows that pass go to a DuckDB warehouse, the quarantined ones to a
   quarantine table, and reconcile() proves no row was lost;
3. post-load expectations on the DuckDB table (check_table) and dbt-style SQL
   test files (run_sql_tests);
4. a ``fail`` expectation stopping the task with a clear summary;
5. the results stored in the run-state store and shown by ``headrace checks``.

Run it:  python examples/quality_checks.py [FOLDER]
(FOLDER defaults to a temporary directory.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from headrace.cli import run_app
from headrace.quality import (
    ExpectationsFailed,
    accepted_values,
    apply_checks,
    between,
    check_table,
    matches_regex,
    not_null,
    reconcile,
    row_count_between,
    run_sql_tests,
    sql_expression,
    unique,
)
from headrace.state import open_store

EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"


def customers() -> pa.Table:
    """Eight cleaned customers with the defects real extracts have."""
    created = [datetime(2023, 5, d, 9, 30, tzinfo=UTC) for d in range(1, 9)]
    created[6] = datetime(2019, 12, 31, 23, 0, tzinfo=UTC)  # legacy import
    return pa.table(
        {
            "customer_id": pa.array([1, 2, 3, 4, 5, 6, 7, 8], pa.int64()),
            "email": [
                "ana@example.com",
                "ben@example",
                "chloé@exemple.fr",
                None,
                "eva@mail.org",
                "fatima at mail.org",
                "günter@post.de",
                "hiro@mail.jp",
            ],
            "phone": [
                "0612345678",
                "0612345679",
                "061234",
                "0712345678",
                "0812345678",
                "0912345678",
                "0412345678",
                "0312345678",
            ],
            "status": [
                "active",
                "active",
                "inactive",
                "active",
                "active",
                "banned",
                "active",
                "active",
            ],
            "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        }
    )


def main(folder: Path) -> None:
    table = customers()
    checks = [
        not_null("customer_id"),  # fail: stops the task
        unique("customer_id"),
        not_null("email", severity="warn", mostly=0.8),  # warn below 80% present (GX mostly)
        between("created_at", min="2020-01-01", severity="warn"),  # bound read as UTC
        matches_regex("email", EMAIL, severity="quarantine", reason="invalid email"),
        matches_regex("phone", r"^[0-9]{10}$", severity="quarantine", name="ten_digit_phone"),
        accepted_values("status", ["active", "inactive"], severity="quarantine"),
        row_count_between(min=1),
    ]
    outcome = apply_checks(table, checks, pipeline="customer_etl", task="clean")
    outcome.raise_for_failures()  # nothing of severity 'fail' failed
    print(outcome.summary())
    print(
        f"rows in {outcome.rows_in}: passed {outcome.passed.num_rows}, "
        f"quarantined {outcome.rows_quarantined}"
    )
    assert outcome.quarantined is not None
    for row in outcome.quarantined.select(
        ["customer_id", "_hr_expectation", "_hr_reason"]
    ).to_pylist():
        print(
            f"  quarantined customer {row['customer_id']}: {row['_hr_reason']} ({row['_hr_expectation']})"
        )

    # Load: good rows to the warehouse, the rest to a quarantine table, then reconcile.
    warehouse = folder / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        passed, quarantined = outcome.passed, outcome.quarantined  # noqa: F841 (read by DuckDB)
        con.execute("CREATE OR REPLACE TABLE customers AS SELECT * FROM passed")
        con.execute("CREATE OR REPLACE TABLE customers_quarantine AS SELECT * FROM quarantined")
        loaded = con.execute("SELECT count(*) FROM customers").fetchone()[0]  # type: ignore[index]
        set_aside = con.execute("SELECT count(*) FROM customers_quarantine").fetchone()[0]  # type: ignore[index]
    counts = reconcile(
        table.num_rows, loaded, set_aside, pipeline="customer_etl", table="customers"
    )
    print(
        f"reconciled: extracted {counts.extracted} = loaded {counts.loaded} + quarantined {counts.quarantined}"
    )

    # Post-load: expectations inside DuckDB, then SQL test files.
    post_load = check_table(
        f"duckdb:///{warehouse}",
        "customers",
        [
            unique("customer_id"),
            not_null("email"),
            sql_expression("created_at <= now()", name="not_in_future"),
        ],
        pipeline="customer_etl",
    )
    print(post_load.summary())
    tests = folder / "sql_tests"
    tests.mkdir(exist_ok=True)
    (tests / "one_row_per_email.sql").write_text(
        "-- reason: the transform dedupes by email\n"
        "SELECT email, count(*) AS n FROM customers GROUP BY email HAVING count(*) > 1\n"
    )
    (tests / "quarantine_has_reasons.sql").write_text(
        "SELECT * FROM customers_quarantine WHERE _hr_reason IS NULL OR _hr_reason = ''\n"
    )
    sql_report = run_sql_tests(f"duckdb:///{warehouse}", tests, pipeline="customer_etl")
    sql_report.raise_for_failures()
    print(sql_report.summary())

    # A 'fail' expectation stops the task with a summary naming what failed and where.
    strict = apply_checks(table, [not_null("email")], pipeline="customer_etl", task="validate")
    try:
        strict.raise_for_failures()
    except ExpectationsFailed as exc:
        print("validate stopped:", str(exc).splitlines()[1])

    # Store the results per run and show them as `headrace checks RUN_ID` would.
    state_url = f"sqlite:///{folder / 'state.db'}"
    day = datetime(2024, 3, 1, tzinfo=UTC)
    with open_store(state_url) as store:
        run, _ = store.create_run("customer_etl", day, day, day + timedelta(days=1))
        store.record_check_results(
            outcome.records(run.run_id)
            + post_load.records(run.run_id, "load")
            + sql_report.records(run.run_id)
            + strict.records(run.run_id)
        )
    print(f"\n$ headrace checks {run.run_id} --failed --samples")
    os.environ["HEADRACE_STATE_URL"] = state_url
    code = run_app(["checks", run.run_id, "--failed", "--samples"])
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        target = Path(sys.argv[1])
        target.mkdir(parents=True, exist_ok=True)
        main(target)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
