"""dbt-style SQL test files against DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from headrace.quality import ExpectationDefinitionError, ExpectationsFailed, run_sql_tests


def _write_tests(folder: Path, table: str) -> Path:
    folder.mkdir()
    (folder / "no_null_ids.sql").write_text(f"SELECT * FROM {table} WHERE id IS NULL;\n")
    (folder / "positive_amounts.sql").write_text(
        f"-- reason: refunds are recorded as separate rows\nSELECT id, amount FROM {table}\nWHERE amount < 0\n"
    )
    (folder / "percent_names.sql").write_text(
        f"-- severity: warn\n-- name: no_percent_in_names\nSELECT * FROM {table} WHERE name LIKE '%\\%%' ESCAPE '\\'"
    )
    return folder


def _check(report, expected_sample: list[dict]) -> None:
    by_name = {r.name: r for r in report.results}
    # files run in name order; "-- name:" renames percent_names.sql
    assert list(by_name) == ["no_null_ids", "no_percent_in_names", "positive_amounts"]
    assert by_name["no_null_ids"].status.value == "passed" and by_name["no_null_ids"].failed == 0
    amounts = by_name["positive_amounts"]
    assert (amounts.status.value, amounts.failed, amounts.severity.value) == ("failed", 2, "fail")
    assert amounts.reason == "refunds are recorded as separate rows"
    assert amounts.sample == expected_sample
    percent = by_name["no_percent_in_names"]
    assert (percent.status.value, percent.failed, percent.severity.value) == ("failed", 1, "warn")
    with pytest.raises(ExpectationsFailed) as info:
        report.raise_for_failures()
    assert "positive_amounts" in str(info.value) and "no_percent_in_names" not in str(info.value)
    records = report.records("run-9")
    assert {r.expectation for r in records} == set(by_name)
    assert all(r.task_id == "sql_tests" for r in records)


def test_sql_tests_on_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE payments (id INT, name VARCHAR, amount DOUBLE)")
        con.execute("INSERT INTO payments VALUES (1, 'ok', 5), (2, '50% off', -1), (3, 'x', -2.5)")
    folder = _write_tests(tmp_path / "sql", "payments")
    report = run_sql_tests(f"duckdb:///{path}", folder, pipeline="billing")
    _check(report, [{"id": 2, "amount": -1.0}, {"id": 3, "amount": -2.5}])


def test_sql_tests_on_postgres(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".payments (id int, name text, amount numeric(10, 2))')
        conn.execute(
            f"INSERT INTO \"{schema}\".payments VALUES (1, 'ok', 5), (2, '50% off', -1), (3, 'x', -2.5)"
        )
    folder = _write_tests(tmp_path / "sql", f'"{schema}".payments')
    report = run_sql_tests(url, sorted(folder.glob("*.sql")))
    _check(report, [{"id": 2, "amount": "-1.00"}, {"id": 3, "amount": "-2.50"}])


def test_broken_test_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "broken.sql").write_text("-- severity: warn\n\nSELEC * FROM nowhere\n")
    with pytest.raises(
        ExpectationDefinitionError, match=r"broken\.sql:3: SQL test 'broken' could not run"
    ):
        run_sql_tests("duckdb:///:memory:", folder)
    (folder / "broken.sql").write_text("-- severity: loud\nSELECT 1\n")
    with pytest.raises(ExpectationDefinitionError, match="unknown severity 'loud'"):
        run_sql_tests("duckdb:///:memory:", folder)
    (folder / "broken.sql").write_text("SELECT 1; SELECT 2")
    with pytest.raises(ExpectationDefinitionError, match="one query"):
        run_sql_tests("duckdb:///:memory:", folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExpectationDefinitionError, match="no .sql files"):
        run_sql_tests("duckdb:///:memory:", empty)
    with pytest.raises(ExpectationDefinitionError, match="does not exist"):
        run_sql_tests("duckdb:///:memory:", tmp_path / "missing.sql")
