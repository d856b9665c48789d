"""Task results: tables staged as Parquet (zstd), small values as JSON, loaded lazily.

Layout: ``<home>/staging/<pipeline>/<run_id>/<task_id>[.<map_index>].parquet`` and, for
rows that checks quarantined, ``...quarantine.parquet`` beside it. Files are written
to a temporary name and renamed, so a killed task never leaves a half file behind.

What a downstream task receives is the kind the upstream returned:

=====================  ==========================================================
upstream returned      downstream receives
=====================  ==========================================================
``pa.Table``           ``pa.Table`` (memory-mapped read of the Parquet file)
``pa.RecordBatchReader``  ``pa.RecordBatchReader`` streaming the file batch by batch
``pl.DataFrame``       ``pl.DataFrame``
``pl.LazyFrame``       ``pl.LazyFrame`` (``pl.scan_parquet``: nothing read until collected)
``pandas.DataFrame``   ``pandas.DataFrame`` (index kept)
Spark ``DataFrame``    Spark ``DataFrame`` in a process with a Spark session, else
                       ``pl.LazyFrame``; staged by Spark as a Parquet folder
                       (:mod:`headrace.executors.spark`), never collected to the driver
JSON value / None      the same value
=====================  ==========================================================
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from headrace.errors import EngineError, TerminalError
from headrace.executors.executor_base import ResultRef
from headrace.executors.spark import is_spark_frame, read_spark, write_spark
from headrace.extras import require

COMPRESSION = "zstd"
TABLE_FORMATS = ("arrow", "arrow_stream", "polars", "polars_lazy", "pandas", "spark")


class ResultTypeError(EngineError, TerminalError):
    """A task returned a value that is neither a table nor JSON-serialisable."""


def staging_dir(home: str | Path, pipeline: str, run_id: str) -> Path:
    """The folder holding one run's staged results."""
    return Path(home) / "staging" / pipeline / run_id


def result_path(staging: str | Path, task_id: str, map_index: int, suffix: str = "parquet") -> Path:
    """The staged file of one task instance (``suffix="quarantine.parquet"`` for quarantined rows)."""
    name = task_id if map_index < 0 else f"{task_id}.{map_index}"
    return Path(staging) / f"{name}.{suffix}"


def table_format(value: Any) -> str | None:
    """The table kind of ``value`` (see :data:`TABLE_FORMATS`), or None if it is not a table."""
    if isinstance(value, pa.Table | pa.RecordBatch):
        return "arrow"
    if isinstance(value, pa.RecordBatchReader):
        return "arrow_stream"
    pl = sys.modules.get("polars")
    if pl is not None:
        if isinstance(value, pl.DataFrame):
            return "polars"
        if isinstance(value, pl.LazyFrame):
            return "polars_lazy"
    pd = sys.modules.get("pandas")  # only if the task itself imported pandas
    if pd is not None and isinstance(value, pd.DataFrame):
        return "pandas"
    if is_spark_frame(value):
        return "spark"
    return None


def to_arrow(value: Any, fmt: str) -> pa.Table:
    """Materialise a table result as one Arrow table (for checks)."""
    if fmt == "arrow":
        return value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
    if fmt == "arrow_stream":
        return value.read_all()
    if fmt == "polars":
        return value.to_arrow()
    if fmt == "polars_lazy":
        return value.collect().to_arrow()
    if fmt == "spark":  # checks on a Spark result judge rows on the driver
        return value.toArrow()
    return pa.Table.from_pandas(value)


def stage_value(
    value: Any, path: Path, *, pipeline: str, task_id: str
) -> tuple[ResultRef, int | None]:
    """Stage a task's return value: a table to Parquet at ``path``, anything else as JSON.

    Returns:
        The reference to hand downstream and the number of rows (tables only).
    """
    if value is None:
        return ResultRef("none"), None
    fmt = table_format(value)
    if fmt is not None:
        rows = write_table(value, fmt, path)
        return ResultRef("table", path=str(path), format=fmt), rows
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultTypeError(
            f"returned a {type(value).__module__}."
            f"{type(value).__qualname__}, which is neither a table (Arrow, Polars, pandas) nor "
            f"JSON-serialisable ({exc}); return a table, or plain str/int/float/bool/list/dict "
            "values (dates as ISO strings)",
            pipeline=pipeline,
            task=task_id,
        ) from exc
    return ResultRef("json", value=value), None


def write_table(value: Any, fmt: str, path: Path) -> int:
    """Write a table result to Parquet (zstd) atomically; return its row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "spark":  # Spark's executors write a Parquet folder; nothing reaches the driver
        return write_spark(value, path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "arrow":
            table = value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
            pq.write_table(table, tmp, compression=COMPRESSION)
            rows = table.num_rows
        elif fmt == "arrow_stream":
            # Batch by batch, so memory stays bounded by one batch whatever the size.
            rows = 0
            with pq.ParquetWriter(tmp, value.schema, compression=COMPRESSION) as writer:
                for batch in value:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        elif fmt == "polars":
            value.write_parquet(tmp, compression=COMPRESSION)
            rows = value.height
        elif fmt == "polars_lazy":
            value.sink_parquet(tmp, compression=COMPRESSION)  # streaming engine
            rows = pq.ParquetFile(tmp).metadata.num_rows
        else:  # pandas; the index goes into the schema metadata and comes back on read
            table = pa.Table.from_pandas(value)
            pq.write_table(table, tmp, compression=COMPRESSION)
            rows = table.num_rows
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def load_result(ref: ResultRef) -> Any:
    """The value a downstream task receives for ``ref`` (tables opened lazily)."""
    if ref.kind == "none":
        return None
    if ref.kind == "json":
        return ref.value
    if ref.kind == "list":
        return [load_result(item) for item in ref.items or []]
    assert ref.path is not None
    return read_table(ref.path, ref.format or "arrow")


def read_table(path: str | Path, fmt: str) -> Any:
    """Open a staged Parquet file (or a Spark task's Parquet folder) as the table kind ``fmt``."""
    if fmt == "spark":
        if "pyspark" in sys.modules:
            return read_spark(path)
        fmt = "polars_lazy"  # a Spark result read where no Spark runs: scanned lazily
    if Path(path).is_dir():  # staged by Spark
        return _read_folder(Path(path), fmt)
    if fmt == "arrow":
        return pq.read_table(path, memory_map=True)
    if fmt == "arrow_stream":
        file = pq.ParquetFile(path)
        return pa.RecordBatchReader.from_batches(file.schema_arrow, _batches(file))
    if fmt in ("polars", "polars_lazy"):
        pl = _polars()
        return pl.scan_parquet(path) if fmt == "polars_lazy" else pl.read_parquet(path)
    return pq.read_table(path).to_pandas()


def _read_folder(path: Path, fmt: str) -> Any:
    """A Parquet folder (a Spark task's result) as the table kind ``fmt``."""
    import pyarrow.dataset as ds

    if fmt in ("polars", "polars_lazy"):
        pl = _polars()
        pattern = str(path / "*.parquet")
        return pl.scan_parquet(pattern) if fmt == "polars_lazy" else pl.read_parquet(pattern)
    dataset = ds.dataset(str(path), format="parquet")
    if fmt == "arrow_stream":
        return pa.RecordBatchReader.from_batches(dataset.schema, dataset.to_batches())
    table = dataset.to_table()
    return table.to_pandas() if fmt == "pandas" else table


def _polars() -> Any:
    """Polars, for a task parameter annotated with a Polars frame (the ``polars`` extra)."""
    return require("polars", "polars", "a task table as a Polars frame (pl.DataFrame/LazyFrame)")


def _batches(file: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    yield from file.iter_batches()


def read_quarantine(staging: str | Path, task_id: str) -> pa.Table | None:
    """Rows quarantined by ``task_id``'s checks in this run (all elements of a mapped task), or None."""
    single = result_path(staging, task_id, -1, "quarantine.parquet")
    if single.exists():
        return pq.read_table(single)
    parts = sorted(Path(staging).glob(f"{task_id}.*.quarantine.parquet"))
    parts = [p for p in parts if p.name[len(task_id) + 1 :].split(".", 1)[0].isdigit()]
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
