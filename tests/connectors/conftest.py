"""Fixtures for the connector tests: seeded source tables and destinations on real servers."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from connector_helpers import HOSTILE_COLUMN, HOSTILE_TABLE, customer_rows

from headrace.connectors import DuckDBDestination, PostgresDestination

Insert = Callable[[list[tuple]], None]


def dq(name: str) -> str:
    """Double-quoted identifier, written out here rather than with the code under test."""
    return '"' + name.replace('"', '""') + '"'


def bq(name: str) -> str:
    """Backquoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _postgres(url: str, schema: str) -> tuple[str, Insert]:
    def insert(rows: list[tuple]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.cursor().executemany(
                f"INSERT INTO {dq(schema)}.customers VALUES (%s, %s, %s, %s) ON CONFLICT (id) "
                "DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                rows,
            )

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {dq(schema)}.customers "
            "(id bigint PRIMARY KEY, name text, updated_at timestamp, note text)"
        )
        conn.execute(
            f"CREATE TABLE {dq(schema)}.{dq(HOSTILE_TABLE)} (id bigint, {dq(HOSTILE_COLUMN)} text)"
        )
        conn.execute(f"INSERT INTO {dq(schema)}.{dq(HOSTILE_TABLE)} VALUES (1, %s)", ("v'1",))
    insert(customer_rows())
    return f"{url}?schema={schema}", insert


def _sqlite(path: Path) -> tuple[str, Insert]:
    def insert(rows: list[tuple]) -> None:
        conn = sqlite3.connect(path)
        conn.executemany(
            "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
            [(i, name, at.isoformat(sep=" "), note) for i, name, at, note in rows],
        )
        conn.commit()
        conn.close()

    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE customers (id integer PRIMARY KEY, name text, updated_at text, note text)"
    )
    conn.execute(f"CREATE TABLE {dq(HOSTILE_TABLE)} (id integer, {dq(HOSTILE_COLUMN)} text)")
    conn.execute(f"INSERT INTO {dq(HOSTILE_TABLE)} VALUES (1, ?)", ("v'1",))
    conn.commit()
    conn.close()
    insert(customer_rows())
    return f"sqlite:///{path}", insert


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def sql_source_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, Insert]]:
    """(backend, url, insert(rows)) with a seeded ``customers`` table and a hostile-named one.

    MySQL tables of one test session share a database, so there they carry a unique
    suffix and the URL says which (``?table=``; see ``connector_helpers.source_for``).
    """
    backend = request.param
    if backend == "postgresql":
        url, insert = _postgres(*request.getfixturevalue("pg_schema"))
        yield backend, url, insert
    elif backend == "sqlite":
        url, insert = _sqlite(tmp_path / "src.db")
        yield backend, url, insert
    else:
        base = request.getfixturevalue("mysql_url")
        table = f"c_{uuid.uuid4().hex[:8]}"
        hostile = HOSTILE_TABLE + table
        conn = pymysql.connect(
            host="127.0.0.1", user="root", database=base.rsplit("/", 1)[1], autocommit=True
        )

        def insert(rows: list[tuple]) -> None:
            with conn.cursor() as cur:
                cur.executemany(f"REPLACE INTO {bq(table)} VALUES (%s, %s, %s, %s)", rows)

        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {bq(table)} (id bigint PRIMARY KEY, name text, updated_at datetime(6), note text)"
            )
            cur.execute(f"CREATE TABLE {bq(hostile)} (id bigint, {bq(HOSTILE_COLUMN)} text)")
            cur.execute(f"INSERT INTO {bq(hostile)} VALUES (1, %s)", ("v'1",))
        insert(customer_rows())
        try:
            yield backend, f"{base}?table={table}", insert
        finally:
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {bq(table)}")
                cur.execute(f"DROP TABLE IF EXISTS {bq(hostile)}")
            conn.close()


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
