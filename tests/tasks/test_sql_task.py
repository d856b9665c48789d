"""SQL tasks on named connections with bound parameters, against real databases."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from headrace.errors import DefinitionError, TransientError
from headrace.tasks import SqlTaskError, sql_task


def test_postgres_statement_binds_context_and_params(pg_schema, make_ctx):
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".events (day date, note text)')
    insert = sql_task(
        [
            f'INSERT INTO "{schema}".events VALUES (CAST(:ds AS date), :note)',
            f'SELECT day::text AS day, note FROM "{schema}".events WHERE day = CAST(:ds AS date)',
        ],
        conn="wh",
        task_id="insert_event",
    )
    hostile = "x'); DROP TABLE events; --"
    ctx, _ = make_ctx(params={"note": hostile}, connections={"wh": url})
    result = insert.fn(ctx)
    assert isinstance(result, pa.Table)
    assert result.to_pylist() == [{"day": "2024-01-02", "note": hostile}]


def test_mysql_dml_reports_rowcount(mysql_url, make_ctx):
    import pymysql

    db = mysql_url.rsplit("/", 1)[1]
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", database=db, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS staging_rows (day DATE)")
        cur.execute("DELETE FROM staging_rows")
        cur.execute(
            "INSERT INTO staging_rows VALUES ('2024-01-01'), ('2024-01-02'), ('2024-01-03')"
        )
    purge = sql_task("DELETE FROM staging_rows WHERE day < :ds", conn="src", task_id="purge")
    ctx, _ = make_ctx(connections={"src": mysql_url})
    assert purge.fn(ctx) == {"rowcount": 1}


def test_duckdb_and_sqlite_use_the_same_placeholders(tmp_path: Path, make_ctx):
    for url in (f"duckdb:///{tmp_path / 'wh.duckdb'}", f"sqlite:///{tmp_path / 'wh.db'}"):
        setup = sql_task(
            ["CREATE TABLE t (day TEXT, n INTEGER)", "INSERT INTO t VALUES (:ds, :n)"],
            conn="wh",
            task_id="setup",
            parameters=lambda ctx: {"n": len(ctx.run_id)},
        )
        read = sql_task("SELECT day, n FROM t WHERE day = :ds", conn="wh", task_id="read")
        ctx, _ = make_ctx(connections={"wh": url})
        setup.fn(ctx)
        assert read.fn(ctx).to_pylist() == [{"day": "2024-01-02", "n": 6}], url


def test_missing_bind_value_names_it(tmp_path: Path, make_ctx):
    task = sql_task("SELECT :dss", conn=f"sqlite:///{tmp_path / 'x.db'}", task_id="q")
    ctx, _ = make_ctx()
    with pytest.raises(DefinitionError, match=r":dss .*Did you mean 'ds'"):
        task.fn(ctx)


def test_sql_error_names_task_and_masks_password(make_ctx):
    bad = sql_task("SELECT 1", conn="pg", task_id="q")
    ctx, _ = make_ctx(connections={"pg": "postgresql://etl:hunter2@127.0.0.1:1/nowhere"})
    with pytest.raises(SqlTaskError, match=r"SQL task 'q' on 'pg'") as info:
        bad.fn(ctx)
    assert isinstance(info.value, TransientError)  # connection refused: a retry can help
    assert "hunter2" not in str(info.value)
    assert info.value.connection == "'pg' (postgresql://etl:***@127.0.0.1:1/nowhere)"
    broken = sql_task(
        "SELEC 1", conn=f"sqlite:///{ctx.settings.home.parent / 'y.db'}", task_id="typo"
    )
    with pytest.raises(SqlTaskError, match="typo") as info2:
        broken.fn(ctx)
    assert not isinstance(info2.value, TransientError)
