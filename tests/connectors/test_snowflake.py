"""The Snowflake destination against fakesnow (Snowflake's SQL emulated on DuckDB).

A sync merges a changing SQLite table into Snowflake through the engine: PUT/COPY INTO
staging, then one DML transaction with the quarantine, the checkpoint and the ledger.
What the emulator cannot prove is listed in the destination's docstring.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from headrace import cursor, destination, sql_source, sync
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.connectors.incremental import Checkpoint, CheckpointMoved
from headrace.engine import Runner
from headrace.quality import between
from headrace.state import open_store

fakesnow = pytest.importorskip("fakesnow")
URL = "snowflake://etl:pw-not-shown@acme/analytics/crm?warehouse=LOAD"


@pytest.fixture
def snow(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "snow").mkdir()
    with fakesnow.patch(db_path=str(tmp_path / "snow")):
        yield


def _source(path: Path, rows: list[tuple]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, qty INTEGER, "
                     "updated_at TEXT)")  # fmt: skip
        conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", rows)


ITEMS = sync(
    "items",
    source=sql_source("items", table="items", types={"updated_at": pa.timestamp("us")}),
    incremental=cursor("updated_at", lookback=dt.timedelta(seconds=30), primary_key="id"),
    checks=[between("qty", min=0, severity="quarantine", reason="qty is negative")],
    destination=destination("snow", table="items", mode="merge", keys="id"),
)


def test_a_sync_merges_into_snowflake_exactly_once(snow: None, tmp_path: Path) -> None:
    db = tmp_path / "items.db"
    settings = Settings.from_env(tmp_path, environ={
        "HEADRACE_HOME": str(tmp_path / ".headrace"), "HEADRACE_CONN_ITEMS": f"sqlite:///{db}",
        "HEADRACE_CONN_SNOW": URL,
    })  # fmt: skip
    settings.home.mkdir(parents=True)
    _source(db, [(1, 5, "2024-01-01 00:01:00"), (2, -1, "2024-01-01 00:02:00"),
                 (3, 7, "2024-01-01 00:03:00")])  # fmt: skip
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        first = runner.run(ITEMS.pipeline(name="items"))
        assert first.state == "success", [t.error for t in first.tasks]
        _source(db, [(3, 70, "2024-01-01 00:04:00"), (4, 9, "2024-01-01 00:05:00")])
        second = runner.run(ITEMS.pipeline(name="items"))
        assert second.state == "success", [t.error for t in second.tasks]
        again = runner.run(ITEMS.pipeline(name="items"))  # nothing new: nothing changes
        assert again.state == "success"
    dest = open_destination("snow", settings)
    got = dest.query(f"SELECT id, qty FROM {dest.q('items')} ORDER BY id").to_pylist()
    assert [(r["id"], r["qty"]) for r in got] == [(1, 5), (3, 70), (4, 9)]
    bad = dest.query(f"SELECT id FROM {dest.q('items_quarantine')}").to_pylist()
    assert [r["id"] for r in bad] == [2]
    ckpt = dest.checkpoint("items", ITEMS.source.dataset)
    assert ckpt is not None and ckpt.value == dt.datetime(2024, 1, 1, 0, 5)
    assert "pw-not-shown" not in dest.where


def test_a_stale_fence_applies_nothing_and_a_replay_is_a_no_op(snow: None) -> None:
    dest = open_destination(URL)
    rows = pa.table({"id": [1, 2], "qty": [1, 2]})
    start = Checkpoint("p", "s", None)
    first = dest.write(rows, "t", mode="append", load_id="L1", fence=start,
                       checkpoint=Checkpoint("p", "s", 2))  # fmt: skip
    assert first.rows_loaded == 2
    assert dest.write(rows, "t", mode="append", load_id="L1").already_loaded
    with pytest.raises(CheckpointMoved):
        dest.write(pa.table({"id": [9], "qty": [9]}), "t", fence=start,
                   checkpoint=Checkpoint("p", "s", 9))  # fmt: skip
    assert dest.row_count("t") == 2
    assert dest.checkpoint("p", "s").value == 2  # type: ignore[union-attr]

    def refuse(_: object) -> None:
        raise RuntimeError("reconciliation failed")

    with pytest.raises(Exception, match="reconciliation failed"):
        dest.write(pa.table({"id": [5], "qty": [5], "note": ["new column"]}), "t",
                   checkpoint=Checkpoint("p", "s", 5), verify=refuse)  # fmt: skip
    assert dest.row_count("t") == 2 and dest.checkpoint("p", "s").value == 2  # type: ignore[union-attr]
