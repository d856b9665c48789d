"""Results: each table kind staged as Parquet (zstd) and handed downstream as the same kind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headrace.engine import Runner
from headrace.engine.staging import ResultTypeError, load_result, stage_value
from headrace.state.store_base import RunState

DAY = datetime(2024, 3, 5, tzinfo=UTC)

EXPECTED = {
    "got_arrow": {"kind": "pyarrow.Table", "rows": 3},
    "got_stream": {"kind": "pyarrow.RecordBatchReader", "rows": 3},
    "got_polars": {"kind": "polars.DataFrame", "rows": 3},
    "got_lazy": {"kind": "polars.LazyFrame", "rows": 2},
    "got_pandas": {"kind": "pandas.DataFrame", "rows": 3},
}


def test_each_table_kind_reaches_downstream_as_the_same_kind(store, settings, pipelines) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        pipelines("tables", "tables"), DAY
    )

    assert result.state == RunState.SUCCESS
    assert {tid: result.result_of(tid) for tid in EXPECTED} == EXPECTED
    staging = Path(settings.home) / "staging" / "tables" / result.run_id
    for producer, rows in [
        ("make_arrow", 3),
        ("make_stream", 3),
        ("make_polars", 3),
        ("make_lazy", 2),
        ("make_pandas", 3),
    ]:
        ti = result.task(producer)
        assert ti.result_kind == "table"
        assert (
            ti.result_path is not None and Path(ti.result_path) == staging / f"{producer}.parquet"
        )
        assert ti.rows == rows
        meta = pq.ParquetFile(ti.result_path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    frame = result.result_of("make_pandas")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [1, 2, 3]  # the index survives staging


def test_a_record_batch_reader_is_written_batch_by_batch(tmp_path: Path) -> None:
    batches = [pa.record_batch({"x": list(range(i * 1000, (i + 1) * 1000))}) for i in range(5)]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, iter(batches))

    ref, rows = stage_value(reader, tmp_path / "t.parquet", pipeline="p", task_id="t")

    assert rows == 5000
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 5
    back = load_result(ref)
    assert isinstance(back, pa.RecordBatchReader)
    assert back.read_all().column("x").to_pylist() == list(range(5000))


def test_json_values_stay_in_the_store_and_others_are_refused(tmp_path: Path) -> None:
    ref, rows = stage_value(
        {"a": [1, 2.5, "x", None]}, tmp_path / "v.parquet", pipeline="p", task_id="t"
    )
    assert (ref.kind, ref.value, rows) == ("json", {"a": [1, 2.5, "x", None]}, None)
    assert not (tmp_path / "v.parquet").exists()

    with pytest.raises(
        ResultTypeError, match=r"pipeline 'p', task 't'.*datetime\.datetime.*ISO strings"
    ):
        stage_value(datetime(2024, 1, 1), tmp_path / "w.parquet", pipeline="p", task_id="t")
    with pytest.raises(ResultTypeError, match="JSON-serialisable"):
        stage_value(float("nan"), tmp_path / "w.parquet", pipeline="p", task_id="t")
