"""Exports to Parquet (codecs, partitions), CSV, JSON and NDJSON, read back with other readers."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from headrace.analytics import Analyzer
from headrace.errors import AnalyticsError

from .conftest import HOSTILE_COLUMN, ROWS


def _codec(path: Path) -> str:
    return pq.ParquetFile(path).metadata.row_group(0).column(0).compression


def test_parquet_defaults_to_zstd_and_round_trips(
    analyzer: Analyzer, sales: str, tmp_path: Path
) -> None:
    info = analyzer.export(sales, tmp_path / "out it's.parquet")
    assert info.rows == 6 and info.format == "parquet" and info.codec == "zstd"
    assert _codec(info.path) == "ZSTD"
    back = pq.read_table(info.path)
    assert back.column_names == ["id", "category", "amount", "qty", "name", HOSTILE_COLUMN]
    assert back.to_pylist() == ROWS


@pytest.mark.parametrize(
    ("codec", "expected"),
    [("snappy", "SNAPPY"), ("gzip", "GZIP"), ("uncompressed", "UNCOMPRESSED")],
)
def test_parquet_codec_option(
    analyzer: Analyzer, sales: str, tmp_path: Path, codec: str, expected: str
) -> None:
    info = analyzer.export(sales, tmp_path / "o.parquet", codec=codec)
    assert _codec(info.path) == expected


def test_csv_has_a_header_and_unicode(analyzer: Analyzer, sales: str, tmp_path: Path) -> None:
    info = analyzer.export(sales, tmp_path / "o.csv")
    with info.path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "category", "amount", "qty", "name", HOSTILE_COLUMN]
    assert rows[3][4] == "李雷" and len(rows) == 7


def test_gzip_csv_and_json_array_and_ndjson(analyzer: Analyzer, sales: str, tmp_path: Path) -> None:
    gz = analyzer.export(sales, tmp_path / "o.csv.gz", codec="gzip")
    with gzip.open(gz.path, "rt", encoding="utf-8") as fh:
        assert fh.readline().startswith("id,category")
    arr = analyzer.export(sales, tmp_path / "o.json")
    assert json.loads(arr.path.read_text(encoding="utf-8")) == ROWS
    nd = analyzer.export(sales, tmp_path / "o.ndjson")
    assert [json.loads(line) for line in nd.path.read_text(encoding="utf-8").splitlines()] == ROWS


def test_partitioned_parquet_by_a_hostile_column(
    analyzer: Analyzer, sales: str, tmp_path: Path
) -> None:
    info = analyzer.export(sales, tmp_path / "parts", partition_by=[HOSTILE_COLUMN])
    # Three values, the empty string, and null in Hive's default partition.
    assert info.rows == 6 and len(info.files) == 4
    assert any("__HIVE_DEFAULT_PARTITION__" in str(p) for p in info.files)
    # The folder reads back with the partition column, nothing lost.
    analyzer.load_parquet(f"{info.path}/**/*.parquet", "back", hive_partitioning=True)
    assert analyzer.query('SELECT count(*) FROM "back"').scalar() == 6
    dataset = ds.dataset(info.path, format="parquet", partitioning="hive")
    assert dataset.count_rows() == 6


def test_export_query_with_bound_parameters(analyzer: Analyzer, sales: str, tmp_path: Path) -> None:
    info = analyzer.export_query(
        f'SELECT id, name FROM "{sales}" WHERE category = ? ORDER BY id',
        tmp_path / "q.parquet",
        ["toys"],
    )
    assert pq.read_table(info.path).to_pylist() == [
        {"id": 1, "name": "Zoë"}, {"id": 3, "name": "李雷"}, {"id": 5, "name": "😀 emoji"},
    ]  # fmt: skip
    named = analyzer.export_query(
        f'SELECT id FROM "{sales}" WHERE id > $n', tmp_path / "n.csv", {"n": 4}
    )
    assert named.rows == 2


def test_export_refuses_to_overwrite_unless_asked(
    analyzer: Analyzer, sales: str, tmp_path: Path
) -> None:
    target = tmp_path / "o.parquet"
    analyzer.export(sales, target)
    with pytest.raises(AnalyticsError, match="already exists.*overwrite=True"):
        analyzer.export(sales, target)
    analyzer.query("CREATE TABLE small AS SELECT 1 AS x, 'a' AS y")
    assert analyzer.export("small", target, overwrite=True).rows == 1
    parts = tmp_path / "parts"
    analyzer.export(sales, parts, partition_by=["category"])
    analyzer.export("small", parts, partition_by=["x"], overwrite=True)
    assert [p.parent.name for p in parts.rglob("*.parquet")] == ["x=1"]  # old partitions gone


def test_export_errors(analyzer: Analyzer, sales: str, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match="Did you mean 'zstd'"):
        analyzer.export(sales, tmp_path / "o.parquet", codec="zstdd")
    with pytest.raises(AnalyticsError, match="not available for csv"):
        analyzer.export(sales, tmp_path / "o.csv", codec="snappy")
    with pytest.raises(AnalyticsError, match="Parquet only"):
        analyzer.export(sales, tmp_path / "o.csv", partition_by=["category"])
    with pytest.raises(AnalyticsError, match="pass format="):
        analyzer.export(sales, tmp_path / "o.xlsx")
    with pytest.raises(AnalyticsError, match="Did you mean 'category'"):
        analyzer.export(sales, tmp_path / "p", partition_by=["categroy"])


def test_empty_table_exports_a_readable_file(analyzer: Analyzer, tmp_path: Path) -> None:
    analyzer.query("CREATE TABLE e (x INTEGER, s VARCHAR)")
    info = analyzer.export("e", tmp_path / "e.parquet")
    assert info.rows == 0 and pq.read_table(info.path).schema.names == ["x", "s"]
    csv_info = analyzer.export("e", tmp_path / "e.csv")
    assert csv_info.path.read_text(encoding="utf-8").strip() == "x,s"


def test_overwrite_never_deletes_a_folder_of_other_files(
    analyzer: Analyzer, sales: str, tmp_path: Path
) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(AnalyticsError, match="needs a file path"):
        analyzer.export(sales, precious, format="csv", overwrite=True)
    with pytest.raises(AnalyticsError, match=r"Not replacing folder.*notes\.txt"):
        analyzer.export(sales, precious, partition_by=["category"], overwrite=True)
    assert (precious / "notes.txt").read_text(encoding="utf-8") == "keep me"
