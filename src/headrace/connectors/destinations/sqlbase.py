"""The write path shared by SQL destinations: one transaction from stage to checkpoint.

Order inside the transaction, each step a named crash point (see ``crashpoints``):
stage the data → apply the write mode → quarantine → checkpoint → load ledger →
commit. The ledger (``_hr_loads``) makes a load idempotent: writing a ``load_id``
that already committed changes nothing, so an engine that retries a load task after
a crash between commit and recording success never loads twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from headrace.connectors.crashpoints import crashpoint
from headrace.connectors.destinations.base import (
    CHECKPOINT_TABLE,
    LOADS_TABLE,
    META_LOAD_ID,
    META_LOADED_AT,
    LoadResult,
    WriteMode,
    as_arrow,
    check_columns,
)
from headrace.connectors.fidelity import Fidelity, Rejects, screen_text, with_rejects
from headrace.connectors.incremental import Checkpoint, Interval, decode_value, encode_value
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError, HeadraceError, did_you_mean


class SqlDestination(ABC):
    """Base of the DuckDB and PostgreSQL destinations; backends supply the primitives.

    Placeholders are ``$1, $2, ...``, which both DuckDB and PostgreSQL (ADBC) accept.
    """

    dialect = "postgresql"
    streams = False  # True: append/replace read the data once, with no staging copy
    where = ""  # "<backend> <masked url>" for messages
    fidelity = Fidelity()  # text with NUL bytes / invalid UTF-8: quarantined by default
    schema: str | None = None

    # -- primitives a backend implements ---------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """Open a connection to the destination."""

    @abstractmethod
    def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement with bound parameters; return its rows."""

    @abstractmethod
    def _begin(self, conn: Any) -> None:
        """Start a transaction."""

    @abstractmethod
    def _commit(self, conn: Any) -> None:
        """Commit the transaction."""

    @abstractmethod
    def _rollback(self, conn: Any) -> None:
        """Roll the transaction back."""

    @abstractmethod
    def _stage(self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str) -> None:
        """Create temporary table ``name`` holding ``data``."""

    def _view(self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str) -> None:
        """Make ``data`` readable once as relation ``name`` without copying it (``streams``)."""
        # Only called when a backend sets ``streams = True``; such a backend must override it.
        raise TypeError(f"{type(self).__name__} sets streams=True but does not define _view")

    @abstractmethod
    def _columns(self, conn: Any, table: str, temporary: bool = False) -> dict[str, str] | None:
        """Column -> SQL type of ``table`` (None when it does not exist)."""

    @abstractmethod
    def _query_arrow(self, conn: Any, sql: str, params: Sequence[Any]) -> pa.Table:
        """Run a query with bound parameters; return the result as Arrow."""

    @abstractmethod
    def _exec_count(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a DELETE/INSERT and return how many rows it touched."""

    # -- connections -----------------------------------------------------------------

    _session: Any = None

    def _acquire(self) -> Any:
        return self._session if self._session is not None else self._connect()

    def _release(self, conn: Any) -> None:
        if conn is not self._session:
            conn.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[SqlDestination]:
        """Use one connection for every call inside the block (saves reopening a DuckDB file).

        Example:
            >>> with dest.session():
            ...     last = dest.checkpoint("etl", "crm.customers")
            ...     dest.write(delta, "customers", mode="merge", keys=["id"], checkpoint=...)
        """
        if self._session is not None:
            yield self
            return
        self._session = self._connect()
        try:
            yield self
        finally:
            conn, self._session = self._session, None
            with contextlib.suppress(Exception):
                self._rollback(conn)  # a read may have left a transaction open
            conn.close()

    # -- shared ----------------------------------------------------------------------

    def q(self, name: str) -> str:
        """Quote ``name`` and qualify it with this destination's schema."""
        ident = quote_ident(name, self.dialect)
        return f"{quote_ident(self.schema, self.dialect)}.{ident}" if self.schema else ident

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read query (``$1`` placeholders) and return the result as Arrow."""
        conn = self._acquire()
        try:
            return self._query_arrow(conn, sql, params)
        except HeadraceError:
            raise
        except Exception as exc:
            raise ConnectorError(f"Query on {self.where} failed: {exc}") from None
        finally:
            self._release(conn)

    def _ensure_meta(self, conn: Any) -> None:
        self._exec(
            conn,
            f"CREATE TABLE IF NOT EXISTS {self.q(CHECKPOINT_TABLE)} ("
            "pipeline TEXT NOT NULL, source TEXT NOT NULL, value TEXT, value_type TEXT NOT NULL, "
            "load_id TEXT, updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (pipeline, source))",
        )
        self._exec(
            conn,
            f"CREATE TABLE IF NOT EXISTS {self.q(LOADS_TABLE)} ("
            "load_id TEXT PRIMARY KEY, table_name TEXT NOT NULL, mode TEXT NOT NULL, "
            "rows_in BIGINT, rows_loaded BIGINT, rows_replaced BIGINT, rows_quarantined BIGINT, "
            "pipeline TEXT, source TEXT, loaded_at TIMESTAMPTZ NOT NULL)",
        )

    def checkpoint(self, pipeline: str, source: str) -> Checkpoint | None:
        """The last committed checkpoint of (pipeline, source), or None."""
        conn = self._acquire()
        try:
            if self._columns(conn, CHECKPOINT_TABLE) is None:
                return None
            rows = self._exec(
                conn,
                f"SELECT value, value_type, load_id, updated_at FROM {self.q(CHECKPOINT_TABLE)} "
                "WHERE pipeline = $1 AND source = $2",
                (pipeline, source),
            )
        finally:
            self._release(conn)
        if not rows:
            return None
        value, kind, load_id, updated_at = rows[0]
        return Checkpoint(pipeline, source, decode_value(value, kind), load_id, updated_at)

    def load(self, load_id: str) -> LoadResult | None:
        """The recorded result of ``load_id`` if it committed, else None."""
        conn = self._acquire()
        try:
            return self._recorded(conn, load_id)
        finally:
            self._release(conn)

    def _recorded(self, conn: Any, load_id: str) -> LoadResult | None:
        if self._columns(conn, LOADS_TABLE) is None:
            return None
        rows = self._exec(
            conn,
            f"SELECT table_name, mode, rows_in, rows_loaded, rows_replaced, rows_quarantined "
            f"FROM {self.q(LOADS_TABLE)} WHERE load_id = $1",
            (load_id,),
        )
        if not rows:
            return None
        table, mode, rows_in, loaded, replaced, quarantined = rows[0]
        return LoadResult(
            table,
            WriteMode(mode),
            load_id,
            rows_in,
            loaded,
            replaced,
            quarantined,
            already_loaded=True,
        )

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
    ) -> LoadResult:
        """Write ``data`` to ``table`` and commit it with its checkpoint and quarantine.

        Args:
            data: Arrow table/reader, :class:`Extract`, Polars or pandas frame.
            table: destination table (created from the data's schema if absent).
            mode: append, replace, replace_partition or merge.
            keys: key columns for merge.
            partition: the interval replace_partition deletes before inserting; every
                row written must lie inside it.
            checkpoint: committed in the same transaction (the next cursor value); a
                callable is called once the data is applied, for a streamed extract
                whose ``cursor_max`` is known only at its end.
            quarantine: rows rejected by checks (with reason columns), appended to
                ``<table>_quarantine`` in the same transaction.
            load_id: idempotency key; a load_id already committed is not applied again.
            metadata: add ``_hr_load_id`` and ``_hr_loaded_at`` columns.
            dedupe_order_by: for merge, keep only the row with the greatest value of
                this column per key (lookback overlap); without it duplicate keys fail.

        Returns:
            A :class:`LoadResult`.

        Example:
            >>> dest.write(df, "customers", mode="merge", keys=["customer_id"],
            ...            checkpoint=Checkpoint("customer_etl", "crm.customers", last))
        """
        mode = WriteMode.parse(mode)
        keys = [keys] if isinstance(keys, str) else list(keys)
        if mode is WriteMode.MERGE and not keys:
            raise ConnectorError(
                f"Merge into {table!r} needs keys=[...] (the columns that identify a row)."
            )
        if mode is WriteMode.REPLACE_PARTITION and partition is None:
            raise ConnectorError(
                f"replace_partition into {table!r} needs partition=Interval(column, start, end)."
            )
        load_id = load_id or uuid.uuid4().hex
        where = f"{table!r} in {self.where}"
        arrow = as_arrow(data, where)
        screened = Rejects()  # bad text, untyped columns: the same on every backend (fidelity)
        arrow = screen_text(arrow, self.fidelity.text, screened, where)
        self._check_types(arrow.schema, where)
        q_arrow = as_arrow(quarantine, f"{table}_quarantine") if quarantine is not None else None
        loaded_at = dt.datetime.now(dt.UTC)
        conn = self._acquire()
        stage = f"_hr_stage_{uuid.uuid4().hex[:12]}"
        try:
            self._begin(conn)
            self._ensure_meta(conn)
            done = self._recorded(conn, load_id)
            if done is not None:
                self._rollback(conn)
                return done
            columns = list(arrow.schema.names)
            _check_names(columns, keys, partition, dedupe_order_by, where)
            # Append and replace read a stream once, straight into the table, where the
            # backend can (DuckDB); other modes need the rows twice, so a stream is staged.
            # An Arrow table can be read any number of times: it is never copied.
            direct = self.streams and mode in (WriteMode.APPEND, WriteMode.REPLACE)
            if self.streams and isinstance(arrow, pa.Table):
                self._view(conn, arrow, stage)
                rows_in = arrow.num_rows
            elif direct:
                self._view(conn, arrow, stage)
            else:
                self._stage(conn, arrow, stage)
                rows_in = self._exec(
                    conn, f"SELECT count(*) FROM {quote_ident(stage, self.dialect)}"
                )[0][0]
            crashpoint("after_stage")
            source = stage
            if mode is WriteMode.MERGE:
                source = self._dedupe(conn, stage, keys, dedupe_order_by, where)
            replaced = 0
            meta_cols, meta_sql, meta_params = _meta(metadata, load_id, loaded_at, len(columns))
            select = ", ".join(quote_ident(c, self.dialect) for c in columns)
            if mode is WriteMode.REPLACE:
                self._replace(conn, table, source, select, meta_sql, meta_params)
                loaded = self._exec(conn, f"SELECT count(*) FROM {self.q(table)}")[0][0]
            else:
                self._evolve(conn, table, stage, meta_cols)
                if mode is WriteMode.REPLACE_PARTITION:
                    assert partition is not None  # checked on entry
                    replaced = self._delete_partition(conn, table, stage, partition, where)
                elif mode is WriteMode.MERGE:
                    replaced = self._delete_keys(conn, table, source, keys)
                insert_cols = ", ".join(quote_ident(c, self.dialect) for c in columns + meta_cols)
                loaded = self._exec_count(
                    conn,
                    f"INSERT INTO {self.q(table)} ({insert_cols}) SELECT {select}{meta_sql} "
                    f"FROM {quote_ident(source, self.dialect)}",
                    meta_params,
                )
            if direct:
                rows_in = loaded
            crashpoint("after_apply")
            quarantined = 0
            q_arrow = with_rejects(q_arrow, getattr(data, "rejects", None), screened)
            if q_arrow is not None:
                quarantined = self._quarantine(
                    conn, table, q_arrow, load_id, loaded_at, f"{stage}_q"
                )
            crashpoint("after_quarantine")
            if callable(checkpoint):  # known only once a stream has been read to its end
                checkpoint = checkpoint()
            if checkpoint is not None:
                checkpoint = self._advance(conn, checkpoint)
            if checkpoint is not None:
                text, kind = encode_value(checkpoint.value)
                self._exec(
                    conn,
                    f"INSERT INTO {self.q(CHECKPOINT_TABLE)} "
                    "(pipeline, source, value, value_type, load_id, updated_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pipeline, source) DO UPDATE SET "
                    "value = excluded.value, value_type = excluded.value_type, "
                    "load_id = excluded.load_id, updated_at = excluded.updated_at",
                    (
                        checkpoint.pipeline,
                        checkpoint.source,
                        text if text is not None else "",
                        kind,
                        load_id,
                        loaded_at,
                    ),
                )
                checkpoint = Checkpoint(
                    checkpoint.pipeline, checkpoint.source, checkpoint.value, load_id, loaded_at
                )
            self._exec(
                conn,
                f"INSERT INTO {self.q(LOADS_TABLE)} (load_id, table_name, mode, rows_in, rows_loaded, "
                "rows_replaced, rows_quarantined, pipeline, source, loaded_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                (
                    load_id,
                    table,
                    mode.value,
                    rows_in,
                    loaded,
                    replaced,
                    quarantined,
                    checkpoint.pipeline if checkpoint else "",
                    checkpoint.source if checkpoint else "",
                    loaded_at,
                ),
            )
            crashpoint("before_commit")
            self._commit(conn)
            crashpoint("after_commit")
            compacted = self._maintain(conn, table, replaced)
        except HeadraceError:
            self._safe_rollback(conn)
            raise
        except Exception as exc:
            self._safe_rollback(conn)
            raise ConnectorError(f"Loading {where} failed ({mode.value}): {exc}") from None
        finally:
            if conn is self._session:  # a closing connection drops these by itself
                self._drop_temporaries(conn, [stage, f"{stage}_d", f"{stage}_q"])
            else:  # settings a view changed belong to the database, which may stay open
                for name in (stage, f"{stage}_d", f"{stage}_q"):
                    self._unview(conn, name)
            self._release(conn)
        return LoadResult(
            table,
            mode,
            load_id,
            rows_in,
            loaded,
            replaced,
            quarantined,
            checkpoint,
            rows_superseded=rows_in - loaded if mode is WriteMode.MERGE else 0,
            compacted=compacted,
            values_nulled=screened.nulled + getattr(getattr(data, "rejects", None), "nulled", 0),
        )

    # -- steps -----------------------------------------------------------------------

    def _advance(self, conn: Any, new: Checkpoint) -> Checkpoint | None:
        """The checkpoint to store: never backwards, never back to "nothing loaded yet".

        An empty extract has no cursor maximum, and a lookback window may hold only
        older rows; neither may move the checkpoint back and make the next run re-read
        (or, appending, duplicate) what was already loaded. Returns None to keep the
        stored one.
        """
        rows = self._exec(
            conn,
            f"SELECT value, value_type FROM {self.q(CHECKPOINT_TABLE)} "
            "WHERE pipeline = $1 AND source = $2",
            (new.pipeline, new.source),
        )
        if new.value is None:
            return None
        if not rows:
            return new
        old = decode_value(*rows[0])
        try:
            if old is not None and new.value < old:
                return None
        except TypeError:  # the cursor changed type (e.g. text -> timestamp): take the new one
            pass
        return new

    def _drop_temporaries(self, conn: Any, names: list[str]) -> None:
        """Drop a write's stage tables and views from a connection that stays open."""
        for name in names:
            self._unview(conn, name)
            with contextlib.suppress(Exception):
                self._exec(conn, f"DROP TABLE IF EXISTS {quote_ident(name, self.dialect)}")
        with contextlib.suppress(Exception):
            self._commit(conn)

    def _unview(self, conn: Any, name: str) -> None:  # noqa: B027 (optional hook: no-op by default)
        """Forget a relation made by :meth:`_view` (backends that stream)."""

    def _check_types(self, schema: pa.Schema, where: str) -> None:  # noqa: B027 (optional hook)
        """Refuse, naming the column, data this backend cannot store."""

    def _column_ddl(self, conn: Any, stage: str, column: str, sql_type: str) -> str:
        """A column of a table created from ``stage``'s data: ``"name" TYPE`` and whatever
        the backend adds (DuckDB: the compression it chose from the data)."""
        return f"{quote_ident(column, self.dialect)} {sql_type}"

    def _maintain(self, conn: Any, table: str, deleted: int) -> bool:
        """After a committed load that deleted ``deleted`` rows: compact ``table`` if the
        backend needs it (never raises: the load is already committed). True if it did."""
        return False

    def _safe_rollback(self, conn: Any) -> None:
        # the connection may already be broken; then the server rolls back on its own
        with contextlib.suppress(Exception):
            self._rollback(conn)

    def _dedupe(
        self, conn: Any, stage: str, keys: list[str], order_by: str | None, where: str
    ) -> str:
        """Refuse null keys; keep the latest row per key (or refuse duplicates)."""
        qs = quote_ident(stage, self.dialect)
        key_list = ", ".join(quote_ident(k, self.dialect) for k in keys)
        nulls = " OR ".join(f"{quote_ident(k, self.dialect)} IS NULL" for k in keys)
        (n_null,) = self._exec(conn, f"SELECT count(*) FROM {qs} WHERE {nulls}")[0]
        if n_null:
            raise ConnectorError(
                f"Merge into {where}: {n_null} row(s) have a null key ({', '.join(keys)}); "
                "a null key can never match, so they would be inserted again on every run. "
                "Quarantine or fix them before loading."
            )
        if order_by is None:
            dup = self._exec(
                conn,
                f"SELECT {key_list}, count(*) FROM {qs} GROUP BY {key_list} HAVING count(*) > 1 LIMIT 1",
            )
            if dup:
                raise ConnectorError(
                    f"Merge into {where}: key {dup[0][:-1]!r} appears {dup[0][-1]} times in the data. "
                    "De-duplicate first or pass dedupe_order_by=<column> to keep the latest row."
                )
            return stage
        deduped = f"{stage}_d"
        self._exec(
            conn,
            f"CREATE TEMPORARY TABLE {quote_ident(deduped, self.dialect)} AS SELECT * FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {key_list} ORDER BY "
            f"{quote_ident(order_by, self.dialect)} DESC NULLS LAST) AS _hr_rn FROM {qs}) AS r "
            "WHERE _hr_rn = 1",
        )
        return deduped

    def _replace(
        self, conn: Any, table: str, source: str, select: str, meta_sql: str, params: tuple
    ) -> None:
        """Atomic swap: build the new table beside the old, then drop and rename in the txn."""
        new = f"{table}__hr_new"
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(new)}")
        self._exec(
            conn,
            f"CREATE TABLE {self.q(new)} AS SELECT {select}{meta_sql} FROM {quote_ident(source, self.dialect)}",
            params,
        )
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(table)}")
        self._exec(conn, f"ALTER TABLE {self.q(new)} RENAME TO {quote_ident(table, self.dialect)}")

    def _evolve(self, conn: Any, table: str, stage: str, meta_cols: list[str]) -> None:
        """Create ``table`` from the staged types, or add the data's new columns to it."""
        incoming = self._columns(conn, stage, temporary=True) or {}
        incoming = {c: t for c, t in incoming.items() if c != "_hr_rn"}
        if META_LOAD_ID in meta_cols:
            incoming[META_LOAD_ID] = "TEXT"
            incoming[META_LOADED_AT] = "TIMESTAMPTZ"
        existing = self._columns(conn, table)
        if existing is None:
            cols = ", ".join(self._column_ddl(conn, stage, c, t) for c, t in incoming.items())
            self._exec(conn, f"CREATE TABLE {self.q(table)} ({cols})")
            return
        for column, sql_type in check_columns(table, existing, incoming):
            self._exec(
                conn,
                f"ALTER TABLE {self.q(table)} ADD COLUMN {quote_ident(column, self.dialect)} {sql_type}",
            )

    def _delete_partition(
        self, conn: Any, table: str, stage: str, part: Interval, where: str
    ) -> int:
        col = quote_ident(part.column, self.dialect)
        (outside,) = self._exec(
            conn,
            f"SELECT count(*) FROM {quote_ident(stage, self.dialect)} "
            f"WHERE {col} IS NULL OR {col} < $1 OR {col} >= $2",
            (part.start, part.end),
        )[0]
        if outside:
            raise ConnectorError(
                f"replace_partition into {where}: {outside} row(s) have {part.column!r} outside "
                f"[{part.start}, {part.end}); they would survive the next replace of their own "
                "interval as duplicates. Filter the data to the run's interval."
            )
        return self._exec_count(
            conn,
            f"DELETE FROM {self.q(table)} WHERE {col} >= $1 AND {col} < $2",
            (part.start, part.end),
        )

    def _delete_keys(self, conn: Any, table: str, source: str, keys: list[str]) -> int:
        match = " AND ".join(
            f"t.{quote_ident(k, self.dialect)} = s.{quote_ident(k, self.dialect)}" for k in keys
        )
        return self._exec_count(
            conn,
            f"DELETE FROM {self.q(table)} AS t USING {quote_ident(source, self.dialect)} AS s "
            f"WHERE {match}",
        )

    def _quarantine(
        self, conn: Any, table: str, data: Any, load_id: str, at: dt.datetime, stage: str
    ) -> int:
        qtable = f"{table}_quarantine"
        self._stage(conn, data, stage)
        columns = [c for c in data.schema.names]
        meta_cols, meta_sql, meta_params = _meta(True, load_id, at, 0)
        self._evolve(conn, qtable, stage, meta_cols)
        cols = ", ".join(quote_ident(c, self.dialect) for c in columns + meta_cols)
        select = ", ".join(quote_ident(c, self.dialect) for c in columns)
        self._exec(
            conn,
            f"INSERT INTO {self.q(qtable)} ({cols}) SELECT {select}{meta_sql} "
            f"FROM {quote_ident(stage, self.dialect)}",
            meta_params,
        )
        return self._exec(conn, f"SELECT count(*) FROM {quote_ident(stage, self.dialect)}")[0][0]


def _meta(on: bool, load_id: str, at: dt.datetime, _n: int) -> tuple[list[str], str, tuple]:
    """Metadata columns, their SELECT expressions (bound values) and parameters."""
    if not on:
        return [], "", ()
    return (
        [META_LOAD_ID, META_LOADED_AT],
        f", CAST($1 AS TEXT) AS {META_LOAD_ID}, CAST($2 AS TIMESTAMPTZ) AS {META_LOADED_AT}",
        (load_id, at),
    )


def _check_names(
    columns: list[str], keys: list[str], part: Interval | None, order_by: str | None, where: str
) -> None:
    for name, role in (
        [(k, "key") for k in keys]
        + ([(part.column, "partition column")] if part else [])
        + ([(order_by, "dedupe_order_by column")] if order_by else [])
    ):
        if name not in columns:
            raise ConnectorError(
                f"Loading {where}: {role} {name!r} is not a column of the data."
                + did_you_mean(name, columns)
            )
