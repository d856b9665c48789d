"""Rows a source sets aside reach the sync's quarantine in the same load, counted.

A malformed CSV line (an unterminated quote) and a PostgreSQL timestamp of 'infinity'
(no faithful value, quarantined by the default value policy) are neither loaded nor
lost: each lands in ``<table>_quarantine`` with its reason, and the task's figures add
up (rows in = loaded + quarantined), on the streamed path and on the in-memory one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace import cursor, destination, file_source, full, pipeline, sql_source, sync
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.engine import Runner
from headrace.quality import between, matches_regex
from headrace.state import open_store


def _settings(tmp_path: Path, **conns: str) -> Settings:
    env = {"HEADRACE_HOME": str(tmp_path / ".headrace"),
           "HEADRACE_CONN_WAREHOUSE": f"duckdb:///{tmp_path / 'wh.duckdb'}"}  # fmt: skip
    env.update({f"HEADRACE_CONN_{k.upper()}": v for k, v in conns.items()})
    settings = Settings.from_env(tmp_path, environ=env)
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings


def _run(settings: Settings, p: object) -> dict:
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(p)  # type: ignore[arg-type]
    assert result.state == "success", [t.error for t in result.tasks]
    return result.result_of("orders")


def _quarantine(settings: Settings) -> list[str]:
    dest = open_destination("warehouse", settings)
    reasons = dest.query('SELECT "_hr_reason" FROM "orders_quarantine"')
    return [str(r) for r in reasons.column("_hr_reason").to_pylist()]


@pytest.mark.parametrize("transform", [None, "select * from rows"], ids=["streamed", "in_memory"])
def test_malformed_csv_line_is_quarantined_by_the_sync(
    tmp_path: Path, transform: str | None
) -> None:
    landing = tmp_path / "orders.csv"
    lines = ["id,name,amount"] + [f"{i},n{i},{i}.5" for i in range(1, 11)]
    lines[5] = '5,"abc,5.5'  # an unterminated quote: its own record only
    landing.write_text("\n".join(lines) + "\n")
    settings = _settings(tmp_path)
    orders = sync(
        "orders", source=file_source(str(landing)), incremental=full(), transform=transform,
        destination=destination("warehouse", table="orders", mode="replace"),
    )  # fmt: skip

    @pipeline
    def p() -> None:
        orders()

    stats = _run(settings, p)
    dest = open_destination("warehouse", settings)
    ids = dest.query('SELECT id FROM "orders" ORDER BY id').column("id").to_pylist()
    assert ids == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    reasons = _quarantine(settings)
    assert len(reasons) == 1 and "unterminated quote" in reasons[0]
    assert stats["extracted"] == 10
    assert stats["loaded"] + stats["quarantined"] == 10


@pytest.mark.parametrize("kind", ["duckdb", "postgresql", "files", "delta", "iceberg"])
def test_data_columns_named_like_a_malformed_lines_fields_do_not_clash(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A malformed line's file, line and text are ``_hr_`` columns of the quarantine: a
    data column ``line`` of text (a product line) beside line numbers would make the
    quarantine refuse one or the other, and the load with it."""
    warehouse = {
        "duckdb": f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "files": f"files:///{tmp_path / 'out'}?format=parquet",
        "delta": f"delta:///{tmp_path / 'lake'}",
        "iceberg": f"iceberg+sqlite:///{tmp_path / 'catalog.db'}?warehouse={tmp_path / 'ice'}",
    }.get(kind)
    if warehouse is None:
        url, schema = request.getfixturevalue("pg_schema")
        warehouse = f"{url}?schema={schema}"
    settings = _settings(tmp_path, warehouse=warehouse)
    landing = tmp_path / "orders.csv"
    orders = sync(
        "orders", source=file_source(str(landing)), incremental=full(),
        checks=[between("amount", min=0, severity="quarantine", reason="negative")],
        destination=destination("warehouse", table="orders", mode="append"),
    ).pipeline(name="orders")  # fmt: skip
    loads = [
        "id,line,amount,file,text\n1,toys,5,a,x\n2,toys,-1,b,y\n",  # a check reject only
        'id,line,amount,file,text\n3,toys,5,c,z\n4,"toys,5,d,w\n',  # a malformed line only
        'id,line,amount,file,text\n5,games,-2,e,v\n6,"games,5,f,u\n7,games,7,g,t\n',  # both
    ]
    quarantined = 0
    for body in loads:
        landing.write_text(body)
        stats = _run(settings, orders)
        assert stats["loaded"] + stats["quarantined"] == stats["extracted"]
        quarantined += stats["quarantined"]
    dest = open_destination("warehouse", settings)
    q = dest.q("orders_quarantine")
    held = dest.query(f'SELECT id, line, "_hr_line", "_hr_reason" FROM {q}').to_pylist()
    assert quarantined == len(held) == 4
    checked = sorted((r["id"], r["line"]) for r in held if r["_hr_reason"] == "negative")
    assert checked == [(2, "toys"), (5, "games")]
    lines = sorted(r["_hr_line"] for r in held if r["_hr_line"] is not None)
    assert lines == [3, 3]  # the unterminated quote of the second and third file
    ids = dest.query(f"SELECT id FROM {dest.q('orders')}").column("id").to_pylist()
    assert sorted(ids) == [1, 3, 7]


@pytest.mark.parametrize("transform", [None, "select * from rows"], ids=["streamed", "in_memory"])
def test_infinity_timestamp_is_quarantined_by_the_sync(
    tmp_path: Path, pg_schema: tuple[str, str], transform: str | None
) -> None:
    import psycopg

    pg_url, schema = pg_schema

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".orders (id int, at timestamp)')
        conn.execute(
            f"INSERT INTO \"{schema}\".orders VALUES (1, now()), (2, 'infinity'), (3, now())"
        )
    settings = _settings(tmp_path, crm=pg_url)
    checks = [matches_regex("id", r"^\d+$", severity="quarantine")] if transform else []
    orders = sync(
        "orders", source=sql_source("crm", table="orders", schema=schema), incremental=full(),
        transform=transform, checks=checks,
        destination=destination("warehouse", table="orders", mode="replace"),
    )  # fmt: skip

    @pipeline
    def p() -> None:
        orders()

    stats = _run(settings, p)
    dest = open_destination("warehouse", settings)
    assert dest.query('SELECT id FROM "orders" ORDER BY id').column("id").to_pylist() == [1, 3]
    reasons = _quarantine(settings)
    assert len(reasons) == 1 and "infinity" in reasons[0]
    assert stats["extracted"] == 3
    assert stats["loaded"] + stats["quarantined"] == 3


@pytest.mark.parametrize("kind", ["duckdb", "postgresql", "files", "iceberg"])
def test_rows_set_aside_before_a_transform_that_retypes_columns_are_quarantined(
    tmp_path: Path, pg_schema: tuple[str, str], kind: str
) -> None:
    """A source sets rows aside before the transform: in the quarantine they take the
    transformed types (amount int -> text), beside the checks' rejects, load after load;
    a value with no form in the new type keeps its text in ``_hr_source_<column>``."""
    import psycopg

    pg_url, schema = pg_schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".raw_orders (id int, ordered_at timestamp, amount int, code text)'
        )
        conn.execute(
            f"INSERT INTO \"{schema}\".raw_orders VALUES (1, '2024-01-01', 5, '7'), "
            "(2, 'infinity', 6, 'A1'), (3, '2024-01-01', 2, '3')"
        )
    warehouse = {
        "duckdb": f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "postgresql": f"{pg_url}?schema={schema}",
        "files": f"files:///{tmp_path / 'out'}?format=parquet",
        "iceberg": f"iceberg+sqlite:///{tmp_path / 'catalog.db'}?warehouse={tmp_path / 'ice'}",
    }[kind]
    settings = _settings(tmp_path, warehouse=warehouse, crm=pg_url)
    orders = sync(
        "orders", source=sql_source("crm", table="raw_orders", schema=schema),
        incremental=cursor("id"),
        transform="SELECT id, ordered_at, concat('EUR ', amount) AS amount, "
                  "CAST(code AS INTEGER) AS code FROM rows",
        checks=[matches_regex("amount", r"^EUR \d$", severity="quarantine", reason="too much")],
        destination=destination("warehouse", table="orders", mode="append"),
    ).pipeline(name="orders")  # fmt: skip
    first = _run(settings, orders)  # only the 'infinity' row is quarantined
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO \"{schema}\".raw_orders VALUES (4, '2024-01-02', 99, '9'), "
            "(5, '-infinity', 8, '8'), (6, '2024-01-03', 1, '1')"
        )
    second = _run(settings, orders)  # a check reject and a row set aside, in one load
    for stats in (first, second):
        assert stats["loaded"] + stats["quarantined"] == stats["extracted"]
    assert (first["quarantined"], second["quarantined"]) == (1, 2)
    dest = open_destination("warehouse", settings)
    ids = dest.query(f"SELECT id FROM {dest.q('orders')}").column("id").to_pylist()
    assert sorted(ids) == [1, 3, 6]
    held = dest.query(
        f'SELECT id, amount, code, "_hr_source_code", "_hr_reason" '
        f"FROM {dest.q('orders_quarantine')} ORDER BY id"
    ).to_pylist()
    assert [(r["id"], r["amount"], r["code"], r["_hr_source_code"]) for r in held] == [
        (2, "6", None, "A1"), (4, "EUR 99", 9, None), (5, "8", 8, None),
    ]  # fmt: skip
    assert "infinity" in held[0]["_hr_reason"] and held[1]["_hr_reason"] == "too much"


@pytest.mark.parametrize("transform", [None, "select * from rows"], ids=["streamed", "in_memory"])
def test_a_row_set_aside_is_quarantined_once_not_again_by_each_increment(
    tmp_path: Path, pg_schema: tuple[str, str], transform: str | None
) -> None:
    """The cursor moves past a row the source set aside (it is handled: quarantined), so
    the next increments neither read nor quarantine it again."""
    import psycopg

    pg_url, schema = pg_schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".raw_orders (id int, ordered_at timestamp)')
        conn.execute(f"INSERT INTO \"{schema}\".raw_orders VALUES (1, now()), (2, 'infinity')")
    settings = _settings(tmp_path, crm=pg_url)
    orders = sync(
        "orders", source=sql_source("crm", table="raw_orders", schema=schema),
        incremental=cursor("id"), transform=transform,
        destination=destination("warehouse", table="orders", mode="append"),
    ).pipeline(name="orders")  # fmt: skip
    runs = [_run(settings, orders) for _ in range(3)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".raw_orders VALUES (3, now())')
    runs.append(_run(settings, orders))
    assert [(r["extracted"], r["loaded"], r["quarantined"]) for r in runs] == [
        (2, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 0),
    ]  # fmt: skip
    dest = open_destination("warehouse", settings)
    assert dest.query('SELECT id FROM "orders_quarantine"').column("id").to_pylist() == [2]
    assert sorted(dest.query('SELECT id FROM "orders"').column("id").to_pylist()) == [1, 3]
