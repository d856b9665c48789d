"""Each table kind a task may return, and what its downstream task receives."""

from __future__ import annotations

from collections.abc import Sized

import pandas as pd
import polars as pl
import pyarrow as pa

from headrace import pipeline, task


def _arrow() -> pa.Table:
    return pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})


@task
def make_arrow() -> pa.Table:
    return _arrow()


@task
def make_stream() -> pa.RecordBatchReader:
    batches = _arrow().to_batches(max_chunksize=1)
    return pa.RecordBatchReader.from_batches(batches[0].schema, iter(batches))


@task
def make_polars() -> pl.DataFrame:
    return pl.DataFrame(_arrow())


@task
def make_lazy() -> pl.LazyFrame:
    return pl.DataFrame(_arrow()).lazy().filter(pl.col("id") > 1)


@task
def make_pandas() -> pd.DataFrame:
    return _arrow().to_pandas().set_index("id")


@task
def inspect_value(value: object) -> dict:
    kind = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
    if isinstance(value, pa.RecordBatchReader):
        rows = value.read_all().num_rows
    elif isinstance(value, pl.LazyFrame):
        rows = value.collect().height
    else:
        assert isinstance(value, Sized), kind
        rows = len(value)
    return {"kind": kind, "rows": rows}


@pipeline
def tables():
    inspect_value.override(task_id="got_arrow")(make_arrow())
    inspect_value.override(task_id="got_stream")(make_stream())
    inspect_value.override(task_id="got_polars")(make_polars())
    inspect_value.override(task_id="got_lazy")(make_lazy())
    inspect_value.override(task_id="got_pandas")(make_pandas())
