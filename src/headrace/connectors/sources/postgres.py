"""PostgreSQL reads through ADBC, streaming, with filter values bound by ``set_config``.

ADBC runs a parameter-free query as ``COPY ... TO STDOUT (FORMAT BINARY)`` and streams
it; a query with bound parameters is materialised whole (measured: 3.1 s and 609 MB
for 1M rows against 2.0 s and 180 MB). So the values of incremental and interval
filters are bound as parameters of ``SELECT set_config(...)`` and the query reads them
back with ``CAST(current_setting('headrace.pN') AS <type>)``: no value is ever in the
SQL text and the read still streams. A user query with its own ``$n`` parameters is
run with them bound (and materialised by the driver).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.connectors.naming import ConnectionFailedError, driver_message, quote_ident
from headrace.connectors.sources.sql import Filter, cast_overrides, override_schema, rechunk
from headrace.errors import ConnectorError
from headrace.extras import require

if TYPE_CHECKING:
    from headrace.connectors.sources.sql import SqlSource


# ADBC's batches are 16 MB by default; the load keeps a few of them in flight (prefetch,
# DuckDB's threads), so they set much of its peak memory. 4 MB batches: full load of 2M
# customers 296-300 MB against 386-403 MB, in the same time (2.40-2.95 s against
# 2.52-3.07 s, interleaved), and 15-20% less decoding CPU.
BATCH_BYTES = 4 << 20


def open_batches(
    src: SqlSource, filters: list[Filter]
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    # ADBC's low-level API, not its DB-API module: that one imports pandas and Polars
    # (0.3-0.45 s measured), a fixed cost that dominated a small incremental extract.
    import adbc_driver_manager as adbc

    require("postgres", "adbc_driver_postgresql", "PostgreSQL source")
    import adbc_driver_postgresql

    database = None
    try:
        database = adbc_driver_postgresql.connect(src.conn.url)
        conn = adbc.AdbcConnection(database)
    except Exception as exc:
        if database is not None:
            _close([database])
        raise ConnectionFailedError(
            f"Cannot connect to PostgreSQL {src.conn.masked}: {driver_message(exc, src.conn)}"
        ) from None
    handles: list[Any] = [conn, database]  # closed in this order once the stream ends
    conditions: list[str] = []
    try:
        if src.params:
            # The user's query binds its own $n; filters continue the numbering.
            bound = list(src.params)
            for column, op, value in filters:
                bound.append(value)
                conditions.append(f"{quote_ident(column)} {op} ${len(bound)}")
            stream = _execute(adbc, conn, handles, src.select_sql("postgresql", conditions), bound)
        else:
            for i, (column, op, value) in enumerate(filters, 1):
                text, pg_type = _pg_setting(value, column)
                pa.RecordBatchReader.from_stream(
                    _execute(
                        adbc,
                        conn,
                        handles,
                        "SELECT set_config($1, $2, false)",
                        _text_row(f"headrace.p{i}", text),
                    )
                ).read_all()
                conditions.append(
                    f"{quote_ident(column)} {op} CAST(current_setting('headrace.p{i}') AS {pg_type})"
                )
            stream = _execute(adbc, conn, handles, src.select_sql("postgresql", conditions))
        reader = pa.RecordBatchReader.from_stream(stream)
    except Exception as exc:
        _close(handles)
        raise ConnectorError(
            f"Reading {src.name} from PostgreSQL {src.conn.masked} failed: {driver_message(exc, src.conn)}"
        ) from None
    where = f"{src.name} at {src.conn.masked}"
    # PostgreSQL types Arrow lacks (numeric, json, uuid...) arrive as opaque text
    types = {**_pg_plain_types(reader.schema), **src.types}

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in rechunk(reader, src.batch_rows):
                yield cast_overrides(_unwrap_opaque(batch), types, where)
        finally:
            reader.close()
            _close(handles)

    return override_schema(reader.schema, types), batches()


def _execute(
    adbc: Any,
    conn: Any,
    handles: list[Any],
    sql: str,
    params: Sequence[Any] | pa.RecordBatch = (),
) -> Any:
    """Run ``sql`` on a new statement (``params`` bound to ``$1...``); its Arrow stream."""
    stmt = adbc.AdbcStatement(conn)
    handles.insert(0, stmt)
    stmt.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
    stmt.set_sql_query(sql)
    if isinstance(params, pa.RecordBatch):
        stmt.bind(params)
    elif params:
        # one row of parameters, typed by pyarrow as ADBC's DB-API module does it
        stmt.bind(
            pa.record_batch([[v] for v in params], names=[str(i) for i in range(len(params))])
        )
    stream, _ = stmt.execute_query()
    return stream


def _text_row(*values: str) -> pa.RecordBatch:
    """One row of text parameters, built from raw buffers.

    Building it from Python objects (``pa.array``, ``pa.scalar``) makes pyarrow import
    pandas to check for pandas inputs: 0.45-0.55 s measured, the largest fixed cost of a
    small incremental extract.
    """
    arrays = []
    for value in values:
        data = value.encode()
        offsets = struct.pack("<ii", 0, len(data))
        arrays.append(pa.StringArray.from_buffers(1, pa.py_buffer(offsets), pa.py_buffer(data)))
    return pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(values))])


def _close(handles: list[Any]) -> None:
    """Close statements, then the connection, then the database; ignore failures."""
    for handle in handles:
        with contextlib.suppress(Exception):
            handle.close()


def _pg_plain_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    """Arrow types for the opaque columns of an ADBC result: numeric(p, s) -> decimal,
    unconstrained numeric -> decimal128(38, 10), anything else -> its text storage."""
    plain: dict[str, pa.DataType] = {}
    for field in schema:
        if not isinstance(field.type, pa.ExtensionType):
            continue
        meta = field.metadata or {}
        if meta.get(b"POSTGRESQL:type") == b"numeric":
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
            if typmod >= 4:
                precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
                plain[field.name] = (pa.decimal128 if precision <= 38 else pa.decimal256)(
                    precision, scale
                )
            else:
                plain[field.name] = pa.decimal128(38, 10)
        else:
            plain[field.name] = field.type.storage_type
    return plain


def _unwrap_opaque(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Replace extension arrays by their storage (text), ready to cast."""
    if not any(isinstance(t, pa.ExtensionType) for t in batch.schema.types):
        return batch
    arrays = [c.storage if isinstance(c.type, pa.ExtensionType) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _pg_setting(value: Any, column: str) -> tuple[str, str]:
    """The text form of a filter value and the PostgreSQL type to cast it back to."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int):
        return str(value), "bigint"
    if isinstance(value, float):
        return repr(value), "double precision"
    if isinstance(value, decimal.Decimal):
        return str(value), "numeric"
    if isinstance(value, dt.datetime):
        return value.isoformat(), "timestamptz" if value.tzinfo else "timestamp"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, str):
        return value, "text"
    raise ConnectorError(
        f"Filter value {value!r} on column {column!r} has unsupported type {type(value).__name__}."
    )
