"""SQL sources — PostgreSQL, MySQL/MariaDB, SQLite — read as Arrow record batches.

Drivers were chosen by measurement on this machine (1M rows x 11 columns, see the
connectors report): PostgreSQL through ADBC, whose parameter-free queries run as
``COPY ... TO STDOUT (FORMAT BINARY)`` (2.0 s, 180 MB; connectorx 1.9 s; the raw COPY
floor 1.3 s). ADBC with bound parameters materialises the whole result (3.1 s,
609 MB), so filter values are bound with ``set_config`` and read back by the query
with ``current_setting``: the query text holds no value and still streams.
MariaDB through connectorx when there are no parameters (0.48 s for 300k rows against
4.4 s for PyMySQL), PyMySQL's server-side cursor when there are. SQLite through ADBC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from headrace.config import Settings
from headrace.connectors.fidelity import Fidelity, Flag, Rejects, ValuePolicy, settle
from headrace.connectors.incremental import Checkpoint, Cursor, Interval
from headrace.connectors.naming import ConnectionURL, qualified, quote_ident, resolve
from headrace.connectors.sources.source_base import DEFAULT_BATCH_ROWS, Extract
from headrace.errors import ConnectorError

#: (column, operator, value): one condition of an incremental or interval read.
Filter = tuple[str, str, Any]


class SqlSource:
    """Rows of a table or a query in PostgreSQL, MySQL/MariaDB or SQLite.

    Args:
        url: a connection URL or :class:`ConnectionURL`.
        table: the table to read (quoted, any characters); or use ``query``.
        schema: the table's schema (PostgreSQL) or database (MySQL).
        query: a SELECT to read instead of a table; its placeholders are the driver's
            own (``$1`` PostgreSQL, ``%s`` MySQL, ``?`` SQLite) with ``params``.
        params: values bound to the query's placeholders (never pasted into SQL).
        columns: the columns to read (default all).
        types: column -> Arrow type overrides; the column is read as text and cast,
            which is how loosely typed SQLite columns are read safely.
        batch_rows: rows per record batch (memory bound).
        fidelity: what happens to values with no faithful type (±infinity timestamps,
            zero dates, NaN in numeric): quarantined with their reason (default),
            stored as NULL with a warning, or a failed read; see ``fidelity``.

    Example:
        >>> src = SqlSource.from_url("crm", Settings.load(), table="customers")
        >>> for batch in src.read(cursor=Cursor("updated_at")): ...
    """

    def __init__(
        self,
        url: str | ConnectionURL,
        *,
        table: str | None = None,
        schema: str | None = None,
        query: str | None = None,
        params: Sequence[Any] = (),
        columns: Sequence[str] | None = None,
        types: dict[str, pa.DataType] | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        fidelity: Fidelity | None = None,
    ) -> None:
        self.conn = url if isinstance(url, ConnectionURL) else ConnectionURL.parse(url)
        if self.conn.backend not in ("postgresql", "mysql", "sqlite"):
            raise ConnectorError(
                f"SqlSource reads PostgreSQL, MySQL or SQLite; {self.conn.masked} is "
                f"{self.conn.backend}. Use a destination object to read a warehouse."
            )
        if (table is None) == (query is None):
            raise ConnectorError("SqlSource needs exactly one of table=... or query=....")
        self.table = table
        self.schema = schema or self.conn.options.get("schema")
        self.query = query
        self.params = tuple(params)
        self.columns = list(columns) if columns else None
        self.types = dict(types or {})
        self.batch_rows = batch_rows
        self.fidelity = fidelity or Fidelity()

    @classmethod
    def from_url(
        cls, url_or_name: str, settings: Settings | None = None, **kwargs: Any
    ) -> SqlSource:
        """Build a source from a URL or a named connection (``HEADRACE_CONN_<NAME>``)."""
        return cls(resolve(url_or_name, settings), **kwargs)

    @property
    def name(self) -> str:
        """What this source reads, for messages and checkpoint keys (no credentials)."""
        return self.table if self.table is not None else "query"

    def read(
        self,
        *,
        cursor: Cursor | None = None,
        checkpoint: Checkpoint | None = None,
        interval: Interval | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Extract:
        """Stream the rows, optionally only past ``checkpoint`` or inside ``interval``.

        Args:
            cursor: cursor mode; rows past ``checkpoint`` (or ``cursor.initial``).
            checkpoint: the last checkpoint, from the destination.
            interval: interval mode; rows in ``[interval.start, interval.end)``.
            progress: called with the rows read so far after each batch.

        Returns:
            An :class:`Extract`: iterate it for record batches; afterwards ``rows`` and
            ``cursor_max`` (the value for the next checkpoint) are set.
        """
        filters: list[Filter] = []
        if cursor is not None:
            value, inclusive = cursor.lower_bound(checkpoint)
            if value is not None:
                filters.append((cursor.column, ">=" if inclusive else ">", value))
        if interval is not None:
            filters.append((interval.column, ">=", interval.start))
            filters.append((interval.column, "<", interval.end))
        from headrace.connectors.sources import mysql, postgres_source, sqlite

        backend = {"postgresql": postgres_source, "mysql": mysql, "sqlite": sqlite}[
            self.conn.backend
        ]
        schema, checked = backend.open_batches(self, filters)
        where = f"{self.name} at {self.conn.masked}"
        rejects = Rejects()
        return Extract(
            schema,
            settled(checked, self.fidelity.values, rejects, where),
            cursor_column=cursor.column if cursor else None,
            description=where,
            progress=progress,
            rejects=rejects,
        )

    # -- SQL text (identifiers quoted; values always placeholders) ------------------

    def select_sql(
        self,
        dialect: str,
        conditions: list[str],
        columns: Sequence[str] | None = None,
        exprs: dict[str, str] | None = None,
    ) -> str:
        """``SELECT <columns> FROM <table or (query)> [WHERE ...]`` for ``dialect``.

        Args:
            dialect: quoting and casting rules.
            conditions: SQL conditions joined with AND (values are placeholders).
            columns: the columns (default ``self.columns``, else all).
            exprs: column -> SELECT item converting it on the server (type fidelity);
                used only for the columns listed (in ``columns`` or ``self.columns``).
        """
        columns = columns or self.columns
        exprs = exprs or {}
        items = [exprs.get(c) or self._select_item(c, dialect) for c in columns or ()]
        cols = ", ".join(items) if items else "*"
        if self.table is not None:
            source = qualified(self.table, self.schema, dialect)
        else:
            source = f"({self.query}) AS {quote_ident('_hr_q', dialect)}"
        sql = f"SELECT {cols} FROM {source}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return sql

    def _select_item(self, column: str, dialect: str) -> str:
        ident = quote_ident(column, dialect)
        if column in self.types and dialect == "sqlite":
            as_ = "BLOB" if pa.types.is_binary(self.types[column]) else "TEXT"
            return f"CAST({ident} AS {as_}) AS {ident}"
        return ident


def settled(
    checked: Iterator[tuple[pa.RecordBatch, list[Flag]]],
    policy: ValuePolicy,
    rejects: Rejects,
    where: str,
) -> Iterator[pa.RecordBatch]:
    """The good rows of each batch, the others settled by ``policy`` into ``rejects``."""
    for batch, flags in checked:
        good = settle(batch, flags, policy, rejects, where) if flags else batch
        rejects.rows += batch.num_rows
        yield good


def cast_overrides(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], where: dict[str, str | None]
) -> pa.RecordBatch:
    """Cast overridden columns to their Arrow type; a value that does not fit is named.

    ``where`` holds the error fields naming the source (``table``, ``connection``).
    """
    if not types:
        return batch
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        target = types.get(name)
        if target is not None and column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConnectorError(
                    f"cannot be read as {target}: {exc}. Fix the data or pass "
                    f"types={{{name!r}: <pyarrow type>}} (pa.string() always fits).",
                    **where,
                    column=name,
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Zero-copy slices of at most ``rows`` rows (drivers size their batches in bytes)."""
    for batch in batches:
        for offset in range(0, batch.num_rows, rows):
            yield batch.slice(offset, rows)


def override_schema(schema: pa.Schema, types: dict[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in schema])
