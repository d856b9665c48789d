"""File sources on real files of every format: CSV (with malformed lines), JSON, NDJSON,
Parquet, Avro, ORC and Arrow IPC, from a path, a glob or a folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from headrace.connectors import FileSource
from headrace.errors import ConnectorError

ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "Ann", "ts": dt.datetime(2024, 1, 1, 10, 0)},
    {"id": 2, "name": "Bob", "ts": dt.datetime(2024, 1, 2, 11, 30)},
]


def write_all(folder: Path) -> dict[str, Path]:
    table = pa.Table.from_pylist(ROWS)
    paths = {
        "parquet": folder / "r.parquet",
        "orc": folder / "r.orc",
        "arrow": folder / "r.arrow",
        "ndjson": folder / "r.ndjson",
        "json": folder / "r.json",
        "avro": folder / "r.avro",
        "csv": folder / "r.csv",
    }
    pq.write_table(table, paths["parquet"])
    orc.write_table(table, paths["orc"])
    feather.write_feather(table, paths["arrow"])
    records = [{**r, "ts": r["ts"].isoformat()} for r in ROWS]
    paths["ndjson"].write_text("".join(json.dumps(r) + "\n" for r in records))
    paths["json"].write_text(json.dumps(records))
    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string"]},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
    with open(paths["avro"], "wb") as fh:
        fastavro.writer(fh, schema, ROWS)
    paths["csv"].write_text("id,name,ts\n1,Ann,2024-01-01 10:00:00\n2,Bob,2024-01-02 11:30:00\n")
    return paths


@pytest.mark.parametrize("fmt", ["parquet", "orc", "arrow", "ndjson", "json", "avro", "csv"])
def test_every_format_reads_the_same_rows(tmp_path: Path, fmt: str) -> None:
    path = write_all(tmp_path)[fmt]
    src = FileSource(path, types={"ts": pa.timestamp("us")})
    table = src.read().to_table()
    assert table.column("id").to_pylist() == [1, 2]
    assert table.column("name").to_pylist() == ["Ann", "Bob"]
    assert table.column("ts").to_pylist() == [r["ts"] for r in ROWS]
    assert src.malformed == []


def test_glob_and_folder_read_every_file_in_order(tmp_path: Path) -> None:
    for i in range(3):
        pq.write_table(pa.table({"id": [i * 10, i * 10 + 1]}), tmp_path / f"part-{i}.parquet")
    (tmp_path / "notes.md").write_text("not data")
    assert FileSource(tmp_path / "part-*.parquet").read().to_table().column("id").to_pylist() == [
        0,
        1,
        10,
        11,
        20,
        21,
    ]
    assert FileSource(tmp_path).read().to_table().num_rows == 6
    with pytest.raises(ConnectorError, match="No files found"):
        FileSource(tmp_path / "*.csv").read()


def test_batches_are_bounded(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": list(range(1000))}), tmp_path / "big.parquet")
    seen: list[int] = []
    sizes = [
        b.num_rows
        for b in FileSource(tmp_path / "big.parquet", batch_rows=100).read(progress=seen.append)
    ]
    assert sum(sizes) == 1000 and max(sizes) <= 100
    assert seen == list(range(100, 1001, 100))  # progress after every batch


def test_csv_malformed_lines_are_kept_with_line_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "id;name;age\n"
        '1;"Smith; John";30\n'
        "2;Bob\n"  # line 3: too few fields
        "3;Cy;abc\n"  # line 4: age not an integer
        "4;Di;41;extra\n"  # line 5: too many fields
        "5;Ed;\n"  # empty age is null, not an error
    )
    src = FileSource(path, delimiter=";", types={"age": pa.int64()})
    table = src.read().to_table()
    assert table.column("id").to_pylist() == [1, 5]
    assert table.column("name").to_pylist() == ["Smith; John", "Ed"]
    assert table.column("age").to_pylist() == [30, None]
    bad = {m.line or 0: m for m in src.malformed}
    assert sorted(bad) == [3, 4, 5]
    assert "expected 3 fields, found 2" in bad[3].reason and bad[3].text == "2;Bob"
    assert "'age'" in bad[4].reason and "abc" in bad[4].reason
    assert "found 4" in bad[5].reason
    # rows in = rows read + rows kept aside
    assert table.num_rows + len(src.malformed) == 5


def test_csv_encoding_quoting_and_no_header(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("1|'Zoë|Ý'\n2|'Ümit'\n".encode("latin-1"))
    src = FileSource(
        path,
        delimiter="|",
        quote_char="'",
        encoding="latin-1",
        header=False,
        column_names=["id", "name"],
    )
    assert src.read().to_table().to_pylist() == [
        {"id": 1, "name": "Zoë|Ý"},
        {"id": 2, "name": "Ümit"},
    ]


def test_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.weird").write_text("?")
    with pytest.raises(ConnectorError, match="x.weird.*format="):
        FileSource(tmp_path / "x.weird").read()
    with pytest.raises(ConnectorError, match="Did you mean 'parquet'"):
        FileSource(tmp_path / "x.weird", format="parket")
    pq.write_table(pa.table({"id": [1]}), tmp_path / "a.parquet")
    with pytest.raises(ConnectorError, match="column 'idd'.*Did you mean 'id'"):
        FileSource(tmp_path / "a.parquet", types={"idd": pa.int32()}).read()
    (tmp_path / "bad.json").write_text('[{"a": 1}, {"a": ]')
    with pytest.raises(ConnectorError, match="bad.json:1"):
        FileSource(tmp_path / "bad.json").read()
