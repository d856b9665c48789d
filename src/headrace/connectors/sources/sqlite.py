"""SQLite reads through ADBC, streaming, with bound parameters.

SQLite columns may mix types; ADBC infers each column's type from the first batch and
fails on a later value of another type. The error names the column and the way out:
a ``types`` override reads that column as text and casts it in Arrow.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.connectors.fidelity import Flag
from headrace.connectors.naming import quote_ident
from headrace.connectors.sources.sql import Filter, cast_overrides, override_schema
from headrace.errors import ConnectorError

if TYPE_CHECKING:
    from headrace.connectors.sources.sql import SqlSource


def open_batches(
    src: SqlSource, filters: list[Filter]
) -> tuple[pa.Schema, Iterator[tuple[pa.RecordBatch, list[Flag]]]]:
    """The result's schema and its batches (SQLite values have no unrepresentable forms)."""
    import adbc_driver_sqlite.dbapi as adbc

    path = src.conn.path
    if path != ":memory:":
        import os

        if not os.path.exists(path):
            raise ConnectorError(f"SQLite database {path!r} does not exist.")
    bound = [_sqlite_value(v) for v in src.params]
    conditions = []
    for column, op, value in filters:
        bound.append(_sqlite_value(value))
        conditions.append(f"{quote_ident(column, 'sqlite')} {op} ?")
    columns = src.columns
    if src.types and not columns:
        columns = _sqlite_columns(src, adbc, path)
    sql = src.select_sql("sqlite", conditions, columns)
    conn = adbc.connect(path)
    cur = conn.cursor()
    cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(src.batch_rows)})
    where = f"{src.name} at {src.conn.masked}"
    try:
        cur.execute(sql, bound or None)
        reader = cur.fetch_record_batch()
    except Exception as exc:
        cur.close()
        conn.close()
        raise ConnectorError(f"Reading failed: {exc}", table=src.name, connection=src.conn.masked) from exc

    def batches() -> Iterator[tuple[pa.RecordBatch, list[Flag]]]:
        try:
            for batch in reader:
                yield cast_overrides(batch, src.types, where), []
        except ConnectorError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"Reading failed: {_name_sqlite_column(str(exc), reader.schema)} "
                "SQLite columns may mix types: pass types={column: pyarrow type} to read "
                "that column as text and cast it.", table=src.name, connection=src.conn.masked,
            ) from exc
        finally:
            cur.close()
            conn.close()

    return override_schema(reader.schema, src.types), batches()


def _sqlite_columns(src: SqlSource, adbc: Any, path: str) -> list[str]:
    """Column names of the table or query, so overridden columns can be read as text."""
    with adbc.connect(path) as conn, conn.cursor() as cur:
        cur.execute(src.select_sql("sqlite", []) + " LIMIT 0")
        return [d[0] for d in cur.description]


def _name_sqlite_column(message: str, schema: pa.Schema) -> str:
    import re

    match = re.search(r"column (\d+)", message)
    if match and int(match.group(1)) < len(schema):
        return f"{message} (column {schema.names[int(match.group(1))]!r})."
    return message


def _sqlite_value(value: Any) -> Any:
    """SQLite stores timestamps as text 'YYYY-MM-DD HH:MM:SS': bind them in that form."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
