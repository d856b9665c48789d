"""The write path shared by SQL destinations: one transaction from stage to checkpoint.

Order inside the transaction, each step a named crash point (see ``crashpoints``):
stage the data → apply the write mode → quarantine → checkpoint → load ledger →
commit. The ledger (``_hr_loads``) makes a load idempotent: writing a ``load_id``
that already committed changes nothing, so an engine that retries a load task after
a crash between commit and recording success never loads twice.

A fenced load (``fence=``, the checkpoint its extract started from) first compares
that value with the stored checkpoint inside the transaction and raises
:class:`~headrace.connectors.incremental.CheckpointMoved` when another load committed
in between; ``cursor_column=`` keeps a merge from replacing a stored row whose cursor
value is greater. :meth:`SqlDestination.write` reads as its steps: ``_plan``,
``_check_fence``, ``_stage_data``, ``_apply``, ``_quarantine``, ``_store_checkpoint``,
``_record``, commit; the SQL of each write mode is in ``modes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from headrace.connectors.crashpoints import crashpoint
from headrace.connectors.destinations.destination_base import (
    CHECKPOINT_TABLE,
    LOADS_TABLE,
    LoadResult,
    WriteMode,
    as_arrow,
    write_arguments,
)
from headrace.connectors.destinations.modes import ModeSteps, Plan, check_names, meta_columns
from headrace.connectors.fidelity import Fidelity, Rejects, screen_text, with_rejects
from headrace.connectors.incremental import (
    Checkpoint,
    CheckpointMoved,
    Interval,
    decode_value,
    encode_value,
)
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError, HeadraceError


class SqlDestination(ModeSteps, ABC):
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

    def _commit(self, conn: Any) -> None:
        """Commit the transaction (DB-API)."""
        conn.commit()

    def _rollback(self, conn: Any) -> None:
        """Roll the transaction back (DB-API)."""
        conn.rollback()

    @abstractmethod
    def _stage(
        self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str, table: str
    ) -> None:
        """Create temporary table ``name`` holding ``data``, the rows for ``table`` (which
        errors name: data the backend refuses)."""

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
    _meta_ready = False  # the session's connection committed a load: the meta tables exist

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
        self._meta_ready = False
        try:
            yield self
        finally:
            conn, self._session = self._session, None
            self._meta_ready = False
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
            raise ConnectorError(f"Query failed: {exc}", connection=self.where) from exc
        finally:
            self._release(conn)

    def columns(self, table: str) -> dict[str, str] | None:
        """Column -> SQL type of ``table`` as the database reports it, or None when it does not exist."""
        conn = self._acquire()
        try:
            return self._columns(conn, table)
        finally:
            self._release(conn)

    def row_count(self, table: str) -> int | None:
        """The number of rows of ``table``, or None when it does not exist."""
        conn = self._acquire()
        try:
            if self._columns(conn, table) is None:
                return None
            return int(self._exec(conn, f"SELECT count(*) FROM {self.q(table)}")[0][0])
        finally:
            self._release(conn)

    def _ensure_meta(self, conn: Any) -> None:
        if self._meta_ready and conn is self._session:  # a session's loads create them once
            return
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

    def _recorded(self, conn: Any, load_id: str, *, ensured: bool = False) -> LoadResult | None:
        """The ledger's result of ``load_id``; ``ensured``: the ledger table is known to exist."""
        if not ensured and self._columns(conn, LOADS_TABLE) is None:
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
        load_id: str | Callable[[], str] | None = None,
        metadata: bool = False,
        dedupe_order_by: str | None = None,
        fence: Checkpoint | None = None,
        cursor_column: str | None = None,
        origin: tuple[str, str] | None = None,
        verify: Callable[[LoadResult], None] | None = None,
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
                ``<table>_quarantine`` in the same transaction; a callable is called once
                the data is applied (the rejects of a stream checked batch by batch).
            load_id: idempotency key; a load_id already committed is not applied again
                (see :func:`~headrace.connectors.incremental.load_identity`). A callable
                is called once the data has been read (a digest of a stream); if its id
                had committed, the load is rolled back and the recorded result returned.
            metadata: add ``_hr_load_id`` and ``_hr_loaded_at`` columns.
            dedupe_order_by: for merge, keep only the row with the greatest value of
                this column per key (lookback overlap); without it duplicate keys fail.
            fence: the checkpoint the extract started from (``value=None``: none was
                stored). The load commits only if the destination still holds that
                value; otherwise nothing is applied and :class:`CheckpointMoved` is raised
                so the caller re-extracts from the new checkpoint.
            cursor_column: for merge, an incoming row never replaces a stored row whose
                value of this column is greater (the stored row is newer).
            origin: ``(pipeline, source dataset)`` recorded in the load ledger when no
                checkpoint or fence names them (lineage).
            verify: called with the result just before commit; raising rolls the load
                back (reconciliation before commit).

        Returns:
            A :class:`LoadResult`.

        Raises:
            CheckpointMoved: the fence no longer holds; nothing was applied.

        Example:
            >>> start = dest.checkpoint("customer_etl", "crm.customers")
            >>> dest.write(df, "customers", mode="merge", keys=["customer_id"],
            ...            fence=start or Checkpoint("customer_etl", "crm.customers", None),
            ...            checkpoint=Checkpoint("customer_etl", "crm.customers", last))
        """
        deferred = load_id if callable(load_id) else None
        plan = self._plan(
            table, mode, keys, partition, load_id if isinstance(load_id, str) else None, metadata,
            dedupe_order_by, cursor_column,
        )  # fmt: skip
        arrow = as_arrow(data, table=table, connection=self.where)
        screened = Rejects()  # bad text, untyped columns: the same on every backend (fidelity)
        arrow = screen_text(arrow, self.fidelity.text, screened, plan.where)
        self._check_types(arrow.schema, table)
        conn = self._acquire()
        try:
            self._begin(conn)
            self._ensure_meta(conn)
            done = None if deferred else self._recorded(conn, plan.load_id, ensured=True)
            if done is not None:  # a replay of a committed load changes nothing
                self._rollback(conn)
                return done
            if fence is not None:
                self._check_fence(conn, fence, table)
            check_names(list(arrow.schema.names), plan)
            # metadata columns need the id while inserting: then a stream is staged first
            rows_in, direct = self._stage_data(conn, arrow, plan, not (deferred and metadata))
            crashpoint("after_stage")
            if deferred is not None and not direct:
                plan, done = self._settle_id(conn, plan, deferred)
                if done is not None:
                    return done
            loaded, replaced = self._apply(conn, plan, list(arrow.schema.names))
            rows_in = loaded if direct else rows_in
            crashpoint("after_apply")
            if deferred is not None and direct:
                plan, done = self._settle_id(conn, plan, deferred)
                if done is not None:
                    return done
            if callable(quarantine):  # known only once a checked stream has been read
                quarantine = quarantine()
            quarantined = 0
            q_arrow = (
                as_arrow(quarantine, table=f"{table}_quarantine", connection=self.where)
                if quarantine is not None
                else None
            )
            # rows the source and the text screen set aside go to the same quarantine
            q_arrow = with_rejects(q_arrow, getattr(data, "rejects", None), screened)
            if q_arrow is not None:
                quarantined = self._quarantine(
                    conn, table, q_arrow, plan.load_id, plan.loaded_at, f"{plan.stage}_q"
                )
            crashpoint("after_quarantine")
            stored = self._store_checkpoint(conn, checkpoint, plan)
            result = LoadResult(
                table, plan.mode, plan.load_id, rows_in, loaded, replaced, quarantined, stored,
                rows_superseded=rows_in - loaded if plan.mode is WriteMode.MERGE else 0,
                values_nulled=screened.nulled + getattr(getattr(data, "rejects", None), "nulled", 0),
            )  # fmt: skip
            self._record(conn, result, plan, stored or fence, origin)
            if verify is not None:
                verify(result)
            crashpoint("before_commit")
            self._commit(conn)
            self._meta_ready = conn is self._session
            crashpoint("after_commit")
            compacted = self._maintain(conn, table, replaced)
        except HeadraceError:
            self._safe_rollback(conn)
            raise
        except Exception as exc:
            self._safe_rollback(conn)
            raise ConnectorError(
                f"Loading failed ({plan.mode.value}): {exc}", table=table, connection=self.where
            ) from exc
        finally:
            self._cleanup(conn, plan.stage)
        return dataclasses.replace(result, compacted=compacted)

    # -- steps of a write, in order ---------------------------------------------------

    def _plan(
        self,
        table: str,
        mode: WriteMode | str,
        keys: Sequence[str],
        partition: Interval | None,
        load_id: str | None,
        metadata: bool,
        dedupe_order_by: str | None,
        cursor_column: str | None,
    ) -> Plan:
        """Check the write's arguments and fix what the steps share (ids, names, time)."""
        checked_mode, key_list = write_arguments(table, mode, keys, partition)
        return Plan(
            table=table,
            mode=checked_mode,
            keys=key_list,
            partition=partition,
            load_id=load_id or uuid.uuid4().hex,
            metadata=metadata,
            dedupe_order_by=dedupe_order_by,
            cursor_column=cursor_column if checked_mode is WriteMode.MERGE else None,
            loaded_at=dt.datetime.now(dt.UTC),
            stage=f"_hr_stage_{uuid.uuid4().hex[:12]}",
            connection=self.where,
        )

    def _settle_id(
        self, conn: Any, plan: Plan, load_id: Callable[[], str]
    ) -> tuple[Plan, LoadResult | None]:
        """Fix a load id known only once the data was read (a digest of a stream).

        Returns the plan with that id, and the recorded result when the id had already
        committed: then the transaction is rolled back and nothing of it stays.
        """
        final = load_id()
        done = self._recorded(conn, final, ensured=True)
        if done is not None:
            self._rollback(conn)
        return dataclasses.replace(plan, load_id=final), done

    def _check_fence(self, conn: Any, fence: Checkpoint, table: str) -> None:
        """Compare the stored checkpoint with the one the extract started from.

        Runs inside the load's transaction. On PostgreSQL a transaction-level advisory
        lock on (schema, pipeline, source) serialises the fenced loads of one source, so
        two loads that started from the same checkpoint cannot both pass (a row lock
        would not cover the first load, when no checkpoint row exists yet). DuckDB
        allows one writing process per file and fails conflicting transactions itself.
        """
        if self.dialect == "postgresql":
            key = f"{self.schema or ''}|{fence.pipeline}|{fence.source}"
            self._exec(conn, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (key,))
        rows = self._exec(
            conn,
            f"SELECT value, value_type FROM {self.q(CHECKPOINT_TABLE)} "
            "WHERE pipeline = $1 AND source = $2",
            (fence.pipeline, fence.source),
        )
        found = decode_value(*rows[0]) if rows else None
        if found != fence.value:
            raise CheckpointMoved(
                fence.pipeline, fence.source, fence.value, found, table=table, connection=self.where
            )

    def _stage_data(
        self, conn: Any, arrow: pa.Table | pa.RecordBatchReader, plan: Plan, direct_ok: bool
    ) -> tuple[int, bool]:
        """Make the data readable as relation ``plan.stage``: ``(rows, direct)``.

        Append and replace read a stream once, straight into the table, where the
        backend can (DuckDB: ``direct``, rows counted as inserted); other modes need the
        rows twice, so a stream is staged. An Arrow table can be read any number of
        times: it is never copied.
        """
        direct = direct_ok and self.streams and plan.mode in (WriteMode.APPEND, WriteMode.REPLACE)
        if self.streams and isinstance(arrow, pa.Table):
            self._view(conn, arrow, plan.stage)
            return arrow.num_rows, False
        if direct:
            self._view(conn, arrow, plan.stage)
            return 0, True
        self._stage(conn, arrow, plan.stage, plan.table)
        count = self._exec(conn, f"SELECT count(*) FROM {quote_ident(plan.stage, self.dialect)}")
        return count[0][0], False

    def _apply(self, conn: Any, plan: Plan, columns: list[str]) -> tuple[int, int]:
        """Apply the write mode to the staged rows: ``(rows inserted, rows deleted)``."""
        source = plan.stage
        if plan.mode is WriteMode.MERGE:
            source = self._dedupe(conn, plan.stage, plan.keys, plan.dedupe_order_by, plan.table)
        meta_cols, meta_sql, meta_params = meta_columns(
            plan.metadata, plan.load_id, plan.loaded_at, 0
        )
        select = ", ".join(quote_ident(c, self.dialect) for c in columns)
        if plan.mode is WriteMode.REPLACE:
            self._replace(conn, plan.table, source, select, meta_sql, meta_params)
            return self._exec(conn, f"SELECT count(*) FROM {self.q(plan.table)}")[0][0], 0
        created = self._evolve(conn, plan.table, plan.stage, meta_cols)
        replaced = 0
        newer = ""
        if plan.mode is WriteMode.REPLACE_PARTITION:
            assert plan.partition is not None  # checked in _plan
            replaced = self._delete_partition(conn, plan.table, plan.stage, plan.partition)
        elif plan.mode is WriteMode.MERGE and not created:  # a new table has nothing to replace
            replaced = self._delete_keys(conn, plan.table, source, plan.keys, plan.cursor_column)
            if plan.cursor_column is not None:  # keys still stored hold newer rows: skip them
                newer = (
                    f" WHERE NOT EXISTS (SELECT 1 FROM {self.q(plan.table)} AS t "
                    f"WHERE {self._key_match(plan.keys)})"
                )
        insert_cols = ", ".join(quote_ident(c, self.dialect) for c in columns + meta_cols)
        loaded = self._exec_count(
            conn,
            f"INSERT INTO {self.q(plan.table)} ({insert_cols}) SELECT {select}{meta_sql} "
            f"FROM {quote_ident(source, self.dialect)} AS s{newer}",
            meta_params,
        )
        return loaded, replaced

    def _store_checkpoint(
        self,
        conn: Any,
        checkpoint: Checkpoint | Callable[[], Checkpoint | None] | None,
        plan: Plan,
    ) -> Checkpoint | None:
        """Upsert the new checkpoint (never moving it back); the one stored, or None."""
        if callable(checkpoint):  # known only once a stream has been read to its end
            checkpoint = checkpoint()
        if checkpoint is None:
            return None
        checkpoint, stored = self._advance(conn, checkpoint)
        if checkpoint is None:
            return None
        text, kind = encode_value(checkpoint.value)
        # A stored row is updated in place, a new one inserted: DuckDB's upsert took 3-6
        # times as long (4-45 ms against 1 ms), on every stream batch. PostgreSQL keeps
        # the upsert for a concurrent first load; DuckDB has one writer per file, and a
        # conflicting transaction fails on the key (loudly) either way.
        sql = (
            f"UPDATE {self.q(CHECKPOINT_TABLE)} SET value = $3, value_type = $4, load_id = $5, "
            "updated_at = $6 WHERE pipeline = $1 AND source = $2"
            if stored
            else f"INSERT INTO {self.q(CHECKPOINT_TABLE)} "
            "(pipeline, source, value, value_type, load_id, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)"
            + ("" if self.dialect == "duckdb" else
               " ON CONFLICT (pipeline, source) DO UPDATE SET "
               "value = excluded.value, value_type = excluded.value_type, "
               "load_id = excluded.load_id, updated_at = excluded.updated_at")
        )  # fmt: skip
        self._exec(
            conn,
            sql,
            (
                checkpoint.pipeline,
                checkpoint.source,
                text if text is not None else "",
                kind,
                plan.load_id,
                plan.loaded_at,
            ),
        )
        return Checkpoint(
            checkpoint.pipeline, checkpoint.source, checkpoint.value, plan.load_id, plan.loaded_at
        )

    def _record(
        self,
        conn: Any,
        result: LoadResult,
        plan: Plan,
        named: Checkpoint | None,
        origin: tuple[str, str] | None,
    ) -> None:
        """Add the load to the ledger ``_hr_loads`` (its id makes a replay a no-op)."""
        pipeline, source = origin or ((named.pipeline, named.source) if named else ("", ""))
        self._exec(
            conn,
            f"INSERT INTO {self.q(LOADS_TABLE)} (load_id, table_name, mode, rows_in, rows_loaded, "
            "rows_replaced, rows_quarantined, pipeline, source, loaded_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            (
                plan.load_id,
                plan.table,
                plan.mode.value,
                result.rows_in,
                result.rows_loaded,
                result.rows_replaced,
                result.rows_quarantined,
                pipeline,
                source,
                plan.loaded_at,
            ),
        )

    def _cleanup(self, conn: Any, stage: str) -> None:
        """Drop the write's stage relations and give the connection back."""
        names = [stage, f"{stage}_d", f"{stage}_q"]
        if conn is self._session:  # a closing connection drops these by itself
            self._drop_temporaries(conn, names)
        else:  # settings a view changed belong to the database, which may stay open
            for name in names:
                self._unview(conn, name)
        self._release(conn)

    # -- helpers ---------------------------------------------------------------------

    def _advance(self, conn: Any, new: Checkpoint) -> tuple[Checkpoint | None, bool]:
        """The checkpoint to store: never backwards, never back to "nothing loaded yet".

        An empty extract has no cursor maximum, and a lookback window may hold only
        older rows; neither may move the checkpoint back and make the next run re-read
        (or, appending, duplicate) what was already loaded. Returns None to keep the
        stored one, and whether a checkpoint row is stored.
        """
        rows = self._exec(
            conn,
            f"SELECT value, value_type FROM {self.q(CHECKPOINT_TABLE)} "
            "WHERE pipeline = $1 AND source = $2",
            (new.pipeline, new.source),
        )
        if new.value is None:
            return None, bool(rows)
        if not rows:
            return new, False
        old = decode_value(*rows[0])
        try:
            if old is not None and new.value < old:
                return None, True
        except TypeError:  # the cursor changed type (e.g. text -> timestamp): take the new one
            pass
        return new, True

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

    def _check_types(self, schema: pa.Schema, table: str) -> None:  # noqa: B027 (optional hook)
        """Refuse, naming the table and column, data this backend cannot store."""

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
