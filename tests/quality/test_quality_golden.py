"""Golden tests: every case in tests/quality/golden runs in memory (apply_checks: DuckDB over the Arrow table) and in
DuckDB and PostgreSQL (check_table), and must give the same, expected, results."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
from quality_golden import Case, load_cases

from headrace.quality import EXPECTATION_COLUMN, REASON_COLUMN, apply_checks, check_table

CASES = load_cases()


def _params(engine: str) -> list:
    return [pytest.param(c, id=c.id) for c in CASES if engine in c.engines]


def _assert_expected(case: Case, results: dict, engine: str) -> None:
    assert set(results) == set(case.expected), f"{case.id} on {engine}"
    for name, want in case.expected.items():
        got = results[name]
        if "failed" in want:
            assert got.failed == want["failed"], (
                f"{case.id} on {engine}: {name} failed {got.failed}"
            )
            assert got.total == case.table.num_rows
        status = want.get("status", "failed" if want.get("failed") else "passed")
        assert got.status.value == status, (
            f"{case.id} on {engine}: {name} is {got.status} ({got.reason})"
        )
        if "observed" in want:
            observed = float(got.observed) if isinstance(want["observed"], float) else got.observed
            assert math.isclose(observed, want["observed"]), (
                f"{case.id} on {engine}: {name} saw {got.observed}"
            )


@pytest.mark.parametrize("case", _params("memory"))
def test_golden_in_memory(case: Case) -> None:
    outcome = apply_checks(
        case.table, case.checks(in_database=False), pipeline="golden", task=case.name
    )
    _assert_expected(case, {r.name: r for r in outcome.results}, "memory")
    quarantined = outcome.quarantined
    assert (
        outcome.passed.num_rows + (quarantined.num_rows if quarantined else 0)
        == case.table.num_rows
    )
    if case.quarantined_rows is not None:
        assert quarantined is not None
        keep = [i for i in range(case.table.num_rows) if i not in case.quarantined_rows]
        assert outcome.passed.equals(case.table.take(keep))
        assert quarantined.drop_columns([EXPECTATION_COLUMN, REASON_COLUMN]).equals(
            case.table.take(case.quarantined_rows)
        )
    else:
        assert quarantined is None
        assert outcome.passed is case.table  # nothing set aside: no copy
    for result in outcome.results:  # samples are the first failing rows, at most 5
        if result.kind not in ("row_count_between", "stat_between", "freshness", "schema_is"):
            assert len(result.sample) == min(result.failed, 5)


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def _load_duckdb(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register("_golden_input", table)
    con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _golden_input')
    con.unregister("_golden_input")


@pytest.mark.parametrize("case", _params("duckdb"))
def test_golden_in_duckdb(case: Case, duck: duckdb.DuckDBPyConnection) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    _load_duckdb(duck, table, case.table)
    if case.reference is not None:
        _load_duckdb(duck, case.reference_name, case.reference)
    report = check_table(duck, table, case.checks(in_database=True))
    _assert_expected(case, {r.name: r for r in report.results}, "duckdb")
    # In a database, a failing row-level expectation samples rows from the table.
    for result in report.results:
        if result.kind not in ("row_count_between", "stat_between", "freshness", "schema_is"):
            assert len(result.sample) == min(result.failed, 5)


@pytest.fixture(scope="module")
def pg_golden(pg_url: str) -> Iterator[tuple[str, str]]:
    """One schema for all golden cases on PostgreSQL (module scope keeps the suite fast)."""
    import psycopg

    schema = f"golden_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_url, schema
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _load_postgres(url: str, schema: str, name: str, table: pa.Table) -> None:
    # through headrace's destination: ADBC's own ingest has corrupted decimals
    from headrace.connectors import PostgresDestination

    PostgresDestination(url, schema=schema).write(table, name, mode="replace")


@pytest.mark.parametrize("case", _params("postgresql"))
def test_golden_in_postgres(case: Case, pg_golden: tuple[str, str]) -> None:
    url, schema = pg_golden
    table = f"t_{uuid.uuid4().hex[:8]}"
    _load_postgres(url, schema, table, case.table)
    if case.reference is not None:
        _load_postgres(url, schema, case.reference_name, case.reference)
        case = _qualified_reference(case, schema)
    report = check_table(url, f"{schema}.{table}", case.checks(in_database=True))
    _assert_expected(case, {r.name: r for r in report.results}, "postgresql")


def _qualified_reference(case: Case, schema: str) -> Case:
    from dataclasses import replace

    return replace(case, reference_name=f"{schema}.{case.reference_name}")
