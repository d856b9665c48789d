"""examples/customer_etl.py end to end: SQLite demo source twice, then a PostgreSQL source;
examples/customer_etl_polars.py (the transform in Polars) loads the very same rows."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "customer_etl.py"
POLARS_EXAMPLE = ROOT / "examples" / "customer_etl_polars.py"
SUMMARY = re.compile(
    r"extracted (\d+), loaded (\d+) \((\d+) updated\), quarantined (\d+); warehouse has (\d+) customers; "
    r"3 SQL tests passed"
)


def run_example(home: Path, **env_extra: str) -> tuple[int, int, int, int, int]:
    return run_file(EXAMPLE, home, env_extra)


def run_file(
    example: Path, home: Path, env_extra: dict[str, str] | None = None
) -> tuple[int, int, int, int, int]:
    """``python EXAMPLE`` in ``home``: its summary (extracted, loaded, updated, quarantined, total)."""
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(home), **(env_extra or {}))
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = SUMMARY.search(done.stdout)
    assert match, done.stdout
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def run_cli(home: Path) -> str:
    """``headrace run examples/customer_etl.py`` as a user types it (process executor)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(home), COLUMNS="150")
    headrace = Path(sys.executable).with_name("headrace")
    done = subprocess.run(
        [str(headrace), "run", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)


def test_sqlite_demo_source_twice(tmp_path: Path) -> None:
    out = run_cli(tmp_path)  # first run through the CLI, on a fresh home
    assert "of customer_etl" in out and ": success" in out
    assert (tmp_path / "demo_crm.db").exists()
    with sqlite3.connect(tmp_path / "demo_crm.db") as crm:  # real US data: ZIP+4 codes
        (zip4,) = crm.execute("SELECT count(*) FROM customers WHERE zip_code LIKE '%-%'").fetchone()
    assert zip4 > 100
    with warehouse(tmp_path) as con:
        [(loaded, distinct)] = con.execute(
            "SELECT count(*), count(DISTINCT customer_id) FROM customers"
        ).fetchall()
        [(quarantined,)] = con.execute("SELECT count(*) FROM customers_quarantine").fetchall()
        assert loaded == distinct and loaded + quarantined == 1000 and 600 < loaded < 1000
        total = loaded
        reasons = {
            r
            for (r,) in con.execute(
                "SELECT DISTINCT _hr_reason FROM customers_quarantine"
            ).fetchall()
        }
        joined = " | ".join(reasons)
        for why in (
            "email is not valid",
            "email is missing",
            "phone is not 10 digits",
            "created_at is before 2020-01-01",
            "duplicate email",
        ):
            assert why in joined, (why, reasons)
        # cleaned like the reference transform
        bad = con.execute(
            "SELECT count(*) FROM customers WHERE email <> lower(trim(email)) OR length(zip_code) <> 5 "
            "OR NOT regexp_full_match(phone, '\\d{10}') OR address IS NULL "
            "OR full_name <> first_name || ' ' || last_name OR email_domain <> split_part(email, '@', 2)"
        ).fetchall()[0][0]
        assert bad == 0
        columns = {row[0] for row in con.execute("DESCRIBE customers").fetchall()}
        assert "email_rank" not in columns and {"_hr_load_id", "etl_run_id"} <= columns
        assert (
            con.execute("SELECT count(*) FROM customers WHERE zip_code = '02134'").fetchall()[0][0]
            > 0
        )
        assert (
            con.execute("SELECT count(*) FROM customers WHERE phone = '0000000000'").fetchall()[0][
                0
            ]
            > 0
        )
        [(first_ckpt,)] = con.execute(
            "SELECT value FROM _hr_checkpoints WHERE pipeline = 'customer_etl'"
        ).fetchall()

    # second run: the demo CRM changed 25 customers and signed up 10; only those (plus
    # the lookback window) are extracted, merged without duplicates
    extracted2, loaded2, updated2, quarantined2, total2 = run_example(tmp_path)
    assert 35 <= extracted2 < 60 and loaded2 + quarantined2 == extracted2
    assert updated2 > 0 and total2 == total + (loaded2 - updated2)
    with warehouse(tmp_path) as con:
        assert con.execute(
            "SELECT count(DISTINCT customer_id), count(*) FROM customers"
        ).fetchone() == (total2, total2)
        [(second_ckpt,)] = con.execute(
            "SELECT value FROM _hr_checkpoints WHERE pipeline = 'customer_etl'"
        ).fetchall()
        assert second_ckpt > first_ckpt
        loads = con.execute(
            "SELECT count(*) FROM _hr_loads WHERE table_name = 'customers'"
        ).fetchall()[0][0]
        assert loads == 2


# Differ from run to run whatever the transform: the load, the run, the time of the transform.
RUN_COLUMNS = {"etl_inserted_at", "etl_run_id", "_hr_load_id", "_hr_loaded_at"}


def test_polars_transform_loads_the_same_rows(tmp_path: Path) -> None:
    """The demo's DuckDB SQL transform and the Polars one of customer_etl_polars.py load the
    same customers and quarantine the same rows with the same reasons, in the same order."""
    first = run_example(tmp_path / "sql")
    assert run_file(POLARS_EXAMPLE, tmp_path / "polars") == first
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'sql' / 'warehouse.duckdb'}' AS sql_wh (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 'polars' / 'warehouse.duckdb'}' AS polars_wh (READ_ONLY)")
    for table in ("customers", "customers_quarantine"):
        described = con.execute(f"DESCRIBE sql_wh.{table}").fetchall()
        assert [r[:2] for r in described] == [
            r[:2] for r in con.execute(f"DESCRIBE polars_wh.{table}").fetchall()
        ]
        columns = ", ".join(f'"{r[0]}"' for r in described if r[0] not in RUN_COLUMNS)
        assert "email_domain" in columns and "zip_code" in columns
        rows = con.execute(f"SELECT {columns} FROM sql_wh.{table}").fetchall()
        assert rows == con.execute(f"SELECT {columns} FROM polars_wh.{table}").fetchall()
        assert len(rows) in (first[1], first[3])  # loaded, quarantined


def _demo_rows() -> list[tuple]:
    spec = importlib.util.spec_from_file_location(
        "demo_crm_for_test", ROOT / "examples" / "_demo" / "crm.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.demo_rows(300)


def test_postgres_source_and_idempotent_rerun(tmp_path: Path, pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".customers (customer_id bigint PRIMARY KEY, email text, '
            "first_name text, last_name text, phone text, address text, city text, state text, "
            "zip_code text, created_at timestamp, updated_at timestamp)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{schema}".customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
                _demo_rows(),
            )
    crm = f"{url}?schema={schema}"
    extracted, loaded, updated, quarantined, total = run_example(tmp_path, HEADRACE_CONN_CRM=crm)
    assert extracted == 300 and loaded + quarantined == 300 and total == loaded
    assert not (tmp_path / "demo_crm.db").exists()  # the PostgreSQL source was used
    # rerun with nothing new: only the lookback window is read again, merged idempotently
    extracted2, loaded2, updated2, quarantined2, total2 = run_example(
        tmp_path, HEADRACE_CONN_CRM=crm
    )
    assert extracted2 < 10 and updated2 == loaded2 and total2 == total
    with warehouse(tmp_path) as con:
        assert con.execute(
            "SELECT count(DISTINCT customer_id), count(*) FROM customers"
        ).fetchone() == (total, total)

    # the same pipeline into a PostgreSQL warehouse (its own schema of the test database)
    wh_schema = f"{schema}_wh"
    env = {"HEADRACE_CONN_CRM": crm, "HEADRACE_CONN_WAREHOUSE": f"{url}?schema={wh_schema}"}
    try:
        _, loaded_pg, _, quarantined_pg, total_pg = run_example(tmp_path / "pgwh", **env)
        assert (loaded_pg, quarantined_pg, total_pg) == (loaded, quarantined, loaded)
        with psycopg.connect(url) as conn:
            [(n,)] = conn.execute(f'SELECT count(*) FROM "{wh_schema}".customers').fetchall()
            [(ckpt,)] = conn.execute(
                f'SELECT count(*) FROM "{wh_schema}"._hr_checkpoints WHERE pipeline = %s',
                ("customer_etl",),
            ).fetchall()
        assert n == loaded and ckpt == 1
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{wh_schema}" CASCADE')


def test_scheduled_with_the_reference_dags_policies() -> None:
    from datetime import timedelta

    from headrace.engine import load_pipelines

    pipeline = load_pipelines(EXAMPLE)["customer_etl"]
    assert (pipeline.schedule, pipeline.catchup, pipeline.max_active_runs) == (
        "0 2 * * *",
        False,
        1,
    )
    transform = pipeline.tasks["customers"]  # the sync's one task
    assert transform.retries.attempts == 4  # 3 retries after the first try
    assert transform.retries.delay == timedelta(minutes=5)
    assert transform.retries.backoff == 2.0
    assert transform.retries.max_delay == timedelta(hours=1)
    assert transform.timeout == timedelta(hours=2)
    assert transform.sla == timedelta(hours=3)
