"""The second layer on its own: with the statement check switched off, the database still refuses.

DuckDB is opened read-only with external access off; PostgreSQL runs the statement
prepared, in a READ ONLY transaction, as ``pg_read_all_data`` when the session is a
superuser. Each attack below passes no parser here and must still fail.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from headrace.connectors.naming import ConnectionURL
from headrace.errors import ConnectorError
from headrace.mcp.sqlguard import UnsafeQueryError, check_read_only, run_read_only

DUCK_DB_LAYER = [
    "INSERT INTO t VALUES (2)",
    "DROP TABLE t",
    "COPY t TO '{out}'",
    "ATTACH '{other}' AS other",
    "SELECT * FROM read_csv('/etc/passwd')",
    "CREATE TABLE u AS SELECT 1",
    "SET enable_external_access = true",
]
PG_DB_LAYER = [
    "INSERT INTO {s}.t VALUES (2)",
    "DROP TABLE {s}.t",
    "SELECT pg_read_file('/etc/passwd')",
    "COPY {s}.t TO '/tmp/hr_mcp_pg_copy_{s}.csv'",
    "SELECT 1; DROP TABLE {s}.t",
    "COMMIT; DROP TABLE {s}.t",
    "SELECT set_config('transaction_read_only', 'off', true); DROP TABLE {s}.t",
    "SELECT pg_sleep(5)",
]


@pytest.fixture
def duck(tmp_path: Path) -> ConnectionURL:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    return ConnectionURL.parse(f"duckdb:///{path}")


@pytest.mark.parametrize("sql", DUCK_DB_LAYER)
def test_duckdb_connection_refuses_without_the_parser(
    duck: ConnectionURL, tmp_path: Path, sql: str
) -> None:
    out, other = tmp_path / "out.csv", tmp_path / "other.duckdb"
    with pytest.raises(ConnectorError):
        run_read_only(
            duck, sql.format(out=out, other=other), limit=10, timeout_seconds=5, check=False
        )
    assert not out.exists() and not other.exists()
    with duckdb.connect(duck.path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchall()[0][0] == 1
        assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["t"]


@pytest.mark.parametrize("sql", PG_DB_LAYER)
def test_postgres_transaction_refuses_without_the_parser(
    pg_schema: tuple[str, str], sql: str
) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".t AS SELECT 1 AS a')
    conn_url = ConnectionURL.parse(f"{url}?schema={schema}")
    with pytest.raises(ConnectorError) as caught:
        run_read_only(conn_url, sql.format(s=schema), limit=10, timeout_seconds=0.5, check=False)
    assert "root:" not in str(caught.value)
    assert not Path(f"/tmp/hr_mcp_pg_copy_{schema}.csv").exists()
    with psycopg.connect(url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".t').fetchall()[0][0] == 1


def test_duckdb_query_stopped_at_the_timeout(duck: ConnectionURL) -> None:
    with pytest.raises(ConnectorError, match="stopped after 0.3 s"):
        run_read_only(
            duck, "SELECT count(*) FROM range(100000000000) a", limit=1, timeout_seconds=0.3
        )


def test_postgres_query_stopped_at_the_timeout(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    with pytest.raises(ConnectorError, match="statement timeout"):
        run_read_only(
            ConnectionURL.parse(f"{url}?schema={schema}"),
            "SELECT count(*) FROM generate_series(1, 10000000000)",
            limit=1,
            timeout_seconds=0.3,
        )


def test_postgres_reads_through_both_layers(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".t AS SELECT g AS a FROM generate_series(1, 50) g')
    result = run_read_only(
        ConnectionURL.parse(f"{url}?schema={schema}"),
        "SELECT a FROM t WHERE a % 2 = 0 ORDER BY a",
        limit=5,
        timeout_seconds=5,
    )
    assert (
        result.columns == ["a"]
        and [r[0] for r in result.rows] == [2, 4, 6, 8, 10]
        and result.truncated
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "INSERT INTO t VALUES (1)",
        "WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM x",
        "SELECT * INTO u FROM t",
        "SELECT pg_read_file('x')",
        "SELECT * FROM read_parquet('x')",
        "EXPLAIN ANALYZE DELETE FROM t",
        "ATTACH 'x' AS y",
        "VACUUM",
        "CALL f()",
        "SELECT lo_import('/etc/passwd')",
        "COPY (SELECT 1) TO 'x'",
    ],
)
def test_statement_check_refuses(sql: str) -> None:
    for backend in ("duckdb", "postgresql"):
        with pytest.raises(UnsafeQueryError):
            check_read_only(sql, backend)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT 'DROP TABLE t; DELETE' AS not_sql",
        "SELECT count(*) FROM orders WHERE email LIKE '%@x.org'",
    ],
)
def test_statement_check_allows_reads(sql: str) -> None:
    for backend in ("duckdb", "postgresql"):
        check_read_only(sql, backend)
