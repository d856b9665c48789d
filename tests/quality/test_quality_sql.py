"""check_table against real DuckDB files and PostgreSQL schemas."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest

from headrace.quality import (
    ExpectationDefinitionError,
    ExpectationsFailed,
    accepted_values,
    between,
    check_table,
    freshness,
    matches_regex,
    not_null,
    relationships,
    row_count_between,
    sql_expression,
    unique,
)


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE customers (customer_id BIGINT, email VARCHAR, created_at TIMESTAMPTZ)"
    )
    con.execute(
        "INSERT INTO customers VALUES (1, 'a@x.io', '2021-01-01 00:00:00+00'), "
        "(2, 'bad', '2019-06-01 00:00:00+00'), (2, 'b@x.io', '2022-01-01 00:00:00+00'), "
        "(NULL, 'c@x.io', NULL)"
    )
    con.execute("CREATE TABLE orders (order_id BIGINT, customer_id BIGINT)")
    con.execute("INSERT INTO orders VALUES (10, 1), (11, 2), (12, 99), (13, NULL)")
    con.close()
    return f"duckdb:///{path}"


def test_duckdb_url_counts_severities_and_message(warehouse: str) -> None:
    report = check_table(
        warehouse,
        "customers",
        [
            not_null("customer_id"),
            unique("customer_id", severity="warn"),
            matches_regex("email", r"^[^\s@]+@[^\s@]+\.[^\s@]+$", severity="quarantine"),
            between("created_at", min=dt.date(2020, 1, 1)),
            row_count_between(1, 10),
        ],
        pipeline="crm",
    )
    failed = {r.name: r.failed for r in report.results}
    assert failed == {
        "not_null(customer_id)": 1,
        "unique(customer_id)": 2,
        "matches_regex(email)": 1,
        "between(created_at)": 1,
        "row_count_between": 0,
    }
    assert report.result("matches_regex(email)").sample == [
        {"customer_id": 2, "email": "bad", "created_at": "2019-06-01T00:00:00+00:00"}
    ]
    with pytest.raises(ExpectationsFailed) as info:
        report.raise_for_failures()
    message = str(info.value)
    assert "pipeline 'crm', task 'customers'" in message
    assert "not_null(customer_id)" in message and "between(created_at)" in message
    assert "unique(customer_id)" not in message and "matches_regex" not in message


def test_duckdb_relationships_to_table_and_arrow(warehouse: str) -> None:
    con = duckdb.connect(warehouse.removeprefix("duckdb:///"))
    try:
        keys = pa.table({"customer_id": [1, 2]})
        report = check_table(
            con,
            "orders",
            [
                relationships("customer_id", "customers", name="fk_table"),
                relationships("customer_id", keys, name="fk_arrow"),
                sql_expression("order_id BETWEEN 10 AND 12", severity="warn", name="id_range"),
            ],
        )
        assert {r.name: r.failed for r in report.results} == {
            "fk_table": 1,
            "fk_arrow": 1,
            "id_range": 1,
        }
        assert report.result("fk_table").sample == [{"order_id": 12, "customer_id": 99}]
        con.execute("SELECT 1")  # a connection passed in stays open
    finally:
        con.close()


def test_unknown_table_and_column_suggest_names(warehouse: str) -> None:
    with pytest.raises(ExpectationDefinitionError, match="Did you mean 'customers'"):
        check_table(warehouse, "custmers", [not_null("email")])
    with pytest.raises(ExpectationDefinitionError, match="Did you mean 'email'"):
        check_table(warehouse, "customers", [not_null("emails")])
    with pytest.raises(ExpectationDefinitionError, match="duckdb:/// or postgresql://"):
        check_table("mysql://root@localhost/db", "customers", [not_null("email")])


def test_postgres_schema_table(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".customers (customer_id int8 PRIMARY KEY, email text, '
            f"status text, updated_at timestamptz, amount float8)"
        )
        conn.execute(
            f'INSERT INTO "{schema}".customers VALUES '
            "(1, 'a@x.io', 'active', now() - interval '1 hour', 5), "
            "(2, '100%', 'gone', now() - interval '3 days', 'NaN'), "
            "(3, NULL, NULL, NULL, -1)"
        )
        conn.execute(f'CREATE TABLE "{schema}".orders (order_id int8, customer_id int8)')
        conn.execute(f'INSERT INTO "{schema}".orders VALUES (1, 1), (2, 3), (3, 7)')
    report = check_table(
        url,
        f"{schema}.customers",
        [
            matches_regex("email", "@"),
            accepted_values("status", ["active", "inactive"], severity="warn"),
            sql_expression("email <> '100%'", name="no_percent"),  # % must reach PostgreSQL intact
            between("amount", min=0),
            not_null("amount"),
            freshness("updated_at", "2h"),
        ],
    )
    assert {r.name: (r.status.value, r.failed) for r in report.results} == {
        "matches_regex(email)": ("failed", 1),
        "accepted_values(status)": ("failed", 1),
        "no_percent": ("failed", 1),
        "between(amount)": ("failed", 1),
        "not_null(amount)": ("failed", 1),
        "freshness(updated_at)": ("passed", 0),
    }
    orders = check_table(
        url,
        f"{schema}.orders",
        [relationships("customer_id", f"{schema}.customers", "customer_id")],
    )
    assert orders.results[0].failed == 1
    assert orders.results[0].sample == [{"order_id": 3, "customer_id": 7}]


def test_postgres_text_bounds_ignore_the_column_collation(pg_schema: tuple[str, str]) -> None:
    """Under a linguistic collation 'a1' sorts between 'A' and 'Z'; checks use code points."""
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".codes (code text COLLATE "und-x-icu")')
        conn.execute(f"INSERT INTO \"{schema}\".codes VALUES ('A1'), ('B2'), ('Z9'), ('a1')")
        linguistic = conn.execute(
            f"SELECT count(*) FROM \"{schema}\".codes WHERE code BETWEEN 'A' AND 'Z'"
        ).fetchone()
    assert linguistic == (3,)  # the database itself would let 'a1' through
    report = check_table(url, f"{schema}.codes", [between("code", "A", "Z")])
    assert report.results[0].failed == 2  # 'Z9' and 'a1', as in memory and in DuckDB
