"""Loading real files of every format, as tables and views, with hostile names and paths."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from headrace.analytics import Analyzer
from headrace.errors import AnalyticsError

from .conftest import HOSTILE_COLUMN, HOSTILE_TABLE, ROWS, SCHEMA, write_all_formats

FORMATS = ["csv", "parquet", "json", "ndjson", "avro", "orc", "arrow", "arrows"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_all_rows_with_unicode_and_nulls(
    analyzer: Analyzer, files: dict[str, Path], fmt: str
) -> None:
    name = analyzer.load(files[fmt], f"t_{fmt}")
    rows = analyzer.query(f'SELECT id, name, amount FROM "t_{fmt}" ORDER BY id').rows()
    assert rows == [(r["id"], r["name"], r["amount"]) for r in ROWS]
    assert name == f"t_{fmt}"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "ndjson", "orc", "arrow"])
def test_hostile_column_name_survives_every_format(
    analyzer: Analyzer, files: dict[str, Path], fmt: str
) -> None:
    analyzer.load(files[fmt], "t")
    assert HOSTILE_COLUMN in analyzer.columns("t")
    # CSV cannot tell an empty string from a missing value: the "" row reads as null.
    expected = 4 if fmt == "csv" else 5
    assert analyzer.aggregate("t", [HOSTILE_COLUMN], ["count"])[HOSTILE_COLUMN]["count"] == expected


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_view_reads_the_file_at_each_query(analyzer: Analyzer, tmp_path: Path, fmt: str) -> None:
    paths = write_all_formats(tmp_path / "v", pa.Table.from_pylist(ROWS[:2], schema=SCHEMA))
    analyzer.load(paths[fmt], "live", view=True)
    assert analyzer.query('SELECT count(*) FROM "live"').scalar() == 2
    write_all_formats(tmp_path / "v", pa.Table.from_pylist(ROWS, schema=SCHEMA))
    assert analyzer.query('SELECT count(*) FROM "live"').scalar() == 6
    assert [r.kind for r in analyzer.relations()] == ["view"]


def test_hostile_table_name_and_path_with_quotes(analyzer: Analyzer, tmp_path: Path) -> None:
    folder = tmp_path / 'we\'re "here"'
    paths = write_all_formats(
        folder, pa.Table.from_pylist(ROWS, schema=SCHEMA), stem="o'neil; drop"
    )
    analyzer.load_csv(paths["csv"], HOSTILE_TABLE, view=True)
    analyzer.load_parquet(paths["parquet"], 'a "b"')
    assert analyzer.query(f'SELECT count(*) FROM "{HOSTILE_TABLE}"').scalar() == 6
    assert analyzer.query('SELECT count(*) FROM "a ""b"""').scalar() == 6
    assert sorted(analyzer.tables()) == sorted([HOSTILE_TABLE, 'a "b"'])


def test_default_name_is_the_file_name_without_extensions(
    analyzer: Analyzer, files: dict[str, Path]
) -> None:
    gz = files["csv"].with_name("sales.2024.csv.gz")
    with files["csv"].open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert analyzer.load(gz) == "sales.2024"
    assert analyzer.query('SELECT count(*) FROM "sales.2024"').scalar() == 6


def test_reader_options_are_bound_and_checked(analyzer: Analyzer, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b\n1;NA\n2;x\n", encoding="utf-8")
    analyzer.load_csv(path, "t", delim=";", nullstr="NA")
    assert analyzer.query('SELECT a, b FROM "t" ORDER BY a').rows() == [(1, None), (2, "x")]
    analyzer.load_csv(path, "v", view=True, delim=";", nullstr="NA", header=True)
    assert analyzer.query('SELECT count(b) FROM "v"').scalar() == 1
    with pytest.raises(AnalyticsError, match="Did you mean 'delim'"):
        analyzer.load_csv(path, "u", delimm=";")
    with pytest.raises(AnalyticsError, match="wrong type"):
        analyzer.load_csv(path, "u", header="yes")


def test_ragged_csv_rows_fail_instead_of_being_dropped(analyzer: Analyzer, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,amount\n1,2.5\n2,3.5,9\n3,4\n", encoding="utf-8")
    with pytest.raises(AnalyticsError, match="bad.csv"):
        analyzer.load_csv(path, "t", delim=",", header=True)
    assert analyzer.tables() == []


@pytest.mark.parametrize("fmt", ["parquet", "orc", "arrow", "avro", "json", "ndjson"])
def test_empty_files_load_as_empty_tables(analyzer: Analyzer, tmp_path: Path, fmt: str) -> None:
    paths = write_all_formats(tmp_path / "e", pa.Table.from_pylist([], schema=SCHEMA))
    analyzer.load(paths[fmt], "empty")
    assert analyzer.query('SELECT count(*) FROM "empty"').scalar() == 0
    if fmt in ("parquet", "orc", "arrow", "avro"):  # formats that carry a schema keep it
        assert "amount" in analyzer.columns("empty")
    summary = analyzer.aggregate("empty")
    assert summary.rows == 0


def test_zero_byte_and_header_only_csv(analyzer: Analyzer, tmp_path: Path) -> None:
    (tmp_path / "zero.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("id,name\n", encoding="utf-8")
    analyzer.load(tmp_path / "zero.csv")
    analyzer.load(tmp_path / "header.csv")
    assert analyzer.query('SELECT count(*) FROM "zero"').scalar() == 0
    assert list(analyzer.columns("header")) == ["id", "name"]
    assert analyzer.profile("header").rows == 0


def test_huge_numbers_keep_their_value(analyzer: Analyzer, tmp_path: Path) -> None:
    table = pa.table(
        {
            "u64": pa.array([2**64 - 1, 0], pa.uint64()),
            "i64": pa.array([BIG := 2**63 - 1, -(2**63)], pa.int64()),
            "dec": pa.array([10**37 + 1, -(10**37)], pa.decimal128(38, 0)),
            "dbl": pa.array([1.7976931348623157e308, 5e-324], pa.float64()),
        }
    )
    pq.write_table(table, tmp_path / "big.parquet")
    analyzer.load(tmp_path / "big.parquet")
    row = analyzer.query('SELECT * FROM "big" ORDER BY i64 DESC LIMIT 1').rows()[0]
    assert row[0] == 2**64 - 1 and row[1] == BIG and int(row[2]) == 10**37 + 1
    assert row[3] == 1.7976931348623157e308
    # A sum past BIGINT does not overflow: DuckDB widens it to HUGEINT.
    assert analyzer.aggregate("big", ["u64"], ["sum"])["u64"]["sum"] == 2**64 - 1
    assert analyzer.query('SELECT sum(i64) + sum(i64) FROM "big"').scalar() == -2


def test_avro_logical_types(analyzer: Analyzer, tmp_path: Path) -> None:
    import datetime as dt
    import decimal

    import fastavro

    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {
                "name": "price",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            },
        ],
    }
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    with (tmp_path / "l.avro").open("wb") as fh:
        fastavro.writer(
            fh,
            fastavro.parse_schema(schema),
            [{"ts": when, "day": dt.date(2024, 5, 6), "price": decimal.Decimal("12.34")}],
        )
    analyzer.load(tmp_path / "l.avro")
    types = analyzer.columns("l")
    assert (
        types["day"] == "DATE"
        and types["price"] == "DECIMAL(12,2)"
        and types["ts"].startswith("TIMESTAMP")
    )
    assert analyzer.query('SELECT price FROM "l"').scalar() == decimal.Decimal("12.34")


def test_orc_with_many_stripes(analyzer: Analyzer, tmp_path: Path) -> None:
    table = pa.table({"x": pa.array(range(50_000), pa.int64())})
    orc.write_table(table, tmp_path / "many.orc", stripe_size=64 * 1024)
    assert orc.ORCFile(tmp_path / "many.orc").nstripes > 1
    analyzer.load(tmp_path / "many.orc")
    assert analyzer.query('SELECT count(*), sum(x) FROM "many"').rows() == [
        (50_000, sum(range(50_000)))
    ]


def test_load_arrow_objects_and_polars(analyzer: Analyzer) -> None:
    import polars as pl

    analyzer.load_arrow(pl.DataFrame({"a": [1, 2, 3]}), "from_polars")
    reader = pa.RecordBatchReader.from_batches(
        SCHEMA, pa.Table.from_pylist(ROWS, schema=SCHEMA).to_batches()
    )
    analyzer.load_arrow(reader, "from_reader")
    assert analyzer.query('SELECT sum(a) FROM "from_polars"').scalar() == 6
    assert analyzer.query('SELECT count(*) FROM "from_reader"').scalar() == 6
    with pytest.raises(AnalyticsError, match="needs a table name"):
        analyzer.load_arrow(pa.table({"a": [1]}))


def test_existing_name_needs_replace(analyzer: Analyzer, files: dict[str, Path]) -> None:
    analyzer.load(files["parquet"], "t")
    with pytest.raises(AnalyticsError, match="already exists.*replace=True"):
        analyzer.load(files["csv"], "t")
    analyzer.load(files["csv"], "t", replace=True)
    assert analyzer.query('SELECT count(*) FROM "t"').scalar() == 6


def test_unknown_extension_and_missing_file(analyzer: Analyzer, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match=r"Did you mean '\.csv'"):
        analyzer.load(tmp_path / "x.cvs")
    with pytest.raises(AnalyticsError, match="not found"):
        analyzer.load(tmp_path / "missing.parquet")
    with pytest.raises(AnalyticsError, match="not found"):
        analyzer.load_orc(tmp_path / "missing.orc")


def test_corrupt_file_names_the_file(analyzer: Analyzer, tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "broken.orc").write_bytes(b"not orc")
    with pytest.raises(AnalyticsError, match="broken.parquet"):
        analyzer.load(tmp_path / "broken.parquet")
    with pytest.raises(AnalyticsError, match="broken.orc"):
        analyzer.load(tmp_path / "broken.orc")


def test_read_only_warehouse_gets_temporary_loads(tmp_path: Path, files: dict[str, Path]) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Analyzer(path) as writer:
        writer.load(files["parquet"], "stored")
    with Analyzer(path, read_only=True) as reader:
        reader.load(files["csv"], "scratch", view=True)
        reader.load(files["orc"], "scratch2")
        assert reader.query("SELECT count(*) FROM stored JOIN scratch USING (id)").scalar() == 6
        with pytest.raises(AnalyticsError, match="read-only"):
            reader.query("CREATE TABLE nope AS SELECT 1")
    with Analyzer(path) as again:
        assert again.tables() == ["stored"]  # temporary objects did not persist
