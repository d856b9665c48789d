"""The bad-input corpus beyond malformed CSV: broken JSON lines, truncated binary files,
schema drift between files and between runs, hostile column names — and one bad file
through the engine into DuckDB, its quarantine table checked.

Every case is generated into tmp_path; each asserts its counts or its one-line error
naming the file (and the line and column where there is one).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import fastavro
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
from file_corpus import data_lines, read, reasons, write

from headrace import Context, pipeline, task
from headrace.connectors import open_destination
from headrace.connectors.sources import FileSource
from headrace.engine import Runner
from headrace.errors import ConnectorError
from headrace.state.store_base import RunState

DAY = datetime(2024, 6, 1, tzinfo=UTC)

# -- JSON and NDJSON -----------------------------------------------------------------


def test_ndjson_broken_lines_are_quarantined_alone(tmp_path: Path) -> None:
    content = (
        b'{"id": 1, "name": "a"}\n'
        b'{"id": 2, "name": "b"\n'  # line 2: cut short
        b"\n"  # line 3: blank
        b'{"id": 3, "name": "c"}\n'
        b"[4, 5]\n"  # line 5: not an object
        b'{"id": 6, "name": "\xff"}\n'  # line 6: not UTF-8
        b'{"id": "seven", "name": "g"}\n'  # line 7: id changes type
        b'{"id": 8, "name": "h"}'  # last line without a line end
    )
    path = write(tmp_path, "events.ndjson", content)
    table, src, report = read(path)
    assert table.column("id").to_pylist() == [1, 3, 8]  # was: the whole file refused
    assert (report.lines, report.loaded, report.quarantined, report.blank) == (8, 3, 4, 1)
    found = reasons(src)
    assert found[2].reason == "not valid JSON: Expecting ',' delimiter (column 22)"
    assert found[2].text == '{"id": 2, "name": "b"'
    assert found[5].reason == "a JSON object is expected, found list"
    assert found[6].reason == "not valid utf-8: byte 20 of the line"
    assert found[7].reason == "field 'id': 'seven' is not int64"


def test_ndjson_lines_across_pieces_and_a_field_the_first_lines_lacked(tmp_path: Path) -> None:
    lines = [f'{{"id": {i}, "note": "{"x" * 100}"}}' for i in range(60_000)]  # ~6.5 MB
    lines[50_000] = '{"id": 50000, "extra": 1}'
    lines[55_000] = '{"id": 55000'
    path = write(tmp_path, "big.ndjson", "\n".join(lines) + "\n")
    table, src, report = read(path)
    assert (report.lines, report.loaded, report.quarantined) == (60_000, 59_998, 2)
    assert sorted(reasons(src)) == [50_001, 55_001]
    assert reasons(src)[50_001].reason == (
        "field 'extra' is not among the file's fields (id, note), taken from its first lines"
    )
    assert reasons(src)[55_001].reason.startswith("not valid JSON: Expecting ',' delimiter")
    assert table.num_rows == 59_998


def test_random_ndjson_damage_is_accounted_line_by_line(tmp_path: Path) -> None:
    """80 seeded files mixing good objects, cut lines, other types, arrays and blanks."""
    choices = ['{"id": 1, "n": "a"}', '{"id": 2', '{"id": "x"}', "[1]", "", '{"n": null}', "nul"]
    for seed in range(80):
        rnd = random.Random(seed)
        lines = ['{"id": 0, "n": "first"}'] + [
            rnd.choice(choices) for _ in range(rnd.randint(0, 40))
        ]
        text = "\n".join(lines) + rnd.choice(["", "\n"])
        path = write(tmp_path, f"r{seed}.ndjson", text)
        physical = text.split("\n")[: -1 if text.endswith("\n") else None]
        table, src, report = read(path)
        assert report.lines == len(physical), seed
        assert report.blank == physical.count(""), seed
        loadable = (lines[0], choices[0], choices[5])
        assert report.loaded == sum(line in loadable for line in physical), seed
        assert all(m.line and physical[m.line - 1] == m.text for m in src.malformed), seed


def test_an_empty_ndjson_file_fails_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.ndjson", "\n\n")
    with pytest.raises(ConnectorError, match=r"empty.ndjson: no JSON object in the file"):
        FileSource(path).read()
    table, _, report = read(path, types={"id": pa.int64()})
    assert table.num_rows == 0 and report.blank == 2


def test_a_json_array_cut_short_names_line_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.json", '[{"a": 1},\n {"a": 2},\n {"a": ')
    with pytest.raises(ConnectorError, match=r"cut.json:3: not valid JSON"):
        FileSource(path).read()


# -- truncated binary files ----------------------------------------------------------

ROWS = pa.table({"id": list(range(20_000)), "name": [f"n{i}" for i in range(20_000)]})


def _write_format(path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(ROWS, path, row_group_size=2_000)
    elif fmt == "orc":
        orc.write_table(ROWS, path)
    elif fmt == "arrow-file":
        feather.write_feather(ROWS, path, chunksize=2_000)
    elif fmt == "arrow-stream":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, ROWS.schema) as w:
            w.write_table(ROWS, max_chunksize=2_000)
    else:
        schema = {
            "type": "record",
            "name": "r",
            "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
        }
        with open(path, "wb") as fh:
            fastavro.writer(fh, schema, ROWS.to_pylist(), sync_interval=4_000)


@pytest.mark.parametrize(
    ("fmt", "suffix", "why"),
    [
        ("parquet", "parquet", "Parquet magic bytes not found in footer"),
        ("orc", "orc", "Failed to parse the postscript"),
        ("arrow-file", "arrow", "an Arrow IPC file without its footer"),
        ("arrow-stream", "ipc", "Expected to be able to read"),
        ("avro", "avro", "the file ends too early (truncated?)"),
    ],
)
def test_a_truncated_file_fails_with_one_line_naming_it(
    tmp_path: Path, fmt: str, suffix: str, why: str
) -> None:
    whole = tmp_path / f"whole.{suffix}"
    _write_format(whole, fmt)
    assert FileSource(whole).read().to_table().num_rows == 20_000
    cut = write(tmp_path, f"cut.{suffix}", whole.read_bytes()[: whole.stat().st_size * 3 // 5])
    with pytest.raises(ConnectorError) as caught:
        FileSource(cut).read().to_table()  # streamed formats fail when the damage is reached
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"Cannot read {cut} as ")
    assert why in message


# -- schema drift --------------------------------------------------------------------


def test_schema_drift_between_files_of_one_source(tmp_path: Path) -> None:
    write(tmp_path, "1.csv", "id,name\n1,a\n2,b\n")
    write(tmp_path, "2.csv", "id\n3\n")  # a column removed: null in its rows
    table = FileSource(tmp_path).read().to_table()
    assert table.to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": None},
    ]
    write(tmp_path, "3.csv", "id,name,email\n4,d,d@x\n")  # a column added
    with pytest.raises(
        ConnectorError,
        match=r"3.csv: column 'email': the first file of this source has no such column",
    ):
        FileSource(tmp_path).read().to_table()
    (tmp_path / "3.csv").unlink()
    write(tmp_path, "3.csv", "id,name\nfour,d\n")  # a column retyped
    with pytest.raises(ConnectorError, match=r"3.csv: column 'id' cannot be read as int64"):
        FileSource(tmp_path).read().to_table()


# -- hostile identifiers -------------------------------------------------------------

HOSTILE = ['a"b', "with space", "ünïcødé", "select", "o'clock", "drop table x;--"]


def test_hostile_column_names_read_as_given_and_load_into_duckdb(tmp_path: Path) -> None:
    header = ",".join('"' + name.replace('"', '""') + '"' for name in HOSTILE)
    path = write(tmp_path, "hostile.csv", header + "\n1,2,3,4,5,6\n")
    table, _, report = read(path)
    assert table.schema.names == HOSTILE and report.loaded == 1
    dest = open_destination(f"duckdb:///{tmp_path / 'w.duckdb'}")
    dest.write(table, "hostile")
    back = dest.query(f"SELECT * FROM {dest.q('hostile')}")
    assert back.schema.names[: len(HOSTILE)] == HOSTILE
    assert back.to_pylist()[0]["drop table x;--"] == 6


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("id,name,id", r"dup.csv:1: column name 'id' appears twice \(columns 1 and 3\)"),
        ("id,,name", r"dup.csv:1: column 2 has an empty name; pass column_names="),
        ('id," ",name', r"dup.csv:1: column 2 has an empty name"),
    ],
)
def test_duplicate_and_empty_column_names_fail_with_one_line(
    tmp_path: Path, header: str, error: str
) -> None:
    path = write(tmp_path, "dup.csv", header + "\n1,2,3\n")
    with pytest.raises(ConnectorError, match=error):
        FileSource(path).read()
    table, _, _ = read(path, column_names=["id", "x", "y"])  # the way out the error names
    assert table.schema.names == ["id", "x", "y"]


def test_duplicate_and_empty_names_in_a_parquet_file_are_refused(tmp_path: Path) -> None:
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", "id"])
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(ConnectorError, match=r"dup.parquet: column name 'id' appears twice"):
        FileSource(tmp_path / "dup.parquet").read()
    empty = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", ""])
    pq.write_table(empty, tmp_path / "empty.parquet")
    with pytest.raises(ConnectorError, match=r"empty.parquet: column 2 has an empty name"):
        FileSource(tmp_path / "empty.parquet").read()
    hostile = pa.Table.from_arrays([pa.array([1])] * len(HOSTILE), names=HOSTILE)
    pq.write_table(hostile, tmp_path / "hostile.parquet")
    assert FileSource(tmp_path / "hostile.parquet").read().to_table().schema.names == HOSTILE


# -- through the engine into DuckDB --------------------------------------------------


@task
def load_csv(ctx: Context) -> dict[str, int]:
    """Read the file, load its good rows and its quarantined lines in one transaction."""
    source = FileSource(ctx.params["path"], types={"amount": pa.float64()})
    extract = source.read()
    good = extract.to_table()
    kept = extract.quarantine_table()
    result = open_destination(ctx.params["warehouse"]).write(
        good, "orders", quarantine=kept if kept.num_rows else None
    )
    (report,) = extract.reports
    return {
        "lines": report.lines,
        "loaded": result.rows_loaded,
        "quarantined": result.rows_quarantined,
    }


@pipeline(name="csv_corpus", params={"path": "", "warehouse": ""})
def csv_corpus() -> None:
    load_csv()


def test_a_bad_file_through_the_engine_into_duckdb(store, settings, tmp_path: Path) -> None:
    lines = data_lines()
    lines[51] = '51,"abc,1.0'  # runaway quote
    lines[60] = "60,name 60"  # too few fields
    lines[70] = "70,name 70,NaN"  # NaN in a float column: kept as NaN
    lines[80] = "80,name 80,eighty"  # not a number
    raw = ("\n".join(lines) + "\n").encode().replace(b"name 90", b"name \xff90")
    path = write(tmp_path, "orders.csv", raw)
    warehouse = tmp_path / "warehouse.duckdb"

    result = Runner(store, executor="inprocess", settings=settings).run(
        csv_corpus, DAY, params={"path": str(path), "warehouse": f"duckdb:///{warehouse}"}
    )

    assert result.state == RunState.SUCCESS
    assert result.result_of("load_csv") == {"lines": 101, "loaded": 96, "quarantined": 4}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM orders ORDER BY id").fetchall()]
        kept = con.execute(
            "SELECT file, line, reason, text FROM orders_quarantine ORDER BY line"
        ).fetchall()
        nan = con.execute("SELECT isnan(amount) FROM orders WHERE id = 70").fetchone()
    assert ids == [i for i in range(1, 101) if i not in (51, 60, 80, 90)]
    assert nan == (True,)
    assert [(Path(f).name, line) for f, line, _, _ in kept] == [
        ("orders.csv", 52),
        ("orders.csv", 61),
        ("orders.csv", 81),
        ("orders.csv", 91),
    ]
    why = {line: reason for _, line, reason, _ in kept}
    assert why[52].startswith("unterminated quote in column 'name'")
    assert why[61] == "expected 3 fields, found 2"
    assert why[81] == "column 'amount': 'eighty' is not double"
    assert why[91] == "not valid utf-8: byte 9 of the line is b'\\xff'"
    assert kept[3][3] == "90,name \\xff90,90.5"


def test_schema_drift_between_runs_through_the_engine(store, settings, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    runner = Runner(store, executor="inprocess", settings=settings)
    runs = [
        "id,name,amount\n1,a,1.5\n",
        "id,name,amount,email\n2,b,2.5,b@x\n",  # a column added: the table gains it
        "id,amount\n3,3.5\n",  # a column removed: null in the new rows
        "id,name,amount\nfour,d,4.5\n",  # id retyped to text: refused, naming the column
    ]
    states = []
    for n, content in enumerate(runs):
        path = write(tmp_path, f"run{n}.csv", content)
        result = runner.run(
            csv_corpus,
            datetime(2024, 6, 1 + n, tzinfo=UTC),
            params={"path": str(path), "warehouse": f"duckdb:///{warehouse}"},
        )
        states.append(result.state)
    assert states == [RunState.SUCCESS] * 3 + [RunState.FAILED]
    assert "column 'id'" in (result.task("load_csv").error or "")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT id, name, amount, email FROM orders ORDER BY id").fetchall()
    assert rows == [(1, "a", 1.5, None), (2, "b", 2.5, "b@x"), (3, None, 3.5, None)]


def test_bad_lines_keep_their_reasons_when_the_file_is_a_glob(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", "id,n\n1,2\n2,x\n")
    write(tmp_path, "b.csv", "id,n\n3,4\n4\n")
    src = FileSource(tmp_path / "*.csv", types={"n": pa.int64()})
    assert src.read().to_table().column("id").to_pylist() == [1, 3]
    assert [(Path(m.file).name, m.line) for m in src.malformed] == [("a.csv", 3), ("b.csv", 3)]
    assert [r.quarantined for r in src.reports] == [1, 1]
    assert reasons(src)  # every reason one line
