"""Syncs into lakehouse tables (Delta Lake, Iceberg): crashes, races, modes, time travel.

The checkpoint rides in the table's own commit, so the DuckDB guarantees must hold here
too: a run killed at any point of its load and run again leaves 0 duplicate and 0
missing rows; two loads fenced on the same checkpoint never both commit; ``headrace
query`` reads the tables and their earlier versions.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sync_harness import Source, World, compare

from headrace import destination, full, sql_source, sync
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.connectors.crashpoints import ENV, POINTS
from headrace.connectors.destinations.destination_base import LoadResult
from headrace.connectors.incremental import Checkpoint, CheckpointMoved, Interval
from headrace.engine import Runner
from headrace.errors import ConnectorError
from headrace.quality import between
from headrace.state import open_store


def lake_url(kind: str, tmp_path: Path) -> str:
    if kind == "delta":
        return f"delta:///{tmp_path / 'lake'}"
    return f"iceberg+sqlite:///{tmp_path / 'catalog.db'}?warehouse={tmp_path / 'ice'}"


@pytest.fixture(params=["delta", "iceberg"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    yield World(tmp_path, lake_url(request.param, tmp_path), Source(tmp_path / "items.db"))


def _kill_and_rerun(world: World, point: str) -> None:
    world.source.change()
    world.source.insert(3, invalid=1.0)  # rows the killed load quarantines
    killed = world.run(**{ENV: point})
    assert killed.returncode == -signal.SIGKILL, (point, killed.stdout + killed.stderr)
    world.source.change()  # the rerun extracts again: other rows, another load id
    again = world.run()
    assert again.returncode == 0, (point, again.stdout + again.stderr)
    verdict = compare(world)
    assert verdict.ok, (point, verdict)
    _quarantine_settled(world, point)


def _quarantine_settled(world: World, point: str) -> None:
    """Every invalid source row is in the quarantine, each load's rows once, and only
    rows of committed loads: a killed load's quarantined rows do not linger."""
    dest = open_destination(world.warehouse)
    rows = dest.query(f"SELECT id, _hr_load_id FROM {dest.q('items_quarantine')}").to_pylist()
    pairs = [(r["id"], r["_hr_load_id"]) for r in rows]
    assert len(pairs) == len(set(pairs)), (point, "a load's row quarantined twice")
    invalid = {i for i, (q, _) in world.source.rows().items() if q < 0}
    assert {i for i, _ in pairs} == invalid, point
    orphans = {lid for _, lid in pairs if dest.load(lid) is None}  # type: ignore[union-attr]
    assert not orphans, (point, "quarantined rows of a load that never committed", orphans)


@pytest.mark.slow  # 3 CLI runs
def test_a_load_killed_between_its_quarantine_and_its_commit_reruns_exactly_once(
    lake: World,
) -> None:
    lake.source.insert(40)
    assert lake.run().returncode == 0
    _kill_and_rerun(lake, "after_quarantine")


@pytest.mark.slow  # 10 CLI runs per table format
def test_a_load_killed_at_every_point_reruns_exactly_once(lake: World) -> None:
    lake.source.insert(40)
    assert lake.run().returncode == 0
    for point in POINTS:
        _kill_and_rerun(lake, point)
    assert len(lake.table("items")) == len({r[0] for r in lake.table("items")})


def _json(done: object) -> list[dict]:
    out = getattr(done, "stdout", "")
    assert getattr(done, "returncode", 1) == 0, out + getattr(done, "stderr", "")
    return json.loads(out)


@pytest.mark.slow  # 4 CLI runs
def test_headrace_query_reads_the_table_and_an_earlier_version(lake: World) -> None:
    lake.source.insert(30)
    assert lake.run().returncode == 0
    first = len(lake.table("items"))
    lake.source.insert(12, invalid=0)
    assert lake.run().returncode == 0
    assert len(lake.table("items")) == first + 12
    dest = open_destination(lake.warehouse)
    # the first load: Delta version 0, or the table's first Iceberg snapshot
    delta = lake.warehouse.startswith("delta")
    version = 0 if delta else dest.snapshots("items")[0]  # type: ignore[union-attr]
    sql = f'SELECT (SELECT count(*) FROM items) AS now, (SELECT count(*) FROM "items@{version}") AS before'
    rows = _json(lake.cli("query", sql, "--warehouse", lake.warehouse, "--format", "json"))
    assert rows == [{"now": first + 12, "before": first}]
    quarantined = _json(
        lake.cli("query", "SELECT count(*) AS n FROM items_quarantine", "-w", lake.warehouse,
                 "--format", "json")
    )  # fmt: skip
    invalid = sum(1 for q, _ in lake.source.rows().values() if q < 0)
    assert quarantined == [{"n": invalid}]


def _rows(ids: list[int], minute: int = 0, day: int = 1, **extra: list) -> pa.Table:
    stamps = [dt.datetime(2024, 1, 1, 0, minute)] * len(ids)
    days = [dt.datetime(2024, 1, day)] * len(ids)
    cols = {
        "id": pa.array(ids, pa.int64()),
        "qty": pa.array([i * 10 for i in ids], pa.int64()),
        "day": pa.array(days, pa.timestamp("us")),
        "updated_at": pa.array(stamps, pa.timestamp("us")),
    }
    cols.update({k: pa.array(v) for k, v in extra.items()})
    return pa.table(cols)


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_two_loads_fenced_on_one_checkpoint_never_both_commit(kind: str, tmp_path: Path) -> None:
    dest = open_destination(lake_url(kind, tmp_path))
    start = Checkpoint("p", "src", None)
    dest.write(_rows([1]), "items", mode="merge", keys=["id"], fence=start,
               checkpoint=Checkpoint("p", "src", 1))  # fmt: skip
    fence = dest.checkpoint("p", "src")
    assert fence is not None and fence.value == 1
    both_checked = threading.Barrier(2, timeout=60)
    outcome: dict[int, object] = {}

    def load(n: int) -> None:
        def verify(_: LoadResult) -> None:
            both_checked.wait()  # both passed the fence; both now try to commit

        try:
            outcome[n] = dest.write(
                _rows([10 + n], minute=n), "items", mode="merge", keys=["id"], fence=fence,
                checkpoint=Checkpoint("p", "src", 1 + n), verify=verify,
            )  # fmt: skip
        except CheckpointMoved as moved:
            outcome[n] = moved

    threads = [threading.Thread(target=load, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    kinds = sorted(type(v).__name__ for v in outcome.values())
    assert kinds == ["CheckpointMoved", "LoadResult"], outcome
    winner = next(n for n, v in outcome.items() if isinstance(v, LoadResult))
    stored = dest.query(f"SELECT id FROM {dest.q('items')} ORDER BY id")
    assert stored.column("id").to_pylist() == [1, 10 + winner]
    assert dest.checkpoint("p", "src").value == 1 + winner  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_refused_writes_keep_table_column_and_key_as_fields(kind: str, tmp_path: Path) -> None:
    dest = open_destination(lake_url(kind, tmp_path))
    dest.write(_rows([1, 2]), "t", mode="merge", keys=["id"], fence=Checkpoint("p", "s", None),
               checkpoint=Checkpoint("p", "s", 1))  # fmt: skip
    day2 = Interval("day", dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3))
    refused = [
        (lambda: dest.write(_rows([5], day=1), "t", mode="replace_partition", partition=day2),
         {"table": "t", "column": "day"}),
        (lambda: dest.write(_rows([1, 1]), "t", mode="merge", keys=["id"]),
         {"table": "t", "row": "id=1"}),
        (lambda: dest.write(_rows([3]), "t", mode="merge", keys=["id"],
                            fence=Checkpoint("p", "s", None)),
         {"pipeline": "p", "table": "t"}),
    ]  # fmt: skip
    for write, fields in refused:
        with pytest.raises(ConnectorError) as info:
            write()
        assert info.value.fields() == {**fields, "connection": dest.where}, info.value
    stored = dest.query(f"SELECT id FROM {dest.q('t')} ORDER BY id")
    assert stored.column("id").to_pylist() == [1, 2]


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_modes_schema_evolution_and_replay(kind: str, tmp_path: Path) -> None:
    dest = open_destination(lake_url(kind, tmp_path))
    first = dest.write(_rows([1, 2, 3], minute=3), "t", mode="append", load_id="L1", metadata=True)
    assert (first.rows_loaded, first.already_loaded) == (3, False)
    replay = dest.write(_rows([1, 2, 3], minute=3), "t", mode="append", load_id="L1", metadata=True)
    assert replay.already_loaded and dest.row_count("t") == 3
    # merge with a new column; id 3 arrives older than the stored row and is kept out
    merged = dest.write(
        _rows([2, 3, 4], minute=5, note=["b", "c", "d"]).set_column(
            3, "updated_at", pa.array([dt.datetime(2024, 1, 1, 0, m) for m in (5, 0, 5)],
                                      pa.timestamp("us")),
        ),
        "t", mode="merge", keys=["id"], cursor_column="updated_at", metadata=True,
    )  # fmt: skip
    assert (merged.rows_in, merged.rows_loaded, merged.rows_replaced) == (3, 2, 1)
    got = dest.query(f"SELECT id, note FROM {dest.q('t')} ORDER BY id").to_pylist()
    assert got == [
        {"id": 1, "note": None}, {"id": 2, "note": "b"}, {"id": 3, "note": None},
        {"id": 4, "note": "d"},
    ]  # fmt: skip
    columns = dest.columns("t")  # what the docs catalog shows
    assert columns is not None and columns["note"] in ("string", "large_string")
    assert dest.columns("missing") is None
    day2 = Interval(
        "day", dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 1, 3, tzinfo=dt.UTC)
    )
    dest.write(_rows([7, 8], day=2), "t", mode="replace_partition", partition=day2, metadata=True)
    again = dest.write(
        _rows([9], day=2), "t", mode="replace_partition", partition=day2, metadata=True
    )
    assert again.rows_replaced == 2
    ids = dest.query(f"SELECT id FROM {dest.q('t')} ORDER BY id").column("id").to_pylist()
    assert ids == [1, 2, 3, 4, 9]
    dest.write(_rows([5]), "t", mode="replace", metadata=True)
    assert dest.query(f"SELECT id FROM {dest.q('t')}").column("id").to_pylist() == [5]
    with pytest.raises(Exception, match="outside"):
        dest.write(_rows([6], day=1), "t", mode="replace_partition", partition=day2)


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_sql_tests_run_on_the_lake_after_the_load(kind: str, tmp_path: Path) -> None:
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(1, 5), (2, 50)])
    tests = tmp_path / "sql_tests"
    tests.mkdir()
    (tests / "qty_at_most_100.sql").write_text("SELECT id, qty FROM items WHERE qty > 100\n")
    (tests / "nothing_quarantined.sql").write_text(
        "SELECT * FROM items_quarantine WHERE _hr_reason IS NULL\n"
    )
    settings = Settings.from_env(tmp_path, environ={
        "HEADRACE_HOME": str(tmp_path / ".headrace"), "HEADRACE_CONN_ITEMS": f"sqlite:///{db}",
        "HEADRACE_CONN_LAKE": lake_url(kind, tmp_path),
    })  # fmt: skip
    settings.home.mkdir(parents=True)
    items = sync(
        "items", source=sql_source("items", table="items"), incremental=full(),
        checks=[between("qty", min=0, severity="quarantine")],
        destination=destination("lake", table="items", mode="replace"), sql_tests=tests,
    )  # fmt: skip
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO items VALUES (3, -1)")  # quarantined
        passed = runner.run(items.pipeline(name="items"))
        assert passed.state == "success", [t.error for t in passed.tasks]
        assert passed.result_of("items")["sql_tests_passed"] == 2
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO items VALUES (4, 500)")
        failed = runner.run(items.pipeline(name="items"))
    assert failed.state == "failed"
    errors = " ".join(str(t.error) for t in failed.tasks)
    assert "qty_at_most_100" in errors and "nothing_quarantined" not in errors
    dest = open_destination(lake_url(kind, tmp_path))
    assert dest.row_count("items") == 3  # the load committed; its SQL test failed after it
