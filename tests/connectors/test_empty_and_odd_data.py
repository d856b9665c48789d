"""Empty frames, untyped columns and hostile text load the same on every destination."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from headrace.errors import ConnectorError

SCHEMA = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(10, 2)), ("note", pa.string())])


@pytest.mark.parametrize("kind", ["arrow", "polars", "pandas_typed", "pandas_object", "reader"])
def test_zero_rows_load_and_create_the_table(destination, kind):
    """Defect: a zero-row pandas frame failed on PostgreSQL ("Can't map Arrow type 'na'")."""
    data = {
        "arrow": SCHEMA.empty_table(),
        "polars": pl.from_arrow(SCHEMA.empty_table()),
        "pandas_typed": pd.DataFrame(
            {"id": pd.Series([], dtype="int64"), "note": pd.Series([], dtype="string")}
        ),
        "pandas_object": pd.DataFrame(
            {"id": pd.Series([], dtype="int64"), "note": pd.Series([], dtype=object)}
        ),
        "reader": pa.RecordBatchReader.from_batches(SCHEMA, iter([])),
    }[kind]
    result = destination.write(data, "empty")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (0, 0, 0)
    columns = destination._columns(destination._connect(), "empty")
    assert columns is not None and "id" in columns
    if kind in ("arrow", "polars", "reader"):
        assert columns["amount"].lower().replace(" ", "") in ("decimal(10,2)", "numeric(10,2)")
    if kind == "pandas_object":  # an untyped column is not created; the first values add it
        assert "note" not in columns
        destination.write(pd.DataFrame({"id": [1], "note": ["x"]}), "empty")
        assert destination.query(f"SELECT note FROM {destination.q('empty')}").column(
            0
        ).to_pylist() == ["x"]


def test_nul_byte_and_invalid_utf8_are_quarantined_naming_the_column(destination):
    """Defect: a NUL byte was stored as-is in DuckDB and failed the whole PostgreSQL load."""
    bad_utf8 = pa.StringArray.from_buffers(
        3,
        pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x06\x00\x00\x00"),
        pa.py_buffer(b"okok\xff\xfe"),
    )
    data = pa.table({"id": [1, 2, 3], "note": ["fine", "nul\x00here", None], "raw": bad_utf8})
    result = destination.write(data, "texts")
    assert (result.rows_loaded, result.rows_quarantined) == (1, 2)
    assert destination.query(f"SELECT id FROM {destination.q('texts')}").column(0).to_pylist() == [
        1
    ]
    reasons = destination.query(
        f"SELECT id, note, _hr_reason FROM {destination.q('texts_quarantine')} ORDER BY id"
    ).to_pylist()
    assert (
        reasons[0]["note"] == "nul\ufffdhere"
        and "column 'note': text holds a NUL byte" in reasons[0]["_hr_reason"]
    )
    assert reasons[1]["id"] == 3 and "column 'raw': invalid UTF-8" in reasons[1]["_hr_reason"]


def test_text_policy_null_and_fail(destination):
    from headrace.connectors.fidelity import Fidelity, UnrepresentableValueError

    data = pa.table({"id": [1, 2], "note": ["a", "b\x00"]})
    destination.fidelity = Fidelity(text="null")  # as DuckDBDestination(..., fidelity=...) sets it
    result = destination.write(data, "t_null")
    assert (result.rows_loaded, result.values_nulled) == (2, 1)
    destination.fidelity = Fidelity(text="fail")
    with pytest.raises(UnrepresentableValueError) as err:
        destination.write(data, "t_fail")
    assert (err.value.column, err.value.row) == ("note", 1)


def test_null_array_elements_are_never_stored_as_zero(destination):
    """Found by the matrix: the PostgreSQL driver stores a NULL array element as 0."""
    data = pa.table({"id": [1], "xs": pa.array([[1, None]], pa.list_(pa.int64()))})
    if destination.dialect == "duckdb":
        destination.write(data, "arrays")
        assert destination.query(f"SELECT xs FROM {destination.q('arrays')}").column(
            0
        ).to_pylist() == [[1, None]]
        return
    good = pa.table({"id": [2], "xs": pa.array([[1, 2]], pa.list_(pa.int64()))})
    refused = [
        (lambda: destination.write(data, "arrays"), "arrays"),
        (lambda: destination.write(data.to_reader(), "arrays"), "arrays"),  # a stream
        (lambda: destination.write(good, "arrays", quarantine=data), "arrays_quarantine"),
    ]
    for write, table in refused:
        with pytest.raises(ConnectorError, match="an array holds NULL elements") as info:
            write()
        assert info.value.fields() == {
            "table": table, "column": "xs", "connection": destination.where,
        }, info.value  # fmt: skip
    assert destination.columns("arrays") is None  # nothing of the refused loads stayed
