"""PostgreSQL destination through ADBC: data arrives by binary COPY into a temporary
stage table, then plain SQL applies it, all in one transaction.

Decimals never go through ADBC's NUMERIC encoder, which has stored wrong values without
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
from headrace.connectors.naming import (
    ConnectionFailedError,
    ConnectionURL,
    driver_message,
    quote_ident,
    resolve,
)
from headrace.errors import ConnectorError


class PostgresDestination(SqlDestination):
    """Write Arrow data into PostgreSQL tables.

    Args:
        url: ``postgresql://user:pw@host:port/db`` (``?schema=name`` optional).
        schema: the schema tables go in (default ``public``); created if absent.

    Example:
        >>> dest = PostgresDestination.from_url("warehouse", Settings.load())
        >>> dest.write(table, "customers", mode="merge", keys=["customer_id"])
    """

    dialect = "postgresql"

    def __init__(self, url: str | ConnectionURL, *, schema: str | None = None) -> None:
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
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(self.conn_url.url)
        except Exception as exc:
            raise ConnectionFailedError(
                f"Cannot connect to {self.where}: {driver_message(exc, self.conn_url)}"
            ) from None
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

    def _commit(self, conn: Any) -> None:
        conn.commit()

    def _rollback(self, conn: Any) -> None:
        conn.rollback()

    def _stage(self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str) -> None:
        decimals = [f.name for f in data.schema if pa.types.is_decimal(f.type)]
        if not decimals:
            with conn.cursor() as cur:
                cur.adbc_ingest(name, data, mode="create", temporary=True)
            return
        raw = f"{name}_raw"
        with conn.cursor() as cur:
            cur.adbc_ingest(raw, _decimals_as_text(data), mode="create", temporary=True)
        select = ", ".join(
            f"CAST({quote_ident(c)} AS numeric) AS {quote_ident(c)}"
            if c in decimals
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


def _decimals_as_text(data: pa.Table | pa.RecordBatchReader) -> pa.Table | pa.RecordBatchReader:
    """``data`` with every decimal column as its exact text ("10.00", "-0.50")."""
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_decimal(f.type) else f for f in data.schema]
    )

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [
                pc.cast(col, pa.string()) if pa.types.is_decimal(col.type) else col
                for col in batch.columns
            ],
            schema=schema,
        )

    if isinstance(data, pa.Table):
        return pa.Table.from_batches([convert(b) for b in data.to_batches()], schema=schema)
    return pa.RecordBatchReader.from_batches(schema, (convert(b) for b in data))
