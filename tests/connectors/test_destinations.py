"""Destinations against a real DuckDB file and a real PostgreSQL: one contract, both backends."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from connector_helpers import HOSTILE_COLUMN, HOSTILE_TABLE

from headrace.connectors import Checkpoint, Interval, WriteMode
from headrace.connectors.destinations.destination_base import check_columns
from headrace.errors import ConnectorError

D = dt.datetime(2024, 5, 1)


def rows(dest, table: str, order: str = "id") -> list[dict]:
    return dest.query(f'SELECT * FROM {dest.q(table)} ORDER BY "{order}"').to_pylist()


def people(ids: list[int], name: str = "n") -> pa.Table:
    return pa.table(
        {
            "id": ids,
            "name": [f"{name}{i}" for i in ids],
            "day": [D + dt.timedelta(days=i) for i in ids],
        }
    )


def test_append_creates_then_appends(destination):
    r1 = destination.write(people([1, 2]), "t")
    r2 = destination.write(pl.from_arrow(people([3])), "t")  # Polars in, string_view etc.
    assert (r1.rows_loaded, r2.rows_loaded) == (2, 1)
    assert [r["id"] for r in rows(destination, "t")] == [1, 2, 3]


def test_replace_swaps_whole_table_and_schema(destination):
    destination.write(people([1, 2, 3]), "t")
    destination.write(pa.table({"id": [9], "other": ["x"]}), "t", mode="replace")
    assert rows(destination, "t") == [{"id": 9, "other": "x"}]
    destination.write(pa.table({"id": [8]}), "t", mode="replace", metadata=True, load_id="L")
    (row,) = rows(destination, "t")
    assert list(row) == ["id", "_hr_load_id", "_hr_loaded_at"] and row["_hr_load_id"] == "L"


def test_replace_partition_deletes_interval_only(destination):
    destination.write(people([1, 2, 3, 4]), "t")
    part = Interval("day", D + dt.timedelta(days=2), D + dt.timedelta(days=4))
    result = destination.write(
        people([2, 3], name="new"), "t", mode="replace_partition", partition=part
    )
    assert result.rows_replaced == 2
    assert [(r["id"], r["name"]) for r in rows(destination, "t")] == [
        (1, "n1"),
        (2, "new2"),
        (3, "new3"),
        (4, "n4"),
    ]
    # a rerun of the same interval leaves the same rows: no duplicates
    destination.write(people([2, 3], name="new"), "t", mode="replace_partition", partition=part)
    assert len(rows(destination, "t")) == 4
    with pytest.raises(ConnectorError, match="outside"):
        destination.write(people([1]), "t", mode="replace_partition", partition=part)


def test_merge_upserts_on_keys(destination):
    destination.write(people([1, 2, 3]), "t", mode="merge", keys=["id"])
    result = destination.write(people([2, 4], name="v2_"), "t", mode="merge", keys=["id"])
    assert (result.rows_loaded, result.rows_replaced) == (2, 1)
    assert [(r["id"], r["name"]) for r in rows(destination, "t")] == [
        (1, "n1"),
        (2, "v2_2"),
        (3, "n3"),
        (4, "v2_4"),
    ]


def test_merge_dedupes_by_order_column_and_refuses_bad_keys(destination):
    data = pa.table({"id": [1, 1, 2], "v": ["old", "new", "x"], "ts": [1, 5, 1]})
    with pytest.raises(ConnectorError, match=r"appears 2 times.*dedupe_order_by"):
        destination.write(data, "t", mode="merge", keys=["id"])
    destination.write(data, "t", mode="merge", keys=["id"], dedupe_order_by="ts")
    assert [(r["id"], r["v"]) for r in rows(destination, "t")] == [(1, "new"), (2, "x")]
    with pytest.raises(ConnectorError, match="null key"):
        destination.write(
            pa.table({"id": [None, 3], "v": ["a", "b"], "ts": [1, 1]}),
            "t",
            mode="merge",
            keys=["id"],
        )
    with pytest.raises(ConnectorError, match="key 'idd'.*Did you mean 'id'"):
        destination.write(data, "t", mode="merge", keys=["idd"])


def test_write_errors_keep_table_column_and_key_as_fields(destination):
    """What a refused write is about is in the error's fields (the web UI and alerts read
    them), not only in its text; nothing of the refused write is stored."""
    destination.write(people([1, 2]), "t")
    day2 = Interval("day", D + dt.timedelta(days=2), D + dt.timedelta(days=3))
    refused = [
        (lambda: destination.write(people([5]), "t", mode="replace_partition", partition=day2),
         {"table": "t", "column": "day"}),
        (lambda: destination.write(pa.table({"id": [1, 1], "v": ["a", "b"]}), "m", mode="merge",
                                   keys=["id"]),
         {"table": "m", "row": "id=1"}),
        (lambda: destination.write(pa.table({"id": [1, 2], "k": [None, 1]}), "m", mode="merge",
                                   keys=["id", "k"]),
         {"table": "m", "column": "k"}),
        (lambda: destination.write(people([3]), "t", mode="merge", keys=["idd"]),
         {"table": "t", "column": "idd"}),
        (lambda: destination.write(people([3]), "t", fence=Checkpoint("p", "s", 5)),
         {"pipeline": "p", "table": "t"}),
        (lambda: destination.write({"id": [3]}, "t"), {"table": "t"}),
    ]  # fmt: skip
    for write, fields in refused:
        with pytest.raises(ConnectorError) as info:
            write()
        assert info.value.fields() == {**fields, "connection": destination.where}, info.value
    assert [r["id"] for r in rows(destination, "t")] == [1, 2]
    assert destination.columns("m") is None


def test_schema_evolution_adds_columns_and_names_incompatible_ones(destination):
    destination.write(people([1]), "t")
    destination.write(pa.table({"id": [2], "name": ["b"], "score": [1.5]}), "t")
    got = rows(destination, "t")
    assert got[0]["score"] is None and got[1]["score"] == 1.5 and got[1]["day"] is None
    with pytest.raises(ConnectorError, match=r"table 't', column 'name'.*cannot hold") as info:
        destination.write(pa.table({"id": [3], "name": [D]}), "t")
    assert (info.value.table, info.value.column) == ("t", "name")
    assert len(rows(destination, "t")) == 2  # the failed write changed nothing


def test_type_compatibility_rules():
    assert check_columns("t", {"a": "BIGINT"}, {"a": "integer", "b": "TEXT"}) == [("b", "TEXT")]
    assert check_columns("t", {"a": "DOUBLE"}, {"a": "BIGINT"}) == []
    with pytest.raises(ConnectorError, match="column 'a'"):
        check_columns("t", {"a": "BIGINT"}, {"a": "VARCHAR"})


def test_metadata_columns_quarantine_and_checkpoint_commit_together(destination):
    bad = pa.table({"id": [7], "email": ["nope"], "_reason": ["email: invalid"]})
    result = destination.write(
        people([1, 2]),
        "t",
        mode="merge",
        keys=["id"],
        metadata=True,
        quarantine=bad,
        checkpoint=Checkpoint("pipe", "src", D),
        load_id="load-1",
    )
    assert (result.rows_loaded, result.rows_quarantined) == (2, 1)
    got = rows(destination, "t")
    assert {r["_hr_load_id"] for r in got} == {"load-1"} and got[0]["_hr_loaded_at"] is not None
    q = destination.query(f"SELECT * FROM {destination.q('t_quarantine')}").to_pylist()
    assert q[0]["_reason"] == "email: invalid" and q[0]["_hr_load_id"] == "load-1"
    ckpt = destination.checkpoint("pipe", "src")
    assert ckpt.value == D and ckpt.load_id == "load-1"
    assert destination.checkpoint("pipe", "other") is None


def test_same_load_id_is_applied_once(destination):
    first = destination.write(people([1, 2]), "t", load_id="run-1:load")
    again = destination.write(people([1, 2]), "t", load_id="run-1:load")
    assert not first.already_loaded and again.already_loaded and again.rows_loaded == 2
    assert len(rows(destination, "t")) == 2


def test_failed_write_leaves_table_and_checkpoint_unchanged(destination):
    destination.write(people([1]), "t", checkpoint=Checkpoint("p", "s", 1))
    with pytest.raises(ConnectorError):
        destination.write(
            pa.table({"id": ["not a number"]}), "t", checkpoint=Checkpoint("p", "s", 2)
        )
    assert len(rows(destination, "t")) == 1
    assert destination.checkpoint("p", "s").value == 1


def test_hostile_table_and_column_names(destination):
    data = pa.table({HOSTILE_COLUMN: ["x'); DROP TABLE t; --"], "id": [1]})
    destination.write(data, HOSTILE_TABLE, mode="merge", keys=[HOSTILE_COLUMN])
    destination.write(data, HOSTILE_TABLE, mode="merge", keys=[HOSTILE_COLUMN])
    got = destination.query(f"SELECT * FROM {destination.q(HOSTILE_TABLE)}").to_pylist()
    assert got == [{HOSTILE_COLUMN: "x'); DROP TABLE t; --", "id": 1}]


def test_unknown_mode_suggests():
    with pytest.raises(ConnectorError, match="Did you mean 'merge'"):
        WriteMode.parse("merg")


def test_session_reuses_one_connection(destination):
    with destination.session():
        destination.write(people([1]), "t", checkpoint=Checkpoint("p", "s", 1))
        assert destination.checkpoint("p", "s").value == 1
        destination.write(
            people([2]),
            "t",
            mode="merge",
            keys=["id"],
            checkpoint=Checkpoint("p", "s", 2),
            quarantine=pa.table({"id": [5]}),
        )
        leftovers = (
            destination.query(
                "SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE '\\_hr\\_stage%' ESCAPE '\\'"
            )
            .column("n")[0]
            .as_py()
        )
        assert leftovers == 0  # a long session does not pile up stage tables
    assert destination._session is None
    assert destination.checkpoint("p", "s").value == 2 and len(rows(destination, "t")) == 2


def test_checkpoint_never_moves_back(destination):
    destination.write(people([1]), "t", checkpoint=Checkpoint("p", "s", D))
    destination.write(people([2]), "t", checkpoint=Checkpoint("p", "s", None))  # empty extract
    destination.write(people([3]), "t", checkpoint=Checkpoint("p", "s", D - dt.timedelta(days=1)))
    assert destination.checkpoint("p", "s").value == D
    destination.write(people([4]), "t", checkpoint=Checkpoint("p", "s", D + dt.timedelta(days=1)))
    assert destination.checkpoint("p", "s").value == D + dt.timedelta(days=1)


def test_duckdb_caps_its_buffer_pool_and_spills(tmp_path):
    """A load connection caps DuckDB's pool (flat memory); more data than the cap still loads."""
    from headrace.connectors import DuckDBDestination

    dest = DuckDBDestination(tmp_path / "w.duckdb", memory_limit="64MB")
    ids = list(range(300_000))  # ~20 MB of text, staged, windowed and joined under the cap
    data = pa.table({"id": ids, "text": [f"row {i} " + "x" * 40 for i in ids], "v": ids})
    dest.write(data, "t", mode="merge", keys=["id"], dedupe_order_by="v")
    result = dest.write(data, "t", mode="merge", keys=["id"], dedupe_order_by="v")
    assert (result.rows_loaded, result.rows_replaced) == (300_000, 300_000)
    (limit,) = dest.query("SELECT current_setting('memory_limit') AS m").column("m").to_pylist()
    assert limit.endswith("MiB") and float(limit.split()[0]) < 70
    url_dest = DuckDBDestination.from_url(f"duckdb:///{tmp_path / 'u.duckdb'}?memory_limit=none")
    assert url_dest.memory_limit is None
    with pytest.raises(ConnectorError, match="is not a size"):
        DuckDBDestination(tmp_path / "x.duckdb", memory_limit="1GB'; DROP TABLE t; --")


def test_duckdb_streamed_load_gives_back_the_order_setting(tmp_path):
    """A stream is inserted with preserve_insertion_order off; the database's own setting
    comes back after every write mode."""
    from headrace.connectors import DuckDBDestination

    dest = DuckDBDestination(tmp_path / "w.duckdb")
    data = people(list(range(1, 6)))
    with dest.session():
        assert dest._session.execute(
            "SELECT current_setting('preserve_insertion_order')"
        ).fetchone() == (True,)
        for mode in ("append", "replace", "merge"):
            reader = pa.RecordBatchReader.from_batches(
                data.schema, data.to_batches(max_chunksize=2)
            )
            result = dest.write(reader, "t", mode=mode, keys=["id"] if mode == "merge" else ())
            assert result.rows_loaded == 5
            order = dest.query("SELECT current_setting('preserve_insertion_order') AS o")
            assert order.column("o").to_pylist() == [True]
    assert [r["id"] for r in rows(dest, "t")] == [1, 2, 3, 4, 5]


def test_duckdb_preserve_order_keeps_the_source_order(tmp_path):
    """preserve_order=True (or ?preserve_order=true) inserts a stream in its row order."""
    from headrace.connectors import DuckDBDestination
    from headrace.errors import ConnectorError

    ids = list(range(50_000, 0, -1))  # descending: any reordering shows
    data = people(ids)
    dest = DuckDBDestination.from_url(f"duckdb:///{tmp_path / 'o.duckdb'}?preserve_order=true")
    assert dest.preserve_order is True
    reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=1000))
    assert dest.write(reader, "t", mode="replace").rows_loaded == len(ids)
    got = dest.query("SELECT id FROM t").column("id").to_pylist()
    assert got == ids
    with pytest.raises(ConnectorError, match="preserve_order='maybe'"):
        DuckDBDestination.from_url(f"duckdb:///{tmp_path / 'x.duckdb'}?preserve_order=maybe")


def _row_groups(path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        return conn.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info(?)", [table]
        ).fetchall()[0][0]


def test_duckdb_merges_compact_once_deletes_reach_vacuum_after(tmp_path):
    """Checkpoints do not vacuum; a merge compacts the table once the rows deleted since
    the last compaction reach vacuum_after (10%), and the row groups stop growing."""
    from headrace.connectors import DuckDBDestination

    path = tmp_path / "w.duckdb"
    dest = DuckDBDestination(path)
    n = 400_000  # four DuckDB row groups
    ids = pa.array(range(n), pa.int64())
    dest.write(pa.table({"id": ids, "v": pc.cast(ids, pa.string())}), "t", mode="replace")
    start = _row_groups(path, "t")
    compacted, groups = [], []
    for k in range(4):
        changed = pa.array(range(k, n, 16), pa.int64())  # 6.25% of the rows per merge
        delta = pa.table({"id": changed, "v": pa.array([f"new-{k}"] * len(changed))})
        result = dest.write(delta, "t", mode="merge", keys=["id"])
        assert result.rows_replaced == len(changed)
        compacted.append(result.compacted)
        groups.append(_row_groups(path, "t"))
    assert compacted == [False, True, False, True]
    assert groups[0] == start + 1  # the merged rows went to a new row group
    assert groups[1] == start and groups[3] == start  # compaction folded them back in
    (count, changed_rows) = (
        dest.query("SELECT count(*) AS n, count(*) FILTER (WHERE v LIKE 'new-%') AS c FROM t")
        .to_pylist()[0]
        .values()
    )
    assert (count, changed_rows) == (n, 4 * n // 16)
    assert dest.query("SELECT table_name FROM _hr_vacuums").column(0).to_pylist() == ["t"]


def test_duckdb_vacuum_after_zero_leaves_vacuum_to_duckdb(tmp_path):
    from headrace.connectors import DuckDBDestination
    from headrace.errors import ConnectorError

    dest = DuckDBDestination(tmp_path / "w.duckdb", vacuum_after=0)
    dest.write(people([1, 2, 3]), "t", mode="replace")
    result = dest.write(people([1, 2], name="m"), "t", mode="merge", keys=["id"])
    assert result.rows_replaced == 2 and result.compacted is False
    tasks = dest.query("SELECT current_setting('max_vacuum_tasks') AS n").column("n")
    assert tasks.to_pylist() == [100]  # DuckDB's default: every checkpoint vacuums
    assert (
        DuckDBDestination.from_url(
            f"duckdb:///{tmp_path / 'u.duckdb'}?vacuum_after=0.5"
        ).vacuum_after
        == 0.5
    )
    with pytest.raises(ConnectorError, match="between 0 and 1"):
        DuckDBDestination(tmp_path / "x.duckdb", vacuum_after=2)
    with pytest.raises(ConnectorError, match="vacuum_after='often'"):
        DuckDBDestination.from_url(f"duckdb:///{tmp_path / 'x.duckdb'}?vacuum_after=often")


def _compression(path, table: str) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        rows = conn.execute(
            "SELECT column_name, string_agg(DISTINCT compression) FROM pragma_storage_info(?) "
            "WHERE segment_type = 'VARCHAR' GROUP BY 1",
            [table],
        ).fetchall()
    return dict(rows)


def _contacts(n: int) -> pa.Table:
    ids = pa.array(range(n), pa.int64())
    return pa.table(
        {
            "id": ids,
            "email": pc.binary_join_element_wise("user", pc.cast(ids, pa.string()), "@x.org", ""),
            "state": pa.array(["CA", "NY", "TX"] * (n // 3) + ["CA"] * (n % 3)),
        }
    )


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
def test_duckdb_mostly_distinct_text_is_compressed_with_zstd(tmp_path, mode):
    """A table created from data gets ZSTD on its mostly-distinct text columns (the first
    batch decides, the rest of the stream still arrives) and DuckDB's choice elsewhere."""
    from headrace.connectors import DuckDBDestination

    data = _contacts(200_000)
    reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=50_000))
    dest = DuckDBDestination(tmp_path / "w.duckdb")
    keys = ["id"] if mode == "merge" else ()
    assert dest.write(reader, "t", mode=mode, keys=keys).rows_loaded == data.num_rows
    found = _compression(tmp_path / "w.duckdb", "t")
    assert found["email"] == "ZSTD"
    assert found["state"] != "ZSTD"
    got = dest.query("SELECT count(*) AS n, count(DISTINCT email) AS e FROM t").to_pylist()
    assert got == [{"n": data.num_rows, "e": data.num_rows}]


def test_duckdb_compression_duckdb_and_small_tables_leave_text_to_duckdb(tmp_path):
    from headrace.connectors import DuckDBDestination
    from headrace.errors import ConnectorError

    plain = DuckDBDestination.from_url(f"duckdb:///{tmp_path / 'p.duckdb'}?compression=duckdb")
    plain.write(_contacts(200_000), "t", mode="replace")
    assert "ZSTD" not in _compression(tmp_path / "p.duckdb", "t").values()
    small = DuckDBDestination(tmp_path / "s.duckdb")
    small.write(_contacts(500), "t", mode="replace")  # under 1,024 rows: DuckDB decides
    assert "ZSTD" not in _compression(tmp_path / "s.duckdb", "t").values()
    with pytest.raises(ConnectorError, match="'adaptive' or 'duckdb'"):
        DuckDBDestination(tmp_path / "x.duckdb", compression="zstd")


DECIMALS = [  # values ADBC's NUMERIC writer has mangled (apache/arrow-adbc#3485, #4507)
    ("1.50", 10, 2),
    ("10.00", 10, 2),
    ("-10.00", 10, 2),
    ("0.01", 10, 2),
    ("44.123456", 10, 6),
    ("5000000000.000001", 18, 6),
    ("100", 12, 0),
    ("-0.000000001", 20, 9),
]


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
def test_decimals_arrive_exactly(destination, mode):
    """Every decimal lands with its exact value, whatever its scale, in every mode."""
    import decimal

    columns = {"id": pa.array(range(len(DECIMALS) + 1), pa.int64())}
    for i, (_, precision, scale) in enumerate(DECIMALS):
        values = [decimal.Decimal(t) if j == i else None for j, (t, _, _) in enumerate(DECIMALS)]
        columns[f"d{i}"] = pa.array(values + [None], pa.decimal128(precision, scale))
    # decimal256 that fits 38 digits: stored like decimal128
    columns["wide"] = pa.array(
        [decimal.Decimal("1234567890123456789012345678901234567.5")] + [None] * len(DECIMALS),
        pa.decimal256(38, 1),
    )
    data = pa.table(columns)
    keys = ["id"] if mode == "merge" else ()
    source = data  # append streams: the stage converts batch by batch
    if mode == "append":
        source = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=3))
    assert destination.write(source, "money", mode=mode, keys=keys).rows_loaded == data.num_rows
    got = rows(destination, "money")  # PostgreSQL's numeric arrives as text
    for i, (text, _, _) in enumerate(DECIMALS):
        assert decimal.Decimal(str(got[i][f"d{i}"])) == decimal.Decimal(text)
        assert all(got[j][f"d{i}"] is None for j in range(len(got)) if j != i)
    assert decimal.Decimal(str(got[0]["wide"])) == decimal.Decimal(
        "1234567890123456789012345678901234567.5"
    )


def test_decimals_beyond_38_digits(destination):
    """PostgreSQL takes them exactly; DuckDB refuses them naming the table and column."""
    import decimal

    from headrace.connectors import DuckDBDestination

    big = decimal.Decimal("123456789012345678901234567890123456789012345678.5")
    data = pa.table({"id": [1], "huge": pa.array([big], pa.decimal256(50, 1))})
    if isinstance(destination, DuckDBDestination):
        with pytest.raises(ConnectorError, match=r"column 'huge'.*decimal256\(50, 1\)") as info:
            destination.write(data, "money", mode="replace")
        assert info.value.fields() == {
            "table": "money",
            "column": "huge",
            "connection": destination.where,
        }
        return
    destination.write(data, "money", mode="replace")
    assert decimal.Decimal(rows(destination, "money")[0]["huge"]) == big
