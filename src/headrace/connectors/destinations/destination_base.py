"""The destination contract: write modes, load results and the Protocol every backend meets."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from headrace.connectors.incremental import Checkpoint, Interval
from headrace.errors import ConnectorError, one_of

CHECKPOINT_TABLE = "_hr_checkpoints"
LOADS_TABLE = "_hr_loads"
META_LOAD_ID = "_hr_load_id"
META_LOADED_AT = "_hr_loaded_at"
#: A table's quarantined rows go to ``<table>_quarantine``.
QUARANTINE_SUFFIX = "_quarantine"


class WriteMode(StrEnum):
    """How rows land in the destination table."""

    APPEND = "append"
    REPLACE = "replace"  # atomic swap of the whole table
    REPLACE_PARTITION = "replace_partition"  # delete the interval, insert; one transaction
    MERGE = "merge"  # upsert on key columns: stage, delete matching keys, insert

    @classmethod
    def parse(cls, value: str | WriteMode) -> WriteMode:
        """``WriteMode`` from its name, suggesting the closest on a typo."""
        try:
            return cls(value)
        except ValueError:
            names = [m.value for m in cls]
            raise ConnectorError(
                f"Unknown write mode {value!r}; {one_of(str(value), names)}"
            ) from None


@dataclass(frozen=True)
class LoadResult:
    """What one write did.

    Args:
        table: the destination table.
        mode: the write mode used.
        load_id: the load's id (also in ``_hr_loads``).
        rows_in: rows handed to the write (good rows, before de-duplication).
        rows_loaded: rows inserted into the table.
        rows_replaced: existing rows deleted by replace-partition or merge.
        rows_quarantined: rows written to ``<table>_quarantine``.
        checkpoint: the checkpoint committed with the load, if any.
        rows_superseded: merge only: rows dropped by ``dedupe_order_by`` because a later
            row with the same key was in the same data (``rows_in - rows_loaded``).
        already_loaded: True when ``load_id`` had been committed before and nothing ran.
        compacted: True when the destination compacted the table after this load
            (DuckDB: rows deleted by earlier merges reached ``vacuum_after``).
        values_nulled: values stored as NULL by a ``null`` value policy (``fidelity``):
            bad text here, unrepresentable values in the source extract.
    """

    table: str
    mode: WriteMode
    load_id: str
    rows_in: int
    rows_loaded: int
    rows_replaced: int = 0
    rows_quarantined: int = 0
    checkpoint: Checkpoint | None = None
    already_loaded: bool = False
    rows_superseded: int = 0
    compacted: bool = False
    values_nulled: int = 0


@runtime_checkable
class Destination(Protocol):
    """A warehouse that takes Arrow data and commits it with its checkpoint atomically."""

    def write(
        self,
        data: Any,
        table: str,
        *,
        mode: WriteMode | str = WriteMode.APPEND,
        keys: Sequence[str] = (),
        partition: Interval | None = None,
        checkpoint: Checkpoint | Callable[[], Checkpoint | None] | None = None,
        quarantine: Any = None,
        load_id: str | None = None,
        metadata: bool = False,
        dedupe_order_by: str | None = None,
    ) -> LoadResult: ...

    def checkpoint(self, pipeline: str, source: str) -> Checkpoint | None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...


def write_arguments(
    table: str, mode: WriteMode | str, keys: Sequence[str], partition: Interval | None
) -> tuple[WriteMode, list[str]]:
    """The mode and key columns of a write, checked the same way by every destination.

    Raises:
        ConnectorError: an unknown mode, a merge without keys, or replace_partition
            without a partition.
    """
    mode = WriteMode.parse(mode)
    keys = [keys] if isinstance(keys, str) else list(keys)
    if mode is WriteMode.MERGE and not keys:
        raise ConnectorError(
            "merge needs keys=[...] (the columns that identify a row).", table=table
        )
    if mode is WriteMode.REPLACE_PARTITION and partition is None:
        raise ConnectorError(
            "replace_partition needs partition=Interval(column, start, end).", table=table
        )
    return mode, keys


def as_arrow(
    data: Any, what: str = "", *, table: str | None = None, connection: str | None = None
) -> pa.Table | pa.RecordBatchReader:
    """Arrow table or reader from Arrow, an Extract, Polars or pandas data.

    String views and large types become their plain forms, which every driver takes.
    """
    from headrace.connectors.sources.source_base import Extract

    if isinstance(data, Extract):
        data = data.reader(prefetch=4)  # decode ahead while the destination writes
    elif isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif not isinstance(data, pa.Table | pa.RecordBatchReader):
        module = type(data).__module__.split(".")[0]
        if module == "polars":
            import polars as pl

            if isinstance(data, pl.LazyFrame):
                data = data.collect()
            data = data.to_arrow()
        elif module == "pandas":
            data = pa.Table.from_pandas(data, preserve_index=False)
        elif hasattr(data, "__arrow_c_stream__"):
            data = pa.RecordBatchReader.from_stream(data)
        else:
            raise ConnectorError(
                f"Cannot write {type(data).__name__}{f' to {what}' if what else ''}: pass a "
                "pyarrow Table or RecordBatchReader, a Polars or a pandas DataFrame.",
                table=table,
                connection=connection,
            )
    target = plain_schema(data.schema)
    if target.equals(data.schema):
        return data
    if isinstance(data, pa.Table):
        return data.cast(target)
    reader = data
    return pa.RecordBatchReader.from_batches(target, (b.cast(target) for b in reader))


def key_text(keys: Sequence[str], values: Sequence[Any]) -> str:
    """A row named by its key, for an error's ``row`` field: ``id=7`` or ``a=1, b='x'``."""
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with string_view/large_string/large_binary/large_list made plain, and
    decimal256 of at most 38 digits as decimal128 (the same values)."""

    def plain(t: pa.DataType) -> pa.DataType:
        if isinstance(t, pa.Decimal256Type) and t.precision <= 38:
            return pa.decimal128(t.precision, t.scale)
        if pa.types.is_string_view(t) or pa.types.is_large_string(t):
            return pa.string()
        if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
            return pa.binary()
        if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in t])
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        return t

    return pa.schema([pa.field(f.name, plain(f.type), f.nullable) for f in schema])


_FAMILIES = [
    (
        "int",
        r"^(u?tinyint|u?smallint|u?integer|u?bigint|hugeint|uhugeint|int[248]?|serial|bigserial)$",
    ),
    ("float", r"^(float[48]?|double( precision)?|real)$"),
    ("decimal", r"^(decimal|numeric)(\(.*\))?$"),
    ("text", r"^(varchar|text|string|character varying|char|character|bpchar)(\(.*\))?$"),
    ("bool", r"^(boolean|bool)$"),
    (
        "timestamp",
        r"^(timestamp|datetime)(_[smun]s|\(\d\))?( with(out)? time zone)?$|^timestamptz$",
    ),
    ("date", r"^date$"),
    ("time", r"^time( with(out)? time zone)?(\(\d\))?$"),
    ("interval", r"^interval$"),
    ("binary", r"^(blob|bytea|binary|varbinary)$"),
]


def type_family(sql_type: str) -> str:
    """The family of a SQL type name (``int``, ``text``, ``timestamp``...), or the name."""
    name = sql_type.strip().lower()
    for family, pattern in _FAMILIES:
        if re.match(pattern, name):
            return family
    return name


def compatible(incoming: str, existing: str) -> bool:
    """Whether values of SQL type ``incoming`` can go into a column of type ``existing``."""
    a, b = type_family(incoming), type_family(existing)
    if a == b or incoming.lower() in ("null", '"null"'):
        return True
    return (a, b) in {
        ("int", "float"),
        ("int", "decimal"),
        ("decimal", "float"),
        ("float", "decimal"),
    }


def check_columns(
    table: str, existing: dict[str, str], incoming: dict[str, str]
) -> list[tuple[str, str]]:
    """New columns to add to ``table``; an incompatible type change is a ConnectorError.

    Args:
        table: the table's name, for messages.
        existing: column -> SQL type of the table as it is.
        incoming: column -> SQL type of the data being written.

    Returns:
        ``(column, type)`` pairs missing from the table, in the data's order.
    """
    to_add = []
    for column, sql_type in incoming.items():
        if column not in existing:
            to_add.append((column, sql_type))
        elif not compatible(sql_type, existing[column]):
            raise ConnectorError(
                f"the data has type {sql_type} but the table has {existing[column]}, which cannot "
                "hold it. Cast the column in the transform, or load with mode='replace' to rebuild "
                "the table.",
                table=table,
                column=column,
            )
    return to_add


def with_meta(rows: pa.Table, load_id: str, loaded_at: dt.datetime) -> pa.Table:
    """``rows`` with ``_hr_load_id`` and ``_hr_loaded_at`` columns (replacing any)."""
    for name in (META_LOAD_ID, META_LOADED_AT):
        if name in rows.column_names:
            rows = rows.drop_columns([name])
    n = rows.num_rows
    rows = rows.append_column(META_LOAD_ID, pa.array([load_id] * n, pa.string()))
    stamp = pa.array([loaded_at] * n, pa.timestamp("us", tz="UTC"))
    return rows.append_column(META_LOADED_AT, stamp)
