"""SQLite reads through the standard library's ``sqlite3``, streaming, with bound parameters.

The core install reads SQLite (the demo CRM) with no driver package: rows come from
``fetchmany`` in batches of ``batch_rows`` and become an Arrow batch in one
``pa.array`` call. Types follow the values, as SQLite's storage classes have it
(declared types are only affinities), from the first batch:

* integers only -> ``int64``; reals, or reals and integers -> ``double``;
* text among them -> ``string`` (numbers as their text: ``str(int)``, ``repr(float)``);
* a blob among them -> ``binary`` (text as UTF-8, numbers as their text);
* NULLs only, or no rows -> ``int64``.

A later batch holding a value of another type (text or a real in an ``int64`` column,
an integer a ``double`` cannot hold, a blob that is not UTF-8 in a ``string`` column)
fails naming the column and the row, and the way out: a ``types`` override reads that
column as text (or, for ``pa.binary()``, as bytes) and casts it in Arrow. Text that is
not UTF-8 fails the same way (``types={column: pa.binary()}`` reads its bytes). Nothing
is converted silently beyond the rules above.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NoReturn

import pyarrow as pa

from headrace.connectors.fidelity import Flag
from headrace.connectors.naming import quote_ident
from headrace.connectors.sources.sql_sources import Filter, cast_overrides, override_schema
from headrace.errors import ConnectorError

if TYPE_CHECKING:
    from headrace.connectors.sources.sql_sources import SqlSource

_WAY_OUT = (
    "SQLite columns may mix types: pass types={column: pyarrow type} to read "
    "that column as text and cast it."
)


def open_batches(
    src: SqlSource, filters: list[Filter]
) -> tuple[pa.Schema, Iterator[tuple[pa.RecordBatch, list[Flag]]]]:
    """The result's schema and its batches (SQLite values have no unrepresentable forms)."""
    path = src.conn.path
    if path != ":memory:" and not os.path.exists(path):
        raise ConnectorError(f"SQLite database {path!r} does not exist.")
    bound = [_sqlite_value(v) for v in src.params]
    conditions = []
    for column, op, value in filters:
        bound.append(_sqlite_value(value))
        conditions.append(f"{quote_ident(column, 'sqlite')} {op} ?")
    where: dict[str, str | None] = {"table": src.name, "connection": src.conn.masked}
    # The batches may be pulled from a prefetch thread: one thread at a time uses it.
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        columns = src.columns
        if src.types and not columns:
            columns = _sqlite_columns(conn, src)
        cur = conn.execute(src.select_sql("sqlite", conditions, columns), bound)
        names = [d[0] for d in cur.description]
        first = cur.fetchmany(src.batch_rows)
        schema = pa.schema(
            [pa.field(n, _inferred(c)) for n, c in zip(names, _columns(first, names), strict=True)]
        )
        first_batch = _batch(first, schema, where, 0)
    except ConnectorError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise _failed(where, exc) from exc

    def batches() -> Iterator[tuple[pa.RecordBatch, list[Flag]]]:
        try:
            rows, batch, offset = first, first_batch, 0
            while True:
                yield cast_overrides(batch, src.types, where), []
                if len(rows) < src.batch_rows:
                    return
                offset += len(rows)
                rows = cur.fetchmany(src.batch_rows)
                if not rows:
                    return
                batch = _batch(rows, schema, where, offset)
        except sqlite3.Error as exc:
            raise _failed(where, exc) from exc
        finally:
            conn.close()

    return override_schema(schema, src.types), batches()


def _sqlite_columns(conn: sqlite3.Connection, src: SqlSource) -> list[str]:
    """Column names of the table or query, so overridden columns can be read as text."""
    cur = conn.execute(src.select_sql("sqlite", []) + " LIMIT 0")
    return [d[0] for d in cur.description]


def _columns(rows: list[tuple[Any, ...]], names: list[str]) -> list[Sequence[Any]]:
    """The rows as columns (as many empty columns as names when there are no rows)."""
    return list(zip(*rows, strict=True)) if rows else [() for _ in names]


def _inferred(values: Sequence[Any]) -> pa.DataType:
    """The Arrow type of a column from the Python types of its first batch's values."""
    kinds = set(map(type, values))
    if bytes in kinds:
        return pa.binary()
    if str in kinds:
        return pa.string()
    if float in kinds:
        return pa.float64()
    return pa.int64()  # integers, or only NULLs


def _batch(
    rows: list[tuple[Any, ...]], schema: pa.Schema, where: dict[str, str | None], offset: int
) -> pa.RecordBatch:
    """Rows as a batch of ``schema``; ``offset`` is the first row's position, for messages.

    The usual batch converts in one ``pa.array`` call over the rows (pyarrow's C++ walks
    the tuples); a batch that does not fit, or holds numbers for a text column, takes the
    column-by-column path that converts what the rules allow and names what they refuse.
    """
    for i, field in enumerate(schema):
        # pyarrow would truncate a real into an int64 column (2.5 -> 2): look first
        if field.type == pa.int64() and not set(map(type, map(itemgetter(i), rows))) <= _INTEGER:
            break
    else:
        try:
            return pa.RecordBatch.from_struct_array(pa.array(rows, pa.struct(schema)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    arrays = [
        _array(values, field, where, offset)
        for values, field in zip(_columns(rows, schema.names), schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_INTEGER = {int, type(None)}


def _array(
    values: Sequence[Any], field: pa.Field, where: dict[str, str | None], offset: int
) -> pa.Array:
    """One column as ``field.type``; numbers become text in a text or blob column."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if field.type == pa.int64():
        allowed: set[type] = {int}
    elif field.type == pa.float64():
        allowed = {int, float}
    else:
        allowed = {int, float, str, bytes}
        if kinds & {int, float}:
            values = [_as_text(v) for v in values]
        if field.type == pa.string() and bytes in kinds:
            values = [_decoded(v, field, where, offset + i) for i, v in enumerate(values)]
    if not kinds <= allowed:
        _refuse(values, next(iter(kinds - allowed)), field, where, offset)
    try:
        return pa.array(values, field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # an integer a double cannot hold
        raise ConnectorError(
            f"reading failed: {exc}. {_WAY_OUT}", **where, column=field.name
        ) from exc


def _as_text(value: Any) -> Any:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def _decoded(value: Any, field: pa.Field, where: dict[str, str | None], row: int) -> Any:
    """A blob in a text column is its text if it is UTF-8 (as a driver reads it)."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        _refuse([value], bytes, field, where, row)


_STORAGE = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def _refuse(
    values: Sequence[Any], kind: type, field: pa.Field, where: dict[str, str | None], offset: int
) -> NoReturn:
    i = next(i for i, v in enumerate(values) if type(v) is kind)
    shown = repr(values[i])
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ConnectorError(
        f"the column is {field.type} (from the first batch's values), but this row holds "
        f"{_STORAGE[kind]} {shown}. " + _WAY_OUT,
        **where,
        column=field.name,
        row=offset + i,
    )


def _failed(where: dict[str, str | None], exc: Exception) -> ConnectorError:
    """The read's error; text that is not UTF-8 gets the way to read its bytes."""
    message = f"Reading failed: {exc}"
    match = re.match(r"Could not decode to UTF-8 column '(.*)' with text", str(exc))
    if match:
        message += f". Pass types={{{match.group(1)!r}: pa.binary()}} to read that column's bytes."
        return ConnectorError(message, **where, column=match.group(1))
    return ConnectorError(message, **where)


def _sqlite_value(value: Any) -> Any:
    """SQLite stores timestamps as text 'YYYY-MM-DD HH:MM:SS': bind them in that form."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
