"""DuckDB destination: the embedded warehouse, a file under ``.headrace/`` by default.

Merge is DELETE of the staged keys + INSERT in one transaction, chosen by measurement
(bench/extract_load.py --merge-strategies, a 1% delta of 20,000 rows into 2,000,000 on
this machine): DELETE + INSERT 0.06 s, ``MERGE INTO`` 2.2 s, ``INSERT ... ON CONFLICT``
2.8 s — DuckDB rewrites text columns slowly when it updates them in place. Append and
replace stream the Arrow data straight into the table (no staging copy).

Memory: DuckDB keeps every block it writes in its buffer pool until the pool reaches
``memory_limit`` (default 80% of RAM), so a load's resident memory grew with the
table (full load of 2M customers: 246 MB at 500k rows, 335 MB at 1M, 459 MB at 2M).
Written blocks are already on disk and cost nothing to evict, so connections opened
here cap the pool (``memory_limit``, default 128 MB; larger joins and sorts spill to
``<file>.tmp``): 223 / 249 / 296 MB for the same loads, and a synthetic stream levels
off at about 300 MB (1M rows 248 MB, 4M 303 MB, 8M 306 MB; uncapped 8M: 628 MB).

Full-load CPU (2M customers from an in-memory Arrow stream, DuckDB 2.0.1, one thread):
the insert takes 2.8-3.9 s, of which a third compresses strings (DICT_FSST; perf:
``DictFSSTCompressionState::CompressInternal`` alone is 22% of the samples). Without
string compression it takes 2.0 s but the file is 263 MB instead of 74 MB: kept
compressed. A stream is inserted with DuckDB's threads and ``preserve_insertion_order``
off for that statement, so both cores compress row groups in parallel (end-to-end
full load of 2M rows from PostgreSQL: 2.5-2.6 s against 2.9-3.4 s with one thread and
5.7 s with two threads that keep the order). Rows of a streamed append or replace
therefore land in the order batches were taken, not strictly the source's; a table
has no order in SQL, and ``preserve_order=True`` keeps it at that cost.

String compression: DuckDB's own choice for text is DICT_FSST, which costs most on
columns whose values are nearly all distinct (emails, addresses: 0.75 CPU-s per 2M
values against 0.37-0.41 s for ZSTD, at the same size within 15%). A table created
here from data (replace, or the first append/merge) therefore gets ``USING COMPRESSION
zstd`` on each text column whose first batch (up to 65,536 rows, at least 1,024) is at
least half distinct; other columns keep DuckDB's analysis. On the 2M customers this
took the insert from 2.7-2.8 to 2.0-2.15 CPU-s and the file from 74 to 79 MB; scans and
lookups measured the same. ``compression="duckdb"`` leaves every column to DuckDB; files
in a storage format older than v1.2 (no ZSTD) are left to it too.

Deleted rows and vacuum: a merge deletes the rows it replaces; DuckDB gives their space
back when a checkpoint vacuums (rewrites) the row groups that hold them, which it tries
at every checkpoint, including the one on close. On the benchmark's table (2M rows, 1%
merged per run) half the closes vacuumed, taking 0.6-0.8 s against 0.03-0.04 s, so
an incremental run took 0.30-0.40 s or 0.86-1.20 s at random. Connections opened here
therefore checkpoint without vacuuming (``max_vacuum_tasks = 0``), and a load compacts
its table itself, once the rows deleted since the last compaction reach ``vacuum_after``
(default 10%) of the table: one 0.6-0.8 s vacuum every ~10 such runs instead of one
every other run. ``vacuum_after=0`` restores DuckDB's own behaviour. Either way DuckDB
vacuums only row groups changed since the last checkpoint (``FORCE CHECKPOINT`` and
``VACUUM`` leave the others as they are, measured), so the compacting load reclaims
the row groups it touched itself: all of them when merged keys are spread over the
table, as in the benchmark and most change streams; deletes left in row groups that
no later load touches stay until one does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headrace.config import Settings
from headrace.connectors.destinations.destination_base import (
    LOADS_TABLE,
    META_LOAD_ID,
    META_LOADED_AT,
    LoadResult,
)
from headrace.connectors.destinations.sqlbase import SqlDestination
from headrace.connectors.fidelity import Fidelity
from headrace.connectors.naming import (
    ConnectionFailedError,
    ConnectionURL,
    default_warehouse,
    quote_ident,
    resolve,
)
from headrace.errors import ConnectorError


class DuckDBDestination(SqlDestination):
    """Write Arrow data into a DuckDB database file.

    Args:
        path: the database file (created with its folder if absent) or ``:memory:``.
        schema: the schema tables go in (default ``main``); created if absent.
        memory_limit: DuckDB's buffer pool cap for connections opened here (``"128MB"``,
            ``"2GB"``); None leaves DuckDB's default (80% of RAM). It applies to the
            whole database instance, so other connections to the file in this process
            share it.
        preserve_order: insert a streamed append or replace in the source's row order,
            on one core (default False: batches are inserted in parallel).
        compression: ``"adaptive"`` (ZSTD for mostly-distinct text columns of the tables it
            creates, DuckDB's choice elsewhere) or ``"duckdb"`` (DuckDB's choice for all).
        vacuum_after: compact a table once merges and partition replaces have deleted
            this share of its rows since it was last compacted (0: let DuckDB vacuum at
            every checkpoint, its default).
        fidelity: what happens to text with a NUL byte or invalid UTF-8 (quarantined
            naming the column by default; the same on every destination, see ``fidelity``).

    Example:
        >>> dest = DuckDBDestination.from_settings(Settings.load())
        >>> dest.write(table, "customers", mode="merge", keys=["customer_id"])
    """

    dialect = "duckdb"
    streams = True

    def __init__(
        self,
        path: str | Path,
        *,
        schema: str | None = None,
        memory_limit: str | None = "128MB",
        preserve_order: bool = False,
        vacuum_after: float = 0.1,
        compression: str = "adaptive",
        fidelity: Fidelity | None = None,
    ) -> None:
        self.path = str(path)
        self.fidelity = fidelity or Fidelity()
        self.schema = schema
        if memory_limit is not None and not _MEMORY.match(memory_limit):
            raise ConnectorError(
                f"memory_limit {memory_limit!r} for DuckDB {self.path} is not a size; write "
                "it like '128MB' or '2GB'."
            )
        self.memory_limit = memory_limit
        self.preserve_order = preserve_order
        if not 0 <= vacuum_after <= 1:
            raise ConnectorError(
                f"vacuum_after={vacuum_after!r} for DuckDB {self.path} is a share of a table's "
                "rows: between 0 and 1."
            )
        self.vacuum_after = vacuum_after
        if compression not in ("adaptive", "duckdb"):
            raise ConnectorError(
                f"compression={compression!r} for DuckDB {self.path}: use 'adaptive' or 'duckdb'."
            )
        self.compression = compression
        self._samples: dict[str, pa.Table] = {}  # view/stage name -> its first rows
        self._distinct: dict[str, set[str]] = {}  # view/stage name -> _distinct_text()
        self._zstd: bool | None = None  # _has_zstd(), once known
        self._order_before: dict[str, bool] = {}  # view name -> preserve_insertion_order to restore
        self.where = f"DuckDB {self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_url(
        cls, url: str | ConnectionURL, settings: Settings | None = None
    ) -> DuckDBDestination:
        """From ``duckdb:///path.duckdb`` or a connection name.

        Options: ``?schema=name``, ``?memory_limit=512MB`` (``none``: DuckDB's default),
        ``?preserve_order=true``, ``?vacuum_after=0.25``, ``?compression=duckdb``.
        """
        conn = url if isinstance(url, ConnectionURL) else resolve(url, settings)
        if conn.backend != "duckdb":
            raise ConnectorError(f"{conn.masked} is not a DuckDB URL (duckdb:///path.duckdb).")
        limit = conn.options.get("memory_limit", "128MB")
        return cls(
            conn.path,
            schema=conn.options.get("schema"),
            memory_limit=None if limit.lower() in ("", "none", "default") else limit,
            preserve_order=_flag(conn.options.get("preserve_order", "false"), "preserve_order"),
            vacuum_after=_share(conn.options.get("vacuum_after", "0.1"), "vacuum_after"),
            compression=conn.options.get("compression", "adaptive"),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> DuckDBDestination:
        """The embedded warehouse ``<home>/warehouse.duckdb``."""
        return cls.from_url(default_warehouse(settings))

    def write(self, data: Any, table: str, **options: Any) -> LoadResult:
        """As :meth:`SqlDestination.write`; loads into one database file from threads of
        one process take turns. DuckDB's Python client registers the incoming Arrow data
        as a view, and two connections registering and dropping such views at once can
        fail to bind (``Table Function with name python_arrow_scan does not exist``, seen
        with two fenced loads racing; duckdb/duckdb#5520 is the same race). Loads from
        other processes are kept apart by DuckDB's own file lock."""
        with _write_lock(self.path):
            return super().write(data, table, **options)

    def _connect(self) -> Any:
        import duckdb

        try:
            conn = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            raise ConnectionFailedError(
                self.where, f"{exc}. Another process may hold it open for writing.", action="open"
            ) from exc
        if self.memory_limit is not None:  # checked against _MEMORY: SET takes no parameters
            conn.execute(f"SET memory_limit = '{self.memory_limit}'")
        if self.vacuum_after > 0:  # loads compact in _maintain; checkpoints need not vacuum
            conn.execute("SET max_vacuum_tasks = 0")
        if self.schema:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema, 'duckdb')}")
            conn.execute(f"SET search_path = '{_sql_string(self.schema)}'")
        return conn

    def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        result = conn.execute(sql, list(params) if params else None)
        try:
            return result.fetchall()
        except Exception:  # statements without a result set
            return []

    def _exec_count(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> int:
        rows = conn.execute(sql, list(params) if params else None).fetchall()
        return int(rows[0][0]) if rows else 0

    def _begin(self, conn: Any) -> None:
        conn.begin()

    def _stage(
        self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str, table: str
    ) -> None:
        view = f"{name}_in"
        self._view(conn, data, view)
        if view in self._samples:
            self._samples[name] = self._samples.pop(view)
            self._distinct.pop(view, None)
        try:
            conn.execute(
                f"CREATE TEMPORARY TABLE {quote_ident(name, 'duckdb')} AS "
                f"SELECT * FROM {quote_ident(view, 'duckdb')}"
            )
        finally:
            self._unview(conn, view)

    def _view(self, conn: Any, data: pa.Table | pa.RecordBatchReader, name: str) -> None:
        if self.compression == "adaptive":
            data = self._sample_text(data, name)
        if isinstance(data, pa.RecordBatchReader) and not self.preserve_order:
            # Let every DuckDB thread take batches and compress its own row groups; the
            # setting is the database's, so it is given back in _unview.
            (before,) = conn.execute(
                "SELECT current_setting('preserve_insertion_order')"
            ).fetchone()
            self._order_before[name] = bool(before)
            conn.execute("SET preserve_insertion_order = false")
        conn.register(name, data)

    def _sample_text(
        self, data: pa.Table | pa.RecordBatchReader, name: str
    ) -> pa.Table | pa.RecordBatchReader:
        """Keep the first rows of ``data`` (zero-copy) for :meth:`_distinct_text`; return
        ``data`` whole (a reader is re-chained behind the batch it gave)."""
        if not any(pa.types.is_string(f.type) for f in data.schema):
            return data
        if isinstance(data, pa.Table):
            self._samples[name] = data.slice(0, _SAMPLE_ROWS)
            return data
        try:
            first = data.read_next_batch()
        except StopIteration:
            return data
        self._samples[name] = pa.Table.from_batches([first]).slice(0, _SAMPLE_ROWS)
        return pa.RecordBatchReader.from_batches(data.schema, _chain(first, data))

    def _distinct_text(self, stage: str) -> set[str]:
        """Text columns of ``stage``'s data whose first rows are mostly distinct values."""
        if stage in self._distinct:
            return self._distinct[stage]
        sample = self._samples.get(stage)
        if sample is None or sample.num_rows < _MIN_SAMPLE_ROWS:
            return set()
        self._distinct[stage] = {
            field.name
            for field in sample.schema
            if pa.types.is_string(field.type)
            and pc.count_distinct(sample.column(field.name)).as_py()
            >= _DISTINCT_SHARE * sample.num_rows
        }
        return self._distinct[stage]

    def _check_types(self, schema: pa.Schema, table: str) -> None:
        for field in schema:
            if pa.types.is_decimal(field.type) and field.type.precision > 38:
                raise ConnectorError(
                    f"the data is {field.type}; DuckDB keeps at most 38 decimal digits. Cast "
                    "it to text (exact) or float64 before loading.",
                    table=table,
                    column=field.name,
                    connection=self.where,
                )

    def _column_ddl(self, conn: Any, stage: str, column: str, sql_type: str) -> str:
        ddl = super()._column_ddl(conn, stage, column, sql_type)
        if column in self._distinct_text(stage) and self._has_zstd(conn):
            return f"{ddl} USING COMPRESSION zstd"
        return ddl

    def _has_zstd(self, conn: Any) -> bool:
        """Whether the file's storage format has ZSTD for text (v1.2.0 and later); asked
        once per destination, as a file keeps its format."""
        if self._zstd is not None:
            return self._zstd
        row = conn.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() "
            "WHERE database_name = current_database()"
        ).fetchone()
        found = re.match(r"v(\d+)\.(\d+)", str(row[0]) if row and row[0] is not None else "")
        self._zstd = found is not None and (int(found[1]), int(found[2])) >= (1, 2)
        return self._zstd

    def _replace(
        self, conn: Any, table: str, source: str, select: str, meta_sql: str, params: tuple
    ) -> None:
        if not self._distinct_text(source):
            super()._replace(conn, table, source, select, meta_sql, params)
            return
        # CREATE TABLE AS cannot say how to compress a column: create, then insert
        new = f"{table}__hr_new"
        incoming = self._columns(conn, source, temporary=True) or {}
        if meta_sql:
            incoming |= {META_LOAD_ID: "TEXT", META_LOADED_AT: "TIMESTAMPTZ"}
        cols = ", ".join(self._column_ddl(conn, source, c, t) for c, t in incoming.items())
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(new)}")
        self._exec(conn, f"CREATE TABLE {self.q(new)} ({cols})")
        self._exec(
            conn,
            f"INSERT INTO {self.q(new)} SELECT {select}{meta_sql} "
            f"FROM {quote_ident(source, 'duckdb')}",
            params,
        )
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(table)}")
        self._exec(conn, f"ALTER TABLE {self.q(new)} RENAME TO {quote_ident(table, 'duckdb')}")

    def _unview(self, conn: Any, name: str) -> None:
        self._samples.pop(name, None)
        self._distinct.pop(name, None)
        with contextlib.suppress(Exception):
            conn.unregister(name)
        before = self._order_before.pop(name, None)
        if before is not None:
            with contextlib.suppress(Exception):
                conn.execute(f"SET preserve_insertion_order = {'true' if before else 'false'}")

    def _maintain(self, conn: Any, table: str, deleted: int) -> bool:
        if deleted <= 0 or self.vacuum_after <= 0:
            return False
        try:
            self._exec(
                conn,
                f"CREATE TABLE IF NOT EXISTS {self.q(VACUUM_TABLE)} ("
                "table_name TEXT PRIMARY KEY, vacuumed_at TIMESTAMPTZ NOT NULL)",
            )
            # rows deleted since the table was last compacted or replaced whole
            ((since, live),) = self._exec(
                conn,
                f"WITH marks AS (SELECT vacuumed_at AS mark_at FROM {self.q(VACUUM_TABLE)} "
                "WHERE table_name = $1 UNION ALL SELECT max(loaded_at) "
                f"FROM {self.q(LOADS_TABLE)} WHERE table_name = $1 AND mode = 'replace') "
                f"SELECT (SELECT coalesce(sum(rows_replaced), 0) FROM {self.q(LOADS_TABLE)} "
                "WHERE table_name = $1 AND loaded_at > "
                "coalesce((SELECT max(mark_at) FROM marks), '-infinity'::TIMESTAMPTZ)), "
                f"(SELECT count(*) FROM {self.q(table)})",
                (table,),
            )
            if since < self.vacuum_after * (live + since):
                return False
            started = time.perf_counter()
            conn.execute("RESET max_vacuum_tasks")
            try:
                conn.execute("CHECKPOINT")
            finally:
                conn.execute("SET max_vacuum_tasks = 0")
            self._exec(
                conn,
                f"INSERT INTO {self.q(VACUUM_TABLE)} VALUES ($1, now()) ON CONFLICT (table_name) "
                "DO UPDATE SET vacuumed_at = excluded.vacuumed_at",
                (table,),
            )
            log.info(
                "compacted %s in %s: %d rows deleted since the last compaction, %d live (%.2f s)",
                table,
                self.where,
                since,
                live,
                time.perf_counter() - started,
            )
            return True
        except Exception as exc:  # the load is committed; a later load tries again
            log.warning(
                "compacting %s in %s failed (the load is committed): %s", table, self.where, exc
            )
            return False

    def _columns(self, conn: Any, table: str, temporary: bool = False) -> dict[str, str] | None:
        if temporary:  # a temporary table or a registered Arrow view: DESCRIBE binds, reads nothing
            rows = conn.execute(f"DESCRIBE SELECT * FROM {quote_ident(table, 'duckdb')}").fetchall()
            return {row[0]: row[1] for row in rows} or None
        # duckdb_columns() directly, not the information_schema view built on it: same
        # names and types, 1.9 ms a call against 4.5 ms (a merge asks four times).
        rows = conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $1 "
            "AND schema_name = $2 AND database_name = current_database() ORDER BY column_index",
            [table, self.schema or "main"],
        ).fetchall()
        return {name: sql_type for name, sql_type in rows} or None

    def _query_arrow(self, conn: Any, sql: str, params: Sequence[Any]) -> pa.Table:
        return conn.sql(sql, params=list(params) if params else None).to_arrow_table()


log = logging.getLogger(__name__)

_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: str | Path) -> threading.RLock:
    """The lock loads into ``path`` take in this process (reentrant: a load's quarantine
    or a nested write in the same thread takes it again)."""
    key = str(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


_SAMPLE_ROWS = 65_536  # rows of the first batch that decide a text column's compression
_MIN_SAMPLE_ROWS = 1_024  # fewer: the table is small and DuckDB's choice is as good
_DISTINCT_SHARE = 0.5  # this share of distinct values or more: ZSTD

VACUUM_TABLE = "_hr_vacuums"  # table -> when a load last compacted it

_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def _chain(first: pa.RecordBatch, rest: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _flag(text: str, option: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConnectorError(f"DuckDB URL option {option}={text!r} is not true or false.")


def _share(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConnectorError(
            f"DuckDB URL option {option}={text!r} is not a number between 0 and 1."
        ) from None


def _sql_string(text: str) -> str:
    """Escape a string for a single-quoted SQL literal; only used for SET, which takes no
    parameters, with the schema name (an identifier the caller chose)."""
    return text.replace("'", "''")
