"""Set-aside rows of a sync reach the quarantine of a partitioned destination.

A file destination partitioned by a column (``partition_by=state``) writes its table in
Hive folders; the rows a source sets aside (a malformed CSV line: its file, line, reason
and text; a PostgreSQL 'infinity' timestamp, set aside before a transform adds the
partition column) lack that column. They are still quarantined, never fail the load:
``<table>_quarantine`` is written unpartitioned, one table whatever columns its rows
have. Rows in = loaded + quarantined, a rerun is exactly-once, and the quarantine reads
through the web page's code path (``read_quarantined``), and as plain Parquet files.
Delta Lake, Iceberg, DuckDB and PostgreSQL run the same syncs (none of them partitions
its quarantine table by a data column).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from headrace import cursor, destination, file_source, full, sql_source, sync
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.connectors.destinations.lake_metadata import KEY_FENCE, KEY_ORIGIN, checkpoint_key
from headrace.engine import Runner
from headrace.quality import between
from headrace.state import open_store
from headrace.web.quarantine import read_quarantined


def _warehouse(kind: str, tmp_path: Path, partition_by: str, pg: str | None = None) -> str:
    if kind == "files":
        return f"files:///{tmp_path / 'out'}?format=parquet&partition_by={partition_by}"
    if kind == "files_csv":
        return f"files:///{tmp_path / 'out'}?format=csv&partition_by={partition_by}"
    if kind == "delta":
        return f"delta:///{tmp_path / 'lake'}"
    if kind == "iceberg":
        return f"iceberg+sqlite:///{tmp_path / 'catalog.db'}?warehouse={tmp_path / 'ice'}"
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'wh.duckdb'}"
    assert pg is not None
    return pg


def _settings(tmp_path: Path, warehouse: str, **conns: str) -> Settings:
    env = {"HEADRACE_HOME": str(tmp_path / ".headrace"), "HEADRACE_CONN_WAREHOUSE": warehouse}
    env.update({f"HEADRACE_CONN_{k.upper()}": v for k, v in conns.items()})
    settings = Settings.from_env(tmp_path, environ=env)
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings


def _run(settings: Settings, p: Any, task: str = "orders") -> dict[str, Any]:
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(p)
    assert result.state == "success", [t.error for t in result.tasks]
    stats: dict[str, Any] = result.result_of(task)
    return stats


def _ids(settings: Settings, table: str) -> list[int]:
    dest = open_destination("warehouse", settings)
    return sorted(dest.query(f"SELECT id FROM {dest.q(table)}").column("id").to_pylist())


def _page(settings: Settings, stats: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """The load's quarantined rows as the web quarantine page reads them."""
    page = read_quarantined(
        settings, "orders", stats["destination"], stats["load_id"], limit=50, offset=0
    )
    assert page.error is None, page.error
    return page.total, [dict(zip(page.columns, row, strict=True)) for row in page.rows]


def _quarantined(settings: Settings) -> int:
    dest = open_destination("warehouse", settings)
    return int(
        dest.query(f"SELECT count(*) AS n FROM {dest.q('orders_quarantine')}")["n"][0].as_py()
    )


@pytest.mark.parametrize("kind", ["files", "files_csv", "delta", "iceberg", "duckdb"])
def test_malformed_csv_lines_are_quarantined_beside_a_partitioned_table(
    tmp_path: Path, kind: str
) -> None:
    landing = tmp_path / "orders.csv"
    lines = ["id,state,amount"] + [f"{i},{'CA' if i % 2 else 'NY'},{i}.5" for i in range(1, 9)]
    lines[3] = '3,"CA,3.5'  # an unterminated quote: the line is set aside, without `state`
    lines[6] = "6,NY"  # a missing field: set aside too
    landing.write_text("\n".join(lines) + "\n")
    settings = _settings(tmp_path, _warehouse(kind, tmp_path, "state"))
    orders = sync(
        "orders", source=file_source(str(landing)), incremental=full(),
        destination=destination("warehouse", table="orders", mode="append"),
    ).pipeline(name="landing")  # fmt: skip

    stats = _run(settings, orders)
    assert _ids(settings, "orders") == [1, 2, 4, 5, 7, 8]
    assert (stats["extracted"], stats["loaded"], stats["quarantined"]) == (8, 6, 2)
    assert stats["loaded"] + stats["quarantined"] == stats["extracted"]
    total, rows = _page(settings, stats)
    assert total == 2
    reasons = sorted(r["_hr_reason"] for r in rows)
    assert "unterminated quote" in reasons[1] and "fields" in reasons[0], reasons
    assert sorted(r["_hr_line"] for r in rows) == [4, 7]
    if kind.startswith("files"):
        table = tmp_path / "out" / "orders"
        assert {p.name for p in table.iterdir() if p.is_dir()} == {"_manifests", "state=CA",
                                                                   "state=NY"}  # fmt: skip
        held = tmp_path / "out" / "orders_quarantine"
        assert [p.name for p in held.iterdir() if p.is_dir()] == ["_manifests"]

    again = _run(settings, orders)  # the same file again: its load id has committed
    assert again["load_id"] == stats["load_id"]
    assert _ids(settings, "orders") == [1, 2, 4, 5, 7, 8]
    assert _quarantined(settings) == 2


@pytest.mark.parametrize("kind", ["files", "delta", "iceberg", "postgresql"])
def test_fenced_sync_quarantines_rows_set_aside_before_the_partition_column_exists(
    tmp_path: Path, pg_schema: tuple[str, str], kind: str
) -> None:
    import psycopg

    pg_url, schema = pg_schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".raw_orders (id int, ordered_at timestamp, amount int)'
        )
        conn.execute(
            f"INSERT INTO \"{schema}\".raw_orders VALUES (1, '2024-01-05', 10), "
            "(2, 'infinity', 20), (3, '2024-02-07', 30)"
        )
    warehouse = _warehouse(kind, tmp_path, "month", f"{pg_url}?schema={schema}")
    settings = _settings(tmp_path, warehouse, crm=pg_url)
    orders = sync(
        "orders", source=sql_source("crm", table="raw_orders", schema=schema),
        incremental=cursor("id"),
        # the partition column comes from the transform: rows the source set aside lack it
        transform="SELECT *, strftime(ordered_at, '%Y-%m') AS month FROM rows",
        checks=[between("amount", min=0, severity="quarantine", reason="amount is negative")],
        destination=destination("warehouse", table="orders", mode="append"),
    ).pipeline(name="crm_orders")  # fmt: skip

    first = _run(settings, orders)  # only the 'infinity' row is quarantined: no `month`
    assert _ids(settings, "orders") == [1, 3]
    assert (first["extracted"], first["loaded"], first["quarantined"]) == (3, 2, 1)
    total, rows = _page(settings, first)
    assert total == 1 and rows[0]["id"] == 2 and "infinity" in rows[0]["_hr_reason"]

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO \"{schema}\".raw_orders VALUES (4, '2024-02-09', -1), "
            "(5, '-infinity', 50), (6, '2024-03-01', 60)"
        )
    second = _run(settings, orders)  # a check reject (with `month`) and a set-aside row
    assert _ids(settings, "orders") == [1, 3, 6]
    assert (second["extracted"], second["loaded"], second["quarantined"]) == (3, 1, 2)
    assert second["loaded"] + second["quarantined"] == second["extracted"]
    total, rows = _page(settings, second)
    by_id = {r["id"]: r for r in rows}
    assert total == 2 and set(by_id) == {4, 5}
    assert by_id[4]["_hr_reason"] == "amount is negative" and by_id[4]["month"] == "2024-02"
    assert "infinity" in by_id[5]["_hr_reason"] and by_id[5]["month"] is None

    third = _run(settings, orders)  # nothing new: nothing loaded or quarantined again
    assert third["loaded"] == 0 and third["quarantined"] == 0
    assert _ids(settings, "orders") == [1, 3, 6]
    assert _quarantined(settings) == 3
    if kind in ("files", "delta", "iceberg"):  # the fenced quarantine commits name source and fence
        dest = open_destination("warehouse", settings)
        commits = [m for m in dest._history("orders_quarantine") if KEY_ORIGIN in m]  # type: ignore[union-attr]
        assert len(commits) == 2
        assert {m[KEY_ORIGIN] for m in commits} == {checkpoint_key("crm_orders", first["source"])}
        assert [json.loads(m[KEY_FENCE])[0] for m in commits] == ["3", None]  # newest first
    if kind == "files":  # the quarantine is plain Parquet files beside the table's folders
        out = tmp_path / "out"
        assert {p.name for p in (out / "orders").iterdir() if p.is_dir()} == {
            "_manifests", "month=2024-01", "month=2024-02", "month=2024-03",
        }  # fmt: skip
        files = str(out / "orders_quarantine" / "*.parquet")
        with duckdb.connect() as con:
            read = con.execute(
                "SELECT id FROM read_parquet($1, union_by_name = true)", [files]
            ).fetchall()
        assert sorted(r[0] for r in read) == [2, 4, 5]
