"""Fixtures for the connector tests: seeded source tables and destinations on real servers."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from connector_helpers import HOSTILE_COLUMN, HOSTILE_TABLE, customer_rows

from headrace.connectors import DuckDBDestination, PostgresDestination


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def sql_source_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, object]]:
    """(backend, url, insert(rows)) with a seeded ``customers`` table and a hostile-named one."""
    backend = request.param
    rows = customer_rows()
    if backend == "postgresql":
        url, schema = request.getfixturevalue("pg_schema")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(
                "CREATE TABLE customers (id bigint primary key, name text, updated_at timestamp, note text)"
            )
            conn.execute(
                f'CREATE TABLE "{HOSTILE_TABLE.replace(chr(34), chr(34) * 2)}" '
                f'(id bigint, "{HOSTILE_COLUMN.replace(chr(34), chr(34) * 2)}" text)'
            )

            def insert(rs: list[tuple]) -> None:
                with psycopg.connect(url, autocommit=True) as c:
                    c.cursor().executemany(
                        f'INSERT INTO "{schema}".customers VALUES (%s, %s, %s, %s) '
                        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                        rs,
                    )

            insert(rows)
            with conn.cursor() as cur:
                cur.execute(
                    f'INSERT INTO "{HOSTILE_TABLE.replace(chr(34), chr(34) * 2)}" VALUES (1, %s)',
                    ("v'1",),
                )
        yield backend, f"{url}?schema={schema}", insert
    elif backend == "mysql":
        base = request.getfixturevalue("mysql_url")
        dbname = base.rsplit("/", 1)[1]
        tbl = f"c_{uuid.uuid4().hex[:8]}"
        conn = pymysql.connect(host="127.0.0.1", user="root", database=dbname, autocommit=True)

        def insert(rs: list[tuple]) -> None:
            with conn.cursor() as cur:
                cur.executemany(f"REPLACE INTO `{tbl}` VALUES (%s, %s, %s, %s)", rs)

        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE `{tbl}` (id bigint primary key, name text, updated_at datetime(6), note text)"
            )
            hostile = HOSTILE_TABLE.replace("`", "``") + tbl
            cur.execute(
                f"CREATE TABLE `{hostile}` (id bigint, `{HOSTILE_COLUMN.replace('`', '``')}` text)"
            )
            cur.execute(f"INSERT INTO `{hostile}` VALUES (1, %s)", ("v'1",))
        insert(rows)
        yield backend, base + f"?table={tbl}", insert
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE `{tbl}`")
            cur.execute(f"DROP TABLE `{hostile}`")
        conn.close()
    else:
        path = tmp_path / "src.db"
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TABLE customers (id integer primary key, name text, updated_at text, note text)"
        )
        conn.execute(
            f'CREATE TABLE "{HOSTILE_TABLE.replace(chr(34), chr(34) * 2)}" '
            f'(id integer, "{HOSTILE_COLUMN.replace(chr(34), chr(34) * 2)}" text)'
        )
        conn.execute(
            f'INSERT INTO "{HOSTILE_TABLE.replace(chr(34), chr(34) * 2)}" VALUES (1, ?)', ("v'1",)
        )
        conn.commit()

        def insert(rs: list[tuple]) -> None:
            c = sqlite3.connect(path)
            c.executemany(
                "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
                [(i, n, u.isoformat(sep=" "), note) for i, n, u, note in rs],
            )
            c.commit()
            c.close()

        insert(rows)
        conn.close()
        yield backend, f"sqlite:///{path}", insert


@pytest.fixture(params=["duckdb", "postgresql"])
def destination(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[DuckDBDestination | PostgresDestination]:
    """Each destination backend, empty, for one test."""
    if request.param == "duckdb":
        yield DuckDBDestination(tmp_path / "warehouse.duckdb")
    else:
        url, schema = request.getfixturevalue("pg_schema")
        yield PostgresDestination(url, schema=schema)
