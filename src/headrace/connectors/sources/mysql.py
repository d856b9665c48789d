"""MySQL/MariaDB reads: connectorx without parameters, PyMySQL's server-side cursor with.

connectorx streams Arrow and is ~9x faster (0.48 s against 4.4 s for 300k rows) but
cannot bind parameters; values are never pasted into SQL, so a read with parameters
(incremental filters, user params) goes through PyMySQL's unbuffered cursor, typed
from the result's MySQL field types.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.connectors.naming import ConnectionFailedError, driver_message, quote_ident
from headrace.connectors.sources.sql import Filter, cast_overrides, override_schema, rechunk
from headrace.errors import ConnectorError
from headrace.extras import require

if TYPE_CHECKING:
    from headrace.connectors.sources.sql import SqlSource


def open_batches(
    src: SqlSource, filters: list[Filter]
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    bound = list(src.params)
    conditions = []
    for column, op, value in filters:
        bound.append(value)
        conditions.append(f"{quote_ident(column, 'mysql')} {op} %s")
    sql = src.select_sql("mysql", conditions)
    where = f"{src.name} at {src.conn.masked}"
    if not bound:
        require("mysql", "connectorx", "MySQL source")
        import connectorx as cx

        try:
            reader = cx.read_sql(
                src.conn.url, sql, return_type="arrow_stream", batch_size=src.batch_rows
            )
        except Exception as exc:
            raise ConnectorError(
                f"Reading {src.name} from MySQL {src.conn.masked} failed: {driver_message(exc, src.conn)}"
            ) from None
        return override_schema(reader.schema, src.types), (
            cast_overrides(b, src.types, where) for b in rechunk(reader, src.batch_rows)
        )
    return _pymysql_stream(src, sql, bound, where)


def _pymysql_stream(
    src: SqlSource, sql: str, bound: list[Any], where: str
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from urllib.parse import unquote, urlsplit

    require("mysql", "pymysql", "MySQL source")
    import pymysql
    import pymysql.cursors

    parts = urlsplit(src.conn.url)
    try:
        conn = pymysql.connect(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            cursorclass=pymysql.cursors.SSCursor,
            charset="utf8mb4",
        )
    except Exception as exc:
        raise ConnectionFailedError(
            f"Cannot connect to MySQL {src.conn.masked}: {driver_message(exc, src.conn)}"
        ) from None
    cur = conn.cursor()
    try:
        cur.execute(sql, bound)
    except Exception as exc:
        conn.close()
        raise ConnectorError(
            f"Reading {src.name} from MySQL {src.conn.masked} failed: {driver_message(exc, src.conn)}"
        ) from None
    schema = pa.schema(
        [pa.field(d[0], src.types.get(d[0], _mysql_type(d))) for d in cur.description]
    )

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while rows := cur.fetchmany(src.batch_rows):
                columns = list(zip(*rows, strict=True))
                arrays = []
                for field, values in zip(schema, columns, strict=True):
                    try:
                        if field.name in src.types and pa.types.is_string(field.type):
                            # an override to text takes any value, as its text
                            values = tuple(None if v is None else str(v) for v in values)
                        arrays.append(pa.array(values, type=field.type))
                    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                        raise ConnectorError(
                            f"{where}: column {field.name!r} holds a value that is not "
                            f"{field.type}: {exc}. Pass types={{{field.name!r}: ...}}."
                        ) from None
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            cur.close()
            conn.close()

    return schema, batches()


def _mysql_type(description: tuple) -> pa.DataType:
    """Arrow type of a PyMySQL result column, from its MySQL field type."""
    from pymysql.constants import FIELD_TYPE as F

    code, precision, scale = description[1], description[4], description[5]
    if code in (F.TINY, F.SHORT, F.LONG, F.LONGLONG, F.INT24, F.YEAR):
        return pa.int64()
    if code in (F.FLOAT, F.DOUBLE):
        return pa.float64()
    if code in (F.DECIMAL, F.NEWDECIMAL):
        return pa.decimal128(min(max(precision or 38, 1), 38), scale or 0)
    if code in (F.DATETIME, F.TIMESTAMP):
        return pa.timestamp("us")
    if code == F.DATE:
        return pa.date32()
    if code == F.TIME:
        return pa.duration("us")
    if code in (F.BIT, F.GEOMETRY):
        return pa.binary()
    return pa.string()
