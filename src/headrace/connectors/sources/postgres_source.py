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
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.connectors.fidelity import Flag
from headrace.connectors.incremental import scalar_text
from headrace.connectors.naming import (
    ConnectionFailedError,
    driver_message,
    qualified,
    quote_ident,
)
from headrace.connectors.sources import pgtypes
from headrace.connectors.sources.sql_sources import Filter, rechunk
from headrace.errors import ConnectorError
from headrace.extras import require

if TYPE_CHECKING:
    from headrace.connectors.sources.sql_sources import SqlSource


# ADBC's batches are 16 MB by default; the load keeps a few of them in flight (prefetch,
# DuckDB's threads), so they set much of its peak memory. 4 MB batches: full load of 2M
# customers 296-300 MB against 386-403 MB, in the same time (2.40-2.95 s against
# 2.52-3.07 s, interleaved), and 15-20% less decoding CPU.
BATCH_BYTES = 4 << 20

log = logging.getLogger(__name__)


def open_batches(
    src: SqlSource, filters: list[Filter]
) -> tuple[pa.Schema, Iterator[tuple[pa.RecordBatch, list[Flag]]]]:
    """The result's schema and its batches, each with its values that have no faithful form."""
    # ADBC's low-level API, not its DB-API module: that one imports pandas and Polars
    # (0.3-0.45 s measured), a fixed cost that dominated a small incremental extract.
    adbc = require("postgres", "adbc_driver_manager", "PostgreSQL source")
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
            f"PostgreSQL {src.conn.masked}", driver_message(exc, src.conn)
        ) from exc
    handles: list[Any] = [conn, database]  # closed in this order once the stream ends
    conditions: list[str] = []
    where: dict[str, str | None] = {"table": src.name, "connection": src.conn.masked}
    try:
        described = _describe(adbc, conn, handles, src)
        exprs = {
            c.name: e
            for c in (described or {}).values()
            if c.name not in src.types
            if (e := pgtypes.select_expression(c)) is not None
        }
        # a conversion needs the column list spelled out (in the described order)
        columns = src.columns or (list(described) if exprs and described else None)
        if src.params:
            # The user's query binds its own $n; filters continue the numbering.
            bound = list(src.params)
            for column, op, value in filters:
                bound.append(value)
                conditions.append(f"{quote_ident(column)} {op} ${len(bound)}")
            sql = src.select_sql("postgresql", conditions, columns, exprs)
            stream = _execute(adbc, conn, handles, sql, bound)
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
            sql = src.select_sql("postgresql", conditions, columns, exprs)
            stream = _execute(adbc, conn, handles, sql)
        reader = pa.RecordBatchReader.from_stream(stream)
    except Exception as exc:
        _close(handles)
        raise ConnectorError(
            f"Reading from PostgreSQL failed: {driver_message(exc, src.conn)}",
            table=src.name,
            connection=src.conn.masked,
        ) from exc
    schema, check = _plan(reader.schema, described, src.types, where)

    def batches() -> Iterator[tuple[pa.RecordBatch, list[Flag]]]:
        try:
            for batch in rechunk(reader, src.batch_rows):
                yield check(batch)
        finally:
            reader.close()
            _close(handles)

    return schema, batches()


def _describe(
    adbc: Any, conn: Any, handles: list[Any], src: SqlSource
) -> dict[str, pgtypes.PgColumn] | None:
    """The read's columns as the server describes them; None if it cannot say (then
    numeric is read as decimal128(38, 10) and money as the driver's int64 of cents)."""
    if src.table is not None:
        relation = qualified(src.table, src.schema, "postgresql")
        stream = _execute(
            adbc, conn, handles, pgtypes.RESOLVE.format(pgtypes.DESCRIBE_TABLE), _text_row(relation)
        )
        table = pa.RecordBatchReader.from_stream(stream).read_all()
        return pgtypes.describe_rows(
            list(zip(*(c.to_pylist() for c in table.columns), strict=True))
        )
    try:
        return _describe_query(src)
    except Exception as exc:  # e.g. parameters whose type the server cannot infer
        log.warning(
            "cannot describe the query of %s (%s); opaque types read as the driver gives them",
            src.conn.masked,
            exc,
        )
        return None


def _describe_query(src: SqlSource) -> dict[str, pgtypes.PgColumn]:
    """A query's result columns from the server's description of it, without running it."""
    import psycopg

    with psycopg.connect(src.conn.url, autocommit=True) as pconn:
        result = pconn.pgconn.prepare(b"", src.select_sql("postgresql", []).encode())
        if result.error_message:
            raise ConnectorError(result.error_message.decode(errors="replace"))
        desc = pconn.pgconn.describe_prepared(b"")
        names = [(desc.fname(i) or b"").decode() for i in range(desc.nfields)]
        if len(set(names)) != len(names):
            raise ConnectorError("the query's result repeats a column name")
        oids = [desc.ftype(i) for i in range(desc.nfields)]
        mods = [desc.fmod(i) for i in range(desc.nfields)]
        rows = pconn.execute(
            pgtypes.RESOLVE.format(pgtypes.DESCRIBE_QUERY), (names, oids, mods)
        ).fetchall()
    return pgtypes.describe_rows(rows)


def _plan(
    read: pa.Schema,
    described: dict[str, pgtypes.PgColumn] | None,
    overrides: dict[str, pa.DataType],
    where: dict[str, str | None],
) -> tuple[pa.Schema, Callable[[pa.RecordBatch], tuple[pa.RecordBatch, list[Flag]]]]:
    """The delivered schema and the per-batch conversion of a result.

    ``where`` holds the error fields naming the source (``table``, ``connection``).
    """
    fields, steps = [], []
    for field in read:
        col = (described or {}).get(field.name) or pgtypes.fallback_column(field.name, field)
        if field.name in overrides:
            target = overrides[field.name]
        elif col is not None:
            target = pgtypes.arrow_type(col, field.type)
        else:
            target = field.type
        infinity = col is None or col.base in ("timestamp", "timestamptz", "date")
        plain = target == field.type and not (
            infinity and (pa.types.is_timestamp(target) or pa.types.is_date32(target))
        )
        fields.append(pa.field(field.name, target))
        steps.append(
            None
            if plain
            else (col or pgtypes.PgColumn(field.name, "", -1, None, "b"), target, infinity)
        )
    schema = pa.schema(fields)
    if all(step is None for step in steps):
        return schema, lambda batch: (batch, [])

    def check(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[Flag]]:
        arrays, flags, changed = [], [], False
        for array, step in zip(batch.columns, steps, strict=True):
            if step is not None:
                before = array
                try:
                    array, flag = pgtypes.convert(array, *step)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ConnectorError(
                        f"cannot be read as {step[1]}: {exc}. "
                        f"Pass types={{{step[0].name!r}: pa.string()}} to read its text.",
                        **where,
                        column=step[0].name,
                    ) from exc
                if flag is not None:
                    flags.append(flag)
                changed = changed or array is not before
            arrays.append(array)
        if not changed:  # checked only (timestamps): the batch as it came
            return batch, flags
        return pa.RecordBatch.from_arrays(arrays, schema=schema), flags

    return schema, check


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


#: The PostgreSQL type a filter value's text is cast back to, by its type tag.
_PG_TYPES = {"bool": "boolean", "int": "bigint", "float": "double precision", "decimal": "numeric",
             "datetime": "timestamp", "date": "date", "str": "text"}  # fmt: skip


def _pg_setting(value: Any, column: str) -> tuple[str, str]:
    """The text form of a filter value and the PostgreSQL type to cast it back to."""
    encoded = scalar_text(value)
    if encoded is None:
        raise ConnectorError(
            f"filter value {value!r} has unsupported type {type(value).__name__}.", column=column
        )
    text, kind = encoded
    if kind == "datetime" and value.tzinfo is not None:
        return text, "timestamptz"
    return text, _PG_TYPES[kind]
