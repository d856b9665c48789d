"""Fixtures for the analytics tests: an in-memory analyzer and sample files of every format.

The sample rows hold what breaks naive code: a column and a table name with quotes,
spaces and SQL in them, unicode, nulls, and numbers at the edges of their types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from headrace.analytics import Analyzer

HOSTILE_TABLE = "drop table x; --"
HOSTILE_COLUMN = 'a "b"'
BIG = 9_223_372_036_854_775_807  # BIGINT max

# Six rows; the expected statistics in the tests are worked out from these by hand.
ROWS: list[dict[str, object]] = [
    {"id": 1, "category": "toys", "amount": 10.5, "qty": 1, "name": "Zoë", HOSTILE_COLUMN: "x'y"},
    {"id": 2, "category": "food", "amount": 2.25, "qty": 3, "name": "Łukasz", HOSTILE_COLUMN: None},
    {"id": 3, "category": "toys", "amount": None, "qty": 2, "name": "李雷", HOSTILE_COLUMN: "x'y"},
    {"id": 4, "category": "tools", "amount": 100.0, "qty": BIG, "name": None, HOSTILE_COLUMN: "--"},
    {
        "id": 5,
        "category": "toys",
        "amount": 7.25,
        "qty": 5,
        "name": "😀 emoji",
        HOSTILE_COLUMN: "x'y",
    },
    {"id": 6, "category": None, "amount": 0.0, "qty": None, "name": "O'Brien", HOSTILE_COLUMN: ""},
]

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("category", pa.string()),
        ("amount", pa.float64()),
        ("qty", pa.int64()),
        ("name", pa.string()),
        (HOSTILE_COLUMN, pa.string()),
    ]
)


def sample_table() -> pa.Table:
    """The sample rows as Arrow."""
    return pa.Table.from_pylist(ROWS, schema=SCHEMA)


@pytest.fixture
def analyzer() -> Iterator[Analyzer]:
    """A fresh in-memory analyzer, closed after the test."""
    with Analyzer(threads=1) as a:
        yield a


@pytest.fixture
def sales(analyzer: Analyzer) -> str:
    """The sample rows loaded as table ``drop table x; --``."""
    return analyzer.load_arrow(sample_table(), HOSTILE_TABLE)


def write_all_formats(folder: Path, table: pa.Table, stem: str = "sample") -> dict[str, Path]:
    """Write ``table`` in every format the analyzer reads; returns format -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": folder / f"{stem}.csv",
        "parquet": folder / f"{stem}.parquet",
        "json": folder / f"{stem}.json",
        "ndjson": folder / f"{stem}.ndjson",
        "avro": folder / f"{stem}.avro",
        "orc": folder / f"{stem}.orc",
        "arrow": folder / f"{stem}.arrow",
        "arrows": folder / f"{stem}.arrows",
    }
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"])
    rows = table.to_pylist()
    paths["json"].write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    paths["ndjson"].write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    avro_schema = {
        "type": "record",
        "name": "sample",
        "fields": [
            {
                "name": f.name if f.name.isidentifier() else "weird",
                "type": ["null", _avro_type(f.type)],
            }
            for f in table.schema
        ],
    }
    renamed = [{(k if k.isidentifier() else "weird"): v for k, v in r.items()} for r in rows]
    with paths["avro"].open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(avro_schema), renamed)
    orc.write_table(table, paths["orc"])
    with pa.ipc.new_file(paths["arrow"], table.schema) as writer:
        writer.write_table(table)
    with pa.ipc.new_stream(paths["arrows"], table.schema) as writer:
        writer.write_table(table)
    return paths


def _avro_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "long"
    if pa.types.is_floating(t):
        return "double"
    return "string"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The sample rows in every format, in a folder whose name has a quote and a space."""
    return write_all_formats(tmp_path / "it's data", sample_table())
