"""PostgreSQL destination through ADBC: data arrives by binary COPY into a temporary
stage table, then plain SQL applies it, all in one transaction.

Types the driver cannot ingest as themselves are staged in a form it can and converted
by PostgreSQL (``_staged_as``): decimals as exact text, unsigned 64-bit integers as
``numeric(20, 0)``, Arrow ``uuid`` as its bytes made ``uuid`` again. Decimals never go
through ADBC's NUMERIC encoder, which has stored wrong values without
an error (1.50 as 150.0 and 10.00 refused with adbc-driver-postgresql 1.8 and 1.9,
apache/arrow-adbc#3485; 5000000000.000001 as 5000000100 until 2026-07, #4507): they
are staged as their exact text and PostgreSQL parses them into ``numeric``, the type
ADBC would have created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headrace.config import Settings
from headrace.connectors.destinations.sqlbase import SqlDestination
from headrace.connectors.fidelity import Fidelity
from headrace.connectors.naming import (
    ConnectionFailedError,
    ConnectionURL,
    driver_message,
    quote_ident,
    resolve,
)
from headrace.errors import ConnectorError
from headrace.extras import require


class PostgresDestination(SqlDestination):
    """Write Arrow data into PostgreSQL tables.

    Args:
        url: ``postgresql://user:pw@host:port/db`` (``?schema=name`` optional).
        schema: the schema tables go in (default ``public``); created if absent.
        fidelity: what happens to text with a NUL byte or invalid UTF-8 (quarantined
            naming the column by default; the same on every destination, see ``fidelity``).

    Example:
        >>> dest = PostgresDestination.from_url("warehouse", Settings.load())
        >>> dest.write(table, "customers", mode="merge", keys=["customer_id"])
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str | ConnectionURL,
        *,
        schema: str | None = None,
        fidelity: Fidelity | None = None,
    ) -> None:
        self.fidelity = fidelity or Fidelity()
        self.conn_url = url if isinstance(url, ConnectionURL) else ConnectionURL.parse(url)
        if self.conn_url.backend != "postgresql":
            raise ConnectorError(f"{self.conn_url.masked} is not a PostgreSQL URL.")
        self.schema: str = schema or self.conn_url.options.get("schema") or "public"
        self.where = f"PostgreSQL {self.conn_url.masked} schema {self.schema!r}"

    @classmethod
    def from_url(
        cls, url: str, settings: Settings | None = None, *, schema: str | None = None
    ) -> PostgresDestination:
        """From a URL or a named connection."""
        return cls(resolve(url, settings), schema=schema)

    def _connect(self) -> Any:
        require("postgres", "adbc_driver_postgresql", "PostgreSQL destination")
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(self.conn_url.url)
        except Exception as exc:
            raise ConnectionFailedError(self.where, driver_message(exc, self.conn_url)) from exc
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
            # so queries and SQL tests can name tables without the schema
            cur.execute(
                "SELECT set_config('search_path', $1, false)",
                (f"{quote_ident(self.schema)}, public",),
            )
            cur.fetchall()
        conn.commit()
        return conn

    def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with conn.cursor() as cur:
            cur.execute(sql, list(params) if params else None)
            if cur.description is None:
                return []
            return cur.fetchall()

    def _exec_count(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> int:
        # ADBC reports no row count for statements with bound parameters
        counted = f"WITH _hr_touched AS ({sql} RETURNING 1) SELECT count(*) FROM _hr_touched"
        return int(self._exec(conn, counted, params)[0][0])

    def _begin(self, conn: Any) -> None:
        pass  # ADBC connections run with autocommit off: a transaction is always open

    def _stage(
        self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str, table: str
    ) -> None:
        staged = {f.name: how for f in data.schema if (how := _staged_as(f.type)) is not None}
        if not staged:
            with conn.cursor() as cur:
                cur.adbc_ingest(name, data, mode="create", temporary=True)
            return
        raw = f"{name}_raw"
        refused: list[ConnectorError] = []  # raised while the driver read a stream
        converted = _converted(data, staged, table, self.where, refused)
        with conn.cursor() as cur:
            try:
                cur.adbc_ingest(raw, converted, mode="create", temporary=True)
            except Exception as exc:
                if refused:  # the driver reports it as its own error: give ours back, fields kept
                    raise refused[0] from exc
                raise
        select = ", ".join(
            f"{staged[c][1].format(quote_ident(c))} AS {quote_ident(c)}"
            if c in staged
            else quote_ident(c)
            for c in data.schema.names
        )
        self._exec(
            conn,
            f"CREATE TEMPORARY TABLE {quote_ident(name)} AS SELECT {select} FROM {quote_ident(raw)}",
        )
        self._exec(conn, f"DROP TABLE {quote_ident(raw)}")

    def _columns(self, conn: Any, table: str, temporary: bool = False) -> dict[str, str] | None:
        if temporary:
            rows = self._exec(
                conn,
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname = $1 AND c.relnamespace = pg_my_temp_schema() "
                "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (table,),
            )
        else:
            rows = self._exec(
                conn,
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = $1 AND n.nspname = $2 AND c.relkind IN ('r', 'p') "
                "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (table, self.schema),
            )
        return {name: sql_type for name, sql_type in rows} or None

    def _query_arrow(self, conn: Any, sql: str, params: Sequence[Any]) -> pa.Table:
        with conn.cursor() as cur:
            cur.execute(sql, list(params) if params else None)
            return cur.fetch_arrow_table()


def _staged_as(t: pa.DataType) -> tuple[pa.DataType, str] | None:
    """How a column the driver cannot ingest faithfully is staged: the Arrow type it is
    sent as and the SQL that makes the PostgreSQL value from it (``{}``: the column)."""
    if pa.types.is_decimal(t):  # numeric(p, s) keeps the declared precision and scale
        return pa.string(), f"CAST({{}} AS numeric({t.precision}, {t.scale}))"
    if pa.types.is_uint64(t):  # no unsigned types: numeric(20, 0) holds them all
        return pa.string(), "CAST({} AS numeric(20, 0))"
    if pa.types.is_uint32(t):
        return pa.int64(), "{}"
    if pa.types.is_uint16(t) or pa.types.is_uint8(t):
        return pa.int32(), "{}"
    if isinstance(t, pa.UuidType):
        return pa.binary(), "CAST(encode({}, 'hex') AS uuid)"
    if pa.types.is_list(t) and pa.types.is_decimal(t.value_type):
        v = t.value_type
        return pa.list_(pa.string()), f"CAST({{}} AS numeric({v.precision}, {v.scale})[])"
    if pa.types.is_list(t) and isinstance(t.value_type, pa.UuidType):
        return pa.list_(pa.string()), "CAST({} AS uuid[])"
    if pa.types.is_list(t):  # checked for NULL elements, which the driver stores as 0
        return t, "{}"
    return None


def _converted(
    data: pa.Table | pa.RecordBatchReader, staged: dict[str, tuple[pa.DataType, str]],
    table: str, connection: str, refused: list[ConnectorError],
) -> pa.Table | pa.RecordBatchReader:  # fmt: skip
    """``data`` with the ``staged`` columns in their staging types (decimals as exact
    text "10.00", uuids as their 16 bytes).

    A refused value raises a :class:`ConnectorError` naming ``table`` (in ``connection``)
    and the column; a stream's is also kept in ``refused`` (the driver that reads the
    stream raises its own error in its place).
    """
    schema = pa.schema(
        [pa.field(f.name, staged[f.name][0]) if f.name in staged else f for f in data.schema]
    )

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            columns = [
                _stage_cast(col, schema.field(name).type, name, table, connection)
                if name in staged
                else col
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            ]
        except ConnectorError as exc:
            refused.append(exc)
            raise
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    if isinstance(data, pa.Table):
        return pa.Table.from_batches([convert(b) for b in data.to_batches()], schema=schema)
    return pa.RecordBatchReader.from_batches(schema, (convert(b) for b in data))


def _stage_cast(
    column: pa.Array, target: pa.DataType, name: str, table: str, connection: str
) -> pa.Array:
    """Column ``name`` of ``table``'s rows in its staging type ``target``."""
    if pa.types.is_list(column.type) and column.values.null_count:
        # adbc-driver-postgresql 1.8 writes a NULL array element as 0 (or ''): refuse
        raise ConnectorError(
            "an array holds NULL elements, which the PostgreSQL driver would store as 0; replace them "
            "(or cast the column to text) before loading.",
            table=table,
            column=name,
            connection=connection,
        )
    if isinstance(column.type, pa.UuidType):
        return column.storage.cast(target)
    if pa.types.is_list(column.type) and isinstance(column.type.value_type, pa.UuidType):
        # uuid elements as their text form, which PostgreSQL parses
        hexed = [None if v is None else str(v) for v in column.values.to_pylist()]
        values = pa.array(hexed, pa.string())
        return pa.ListArray.from_arrays(
            column.offsets, values, mask=column.is_null() if column.null_count else None
        )
    return pc.cast(column, target)
