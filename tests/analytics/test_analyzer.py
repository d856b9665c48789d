"""Queries with bound parameters, result conversions, name lookup and errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from headrace.analytics import Analyzer, WarehouseBusyError
from headrace.errors import AnalyticsError, TransientError

from .conftest import HOSTILE_COLUMN, HOSTILE_TABLE, ROWS


def test_query_binds_positional_and_named_parameters(analyzer: Analyzer, sales: str) -> None:
    hostile = "toys' OR 1=1 --"
    assert (
        analyzer.query(f'SELECT count(*) FROM "{sales}" WHERE category = ?', [hostile]).scalar()
        == 0
    )
    assert (
        analyzer.query(f'SELECT count(*) FROM "{sales}" WHERE category = ?', ["toys"]).scalar() == 3
    )
    got = analyzer.query(
        f'SELECT id FROM "{sales}" WHERE amount > $min ORDER BY id', {"min": 5}
    ).rows()
    assert got == [(1,), (4,), (5,)]


def test_result_converts_to_arrow_polars_pandas_rows_and_dicts(
    analyzer: Analyzer, sales: str
) -> None:
    result = analyzer.query(f'SELECT id, name FROM "{sales}" ORDER BY id')
    assert len(result) == 6 and result.columns == ["id", "name"]
    assert isinstance(result.arrow(), pa.Table)
    frame = result.polars()
    assert isinstance(frame, pl.DataFrame) and frame["name"].to_list() == [r["name"] for r in ROWS]
    pdf = result.pandas()
    assert isinstance(pdf, pd.DataFrame) and pdf["id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert result.rows()[2] == (3, "李雷")
    assert result.dicts()[4] == {"id": 5, "name": "😀 emoji"}
    assert list(result)[0] == (1, "Zoë")


def test_statements_without_rows_give_an_empty_result(analyzer: Analyzer) -> None:
    result = analyzer.query("CREATE TABLE t (x INTEGER)")
    assert analyzer.query("INSERT INTO t VALUES (?), (?)", [1, 2]).scalar() == 2  # rows inserted
    assert analyzer.query("SELECT * FROM t WHERE x > 5").scalar() is None
    assert isinstance(result.rows(), list)


def test_stream_yields_batches(analyzer: Analyzer) -> None:
    batches = list(
        analyzer.stream("SELECT range AS x FROM range(?)", [300_000], batch_size=100_000)
    )
    assert len(batches) >= 3
    assert sum(b.num_rows for b in batches) == 300_000


def test_query_errors_name_the_query_and_suggest(analyzer: Analyzer, sales: str) -> None:
    with pytest.raises(
        AnalyticsError, match=r"(?s)drop table x.*in: SELECT \* FROM \"drop table x\""
    ) as info:
        analyzer.query('SELECT * FROM "drop table x"')
    assert "Did you mean" in str(info.value)


def test_unknown_table_and_column_suggest_the_closest(analyzer: Analyzer, sales: str) -> None:
    with pytest.raises(
        AnalyticsError,
        match=r"table 'drop table x;': unknown table.*Did you mean 'drop table x; --'",
    ):
        analyzer.aggregate("drop table x;")
    with pytest.raises(
        AnalyticsError, match=r"column 'catgory': unknown column.*Did you mean 'category'"
    ) as info:
        analyzer.group_by(sales, "catgory")
    assert (info.value.table, info.value.column) == (sales, "catgory")
    with pytest.raises(
        AnalyticsError, match=r"column 'a \"b': unknown column.*Did you mean 'a \"b\"'"
    ):
        analyzer.percentiles(sales, 'a "b', [50])


def test_resolve_handles_schemas_and_dotted_names(analyzer: Analyzer) -> None:
    analyzer.query(
        'CREATE SCHEMA raw; CREATE TABLE raw.events AS SELECT 1 AS x; CREATE TABLE "raw.events" AS SELECT 2 AS x'
    )
    # The literal name wins; schema.name is tried when no table has that name.
    assert analyzer.aggregate("raw.events", ["x"], ["max"])["x"]["max"] == 2
    assert analyzer.aggregate(("raw", "events"), ["x"], ["max"])["x"]["max"] == 1
    analyzer.query('DROP TABLE "raw.events"')
    assert analyzer.aggregate("raw.events", ["x"], ["max"])["x"]["max"] == 1
    assert "raw.events" in analyzer.tables()


def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match="does not exist"):
        Analyzer(tmp_path / "nope.duckdb", read_only=True)
    with pytest.raises(AnalyticsError, match="needs a database file"):
        Analyzer(read_only=True)


def test_warehouse_locked_by_a_writer_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Analyzer(path) as a:
        a.query("CREATE TABLE t AS SELECT 1 AS x")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusyError, match="Another process") as info:
            Analyzer(path, read_only=True)
        assert isinstance(info.value, TransientError)  # the engine may retry
    finally:
        holder.communicate("done\n", timeout=30)
    with Analyzer(path, read_only=True) as a:
        assert a.query("SELECT x FROM t").scalar() == 1


def test_spill_folder_is_private_and_removed(tmp_path: Path) -> None:
    a = Analyzer(memory_limit="200MB", threads=1)
    spill = Path(a.connection.sql("SELECT current_setting('temp_directory')").fetchall()[0][0])
    assert spill.exists() and spill.name.startswith("headrace-duckdb-")
    a.close()
    assert not spill.exists()


def test_progress_is_reported_while_a_query_runs(analyzer: Analyzer) -> None:
    import threading

    seen: list[float | None] = []
    worker = threading.Thread(
        target=lambda: analyzer.query(
            "SELECT count(DISTINCT x % 1000003) FROM range(40000000) t(x)"
        )
    )
    worker.start()
    while worker.is_alive():
        seen.append(analyzer.progress())
        time.sleep(0.02)
    worker.join()
    assert any(p is not None and p >= 0 for p in seen)
    assert analyzer.progress() is None  # nothing running


def test_hostile_names_in_every_summary(analyzer: Analyzer, sales: str) -> None:
    assert sales == HOSTILE_TABLE
    grouped = analyzer.group_by(sales, HOSTILE_COLUMN, ["count"]).rows()
    assert grouped[0] == ("x'y", 3)
    assert analyzer.profile(sales)[HOSTILE_COLUMN].nulls == 1
    assert analyzer.tables() == [HOSTILE_TABLE]  # and nothing was dropped


def test_reader_streams_and_handles_statements_without_rows(analyzer: Analyzer) -> None:
    assert list(analyzer.stream("SET threads = 1")) == []
    with analyzer.reader("SELECT 1 AS x WHERE false") as empty:
        assert empty.schema.names == ["x"] and list(empty) == []
    with analyzer.reader("SELECT range AS x FROM range(250000)", batch_size=50_000) as big:
        assert max(b.num_rows for b in big) <= 50_000
    assert analyzer.query("SELECT 1").scalar() == 1  # the connection is free again
