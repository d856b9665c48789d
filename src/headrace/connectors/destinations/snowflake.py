"""Snowflake as a destination (``snowflake-connector-python``): stage with PUT/COPY INTO, then
one transaction of DML from the fence check to the checkpoint.

URL: ``snowflake://user:password@account/database/schema?warehouse=WH&role=R``.

Snowflake commits an open transaction implicitly before any DDL, so everything that is
DDL happens first, outside the transaction: the metadata tables, creating the target
(and quarantine) table or adding the columns the data brings, and the temporary stage
table, filled by ``PUT`` of a Parquet file to a temporary stage and ``COPY INTO``. Then
one transaction holds only DML: a no-op ``UPDATE`` of the checkpoint table (DML takes a
table lock in Snowflake, which serialises fenced loads), the fence check, the write mode
(append ``INSERT``; replace ``DELETE`` + ``INSERT``; replace_partition ``DELETE`` of the
interval + ``INSERT``; merge ``DELETE`` of the staged keys, skipping stored rows with a
newer cursor, + ``INSERT`` of the de-duplicated rows), the quarantine rows, the
checkpoint and the load ledger, then ``COMMIT``.

What an emulator cannot prove: the tests run against ``fakesnow`` (Snowflake's SQL on
DuckDB). It checks the SQL, PUT/COPY INTO from a stage and the transaction's
all-or-nothing; it cannot show Snowflake's table locks serialising two sessions, the
implicit commit before DDL (designed around, not observed), virtual warehouse sizing
and credits, the real PUT upload path (compression, encryption, S3/Azure/GCS stages),
Time Travel/Fail-safe, key-pair or SSO authentication, or performance.

The crash test (``tests/connectors/test_crash.py``) kills the loading process for real
at points of the load and reruns it: 0 duplicates, 0 lost rows, quarantine and
checkpoint consistent. Under fakesnow the killed client's transaction lives in its own
DuckDB process and dies with it; on Snowflake it lives in the server's session, which
rolls it back only when the dead session is aborted (a lost connection or the session
timeout), holding its table locks until then. So the test proves where the commit point
is and that a rerun recovers, not how long a real rerun may wait on the dead session's
locks, nor a kill *during* ``COMMIT`` on the server.

Not built, and what each would take: BigQuery — a load job from a GCS/local Parquet
file into a staging table, then a multi-statement transaction (``BEGIN TRANSACTION``
... ``COMMIT``) with ``MERGE`` and the checkpoint; an emulator (``bigquery-emulator``)
is a Go binary, not a PyPI package. Redshift — ``COPY`` from S3 (moto can hold the
files) into a temp table, then ``DELETE``/``INSERT`` and the checkpoint in one
transaction over ``redshift_connector``; no local server exists, PostgreSQL differs in
COPY and locking. Databricks SQL — ``databricks-sql-connector`` with ``COPY INTO`` a
Delta table and ``MERGE``; the checkpoint would ride in the Delta commit as in
``delta.py`` (``txn`` action), and only a workspace can test it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from headrace.config import mask_url
from headrace.connectors.crashpoints import crashpoint
from headrace.connectors.destinations.destination_base import (
    CHECKPOINT_TABLE,
    LOADS_TABLE,
    LoadResult,
    WriteMode,
    with_meta,
    write_arguments,
)
from headrace.connectors.destinations.lakebase import _advance, _inside, read_whole
from headrace.connectors.destinations.merge_plan import dedupe
from headrace.connectors.fidelity import Fidelity
from headrace.connectors.incremental import (
    Checkpoint,
    CheckpointMoved,
    Interval,
    decode_value,
    encode_value,
)
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError, HeadraceError
from headrace.extras import require


def sql_type(t: pa.DataType) -> str:
    """The Snowflake column type for an Arrow type."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_TZ" if t.tz else "TIMESTAMP_NTZ"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_binary(t):
        return "BINARY"
    return "VARCHAR"


class SnowflakeDestination:
    """A Snowflake schema; every write is staged, then committed in one DML transaction.

    Args:
        params: ``snowflake.connector.connect`` keyword arguments.
        masked: the URL shown in messages.
    """

    fidelity = Fidelity()

    def __init__(self, params: dict[str, Any], masked: str = "") -> None:
        self.params = params
        self.where = f"snowflake {masked}"
        self.sf = require("snowflake", "snowflake.connector", "Snowflake destination")

    @classmethod
    def from_url(cls, url: str) -> SnowflakeDestination:
        """Parse ``snowflake://user:password@account/database/schema?warehouse=...&role=...``."""
        parts = urlsplit(url)
        path = [p for p in parts.path.split("/") if p]
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        params.update(
            user=unquote(parts.username or ""), password=unquote(parts.password or ""),
            account=parts.hostname or "", paramstyle="qmark",
        )  # fmt: skip
        if path:
            params["database"] = path[0]
        if len(path) > 1:
            params["schema"] = path[1]
        return cls(params, mask_url(url))

    # -- connections and reads -------------------------------------------------------

    def _connect(self) -> Any:
        return self.sf.connect(**self.params)

    @contextlib.contextmanager
    def session(self) -> Iterator[SnowflakeDestination]:
        """The SQL destinations' session API (each call opens its own connection here)."""
        yield self

    def q(self, name: str) -> str:
        """``name`` quoted (case kept)."""
        return quote_ident(name)

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cur.execute(_qmark(sql), list(params))
        return list(cur.fetchall()) if cur.description else []

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read query (``$1`` placeholders) and return the result as Arrow."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            rows = self._rows(cur, sql, params)
            names = [d[0] for d in cur.description]
            return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])
        except Exception as exc:
            raise ConnectorError(f"Query failed: {exc}", connection=self.where) from exc
        finally:
            conn.close()

    def columns(self, table: str) -> dict[str, str] | None:
        """Column -> type of ``table`` (from a zero-row read), or None when it does not exist."""
        try:
            schema = self.query(f"SELECT * FROM {self.q(table)} LIMIT 0").schema
        except ConnectorError:
            return None
        return {f.name: str(f.type) for f in schema}

    def _columns(self, cur: Any, table: str) -> list[str] | None:
        try:
            cur.execute(f"SELECT * FROM {self.q(table)} LIMIT 0")
        except Exception:
            return None
        return [d[0] for d in cur.description]

    def row_count(self, table: str) -> int | None:
        """The number of rows of ``table``, or None when it does not exist."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            if self._columns(cur, table) is None:
                return None
            return int(self._rows(cur, f"SELECT count(*) FROM {self.q(table)}")[0][0])
        finally:
            conn.close()

    def checkpoint(self, pipeline: str, source: str) -> Checkpoint | None:
        """The last committed checkpoint of (pipeline, source), or None."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            if self._columns(cur, CHECKPOINT_TABLE) is None:
                return None
            rows = self._rows(
                cur, f"SELECT value, value_type, load_id FROM {self.q(CHECKPOINT_TABLE)} "
                "WHERE pipeline = $1 AND source = $2", (pipeline, source),
            )  # fmt: skip
        finally:
            conn.close()
        if not rows:
            return None
        value, kind, load_id = rows[0]
        return Checkpoint(pipeline, source, decode_value(value, kind), load_id)

    # -- the write -------------------------------------------------------------------

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
        """Write ``data`` to ``table``; arguments as :meth:`SqlDestination.write`.

        Example:
            >>> dest = open_destination("snowflake://etl:***@acme/analytics/crm?warehouse=LOAD")
            >>> dest.write(rows, "customers", mode="merge", keys=["customer_id"])
        """
        mode, keys = write_arguments(table, mode, keys, partition)
        whole = read_whole(data, table, self.where, self.fidelity, quarantine=quarantine,
                           load_id=load_id, metadata=metadata, checkpoint=checkpoint)  # fmt: skip
        rows, q_rows, final_id, at, new_ckpt = (
            whole.rows,
            whole.quarantine,
            whole.load_id,
            whole.loaded_at,
            whole.checkpoint,
        )
        if mode is WriteMode.MERGE:
            rows = dedupe(rows, keys, dedupe_order_by, table, self.where)
        if mode is WriteMode.REPLACE_PARTITION:
            assert partition is not None
            _inside(rows, partition, table, self.where)
        conn = self._connect()
        stage = f"_hr_stage_{uuid.uuid4().hex[:12]}"
        try:
            cur = conn.cursor()
            self._prepare(cur, stage, rows, table, q_rows)
            crashpoint("after_stage")
            return self._transaction(
                conn, cur, stage, rows, table, mode, keys, partition, final_id, at, q_rows,
                new_ckpt, fence, cursor_column if mode is WriteMode.MERGE else None, origin,
                verify,
            )  # fmt: skip
        except HeadraceError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"Loading failed ({mode.value}): {exc}", table=table, connection=self.where
            ) from exc
        finally:
            with contextlib.suppress(Exception):  # a killed load leaves it: name says _hr_stage_
                self._rows(conn.cursor(), f"DROP TABLE IF EXISTS {self.q(stage)}")
            conn.close()

    def _prepare(
        self, cur: Any, stage: str, rows: pa.Table, table: str, q_rows: pa.Table | None
    ) -> None:
        """The DDL before the transaction: metadata tables, target columns, the filled stage."""
        self._rows(cur, f"CREATE TABLE IF NOT EXISTS {self.q(CHECKPOINT_TABLE)} (pipeline VARCHAR, "
                   "source VARCHAR, value VARCHAR, value_type VARCHAR, load_id VARCHAR, "
                   "updated_at TIMESTAMP_TZ)")  # fmt: skip
        self._rows(cur, f"CREATE TABLE IF NOT EXISTS {self.q(LOADS_TABLE)} (load_id VARCHAR, "
                   "table_name VARCHAR, mode VARCHAR, rows_in NUMBER(38,0), rows_loaded NUMBER(38,0), "
                   "rows_replaced NUMBER(38,0), rows_quarantined NUMBER(38,0), pipeline VARCHAR, "
                   "source VARCHAR, loaded_at TIMESTAMP_TZ)")  # fmt: skip
        self._ensure_table(cur, table, rows.schema)
        if q_rows is not None and q_rows.num_rows:
            self._ensure_table(
                cur, f"{table}_quarantine", with_meta(q_rows, "", dt.datetime.now(dt.UTC)).schema
            )
        cols = ", ".join(f"{self.q(f.name)} {sql_type(f.type)}" for f in rows.schema)
        # a plain table, dropped after the load: COPY INTO a temporary table is not emulated
        self._rows(cur, f"CREATE TABLE {self.q(stage)} ({cols})")
        self._rows(cur, f"CREATE TEMPORARY STAGE {self.q(stage)}")
        with tempfile.TemporaryDirectory(prefix="headrace-sf-") as folder:
            file = os.path.join(folder, f"{stage}.parquet")
            pq.write_table(rows, file)
            self._rows(cur, f"PUT 'file://{file}' @{self.q(stage)} AUTO_COMPRESS=FALSE")
        self._rows(cur, f"COPY INTO {self.q(stage)} FROM @{self.q(stage)} "
                   "FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")  # fmt: skip

    def _ensure_table(self, cur: Any, table: str, schema: pa.Schema) -> None:
        """Create ``table`` from ``schema``, or add the columns it lacks (DDL: before BEGIN)."""
        existing = self._columns(cur, table)
        if existing is None:
            cols = ", ".join(f"{self.q(f.name)} {sql_type(f.type)}" for f in schema)
            self._rows(cur, f"CREATE TABLE IF NOT EXISTS {self.q(table)} ({cols})")
            return
        for f in schema:
            if f.name not in existing:
                self._rows(
                    cur,
                    f"ALTER TABLE {self.q(table)} ADD COLUMN {self.q(f.name)} {sql_type(f.type)}",
                )

    def _transaction(
        self, conn: Any, cur: Any, stage: str, rows: pa.Table, table: str, mode: WriteMode,
        keys: list[str], partition: Interval | None, load_id: str, at: dt.datetime,
        q_rows: pa.Table | None, new_ckpt: Checkpoint | None, fence: Checkpoint | None,
        cursor_column: str | None, origin: tuple[str, str] | None,
        verify: Callable[[LoadResult], None] | None,
    ) -> LoadResult:  # fmt: skip
        """BEGIN; fence; the write mode; quarantine; checkpoint; ledger; verify; COMMIT."""
        self._rows(cur, "BEGIN")
        try:
            done = self._rows(cur, f"SELECT table_name, mode, rows_in, rows_loaded, rows_replaced, "
                              f"rows_quarantined FROM {self.q(LOADS_TABLE)} WHERE load_id = $1",
                              (load_id,))  # fmt: skip
            if done:
                self._rows(cur, "ROLLBACK")
                t, m, r_in, r_loaded, r_replaced, r_q = done[0]
                return LoadResult(t, WriteMode(m), load_id, r_in, r_loaded, r_replaced, r_q,
                                  already_loaded=True)  # fmt: skip
            named = new_ckpt or fence
            stored: dict[str, list[Any]] = {}
            if named is not None:
                self._rows(cur, f"UPDATE {self.q(CHECKPOINT_TABLE)} SET pipeline = pipeline "
                           "WHERE pipeline = $1 AND source = $2", (named.pipeline, named.source))  # fmt: skip
                found_rows = self._rows(cur, f"SELECT value, value_type FROM {self.q(CHECKPOINT_TABLE)} "
                                        "WHERE pipeline = $1 AND source = $2",
                                        (named.pipeline, named.source))  # fmt: skip
                if found_rows:
                    stored[f"{named.pipeline}\x1f{named.source}"] = [*found_rows[0], None, None]
                found = decode_value(*found_rows[0]) if found_rows else None
                if fence is not None and found != fence.value:
                    self._rows(cur, "ROLLBACK")
                    raise CheckpointMoved(fence.pipeline, fence.source, fence.value, found,
                                          table=table, connection=self.where)  # fmt: skip
            loaded, replaced = self._apply(
                cur, stage, rows, table, mode, keys, partition, cursor_column
            )
            crashpoint("after_apply")
            quarantined = self._quarantine(cur, table, q_rows, load_id, at)
            crashpoint("after_quarantine")
            ckpt = _advance(stored, new_ckpt, load_id, at)
            if ckpt is not None:
                self._store_checkpoint(cur, ckpt, load_id, at, bool(stored))
            result = LoadResult(
                table, mode, load_id, rows.num_rows, loaded, replaced, quarantined, ckpt,
                rows_superseded=rows.num_rows - loaded if mode is WriteMode.MERGE else 0,
            )  # fmt: skip
            pipeline, source = origin or ((named.pipeline, named.source) if named else ("", ""))
            self._rows(cur, f"INSERT INTO {self.q(LOADS_TABLE)} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                       (load_id, table, mode.value, result.rows_in, loaded, replaced, quarantined,
                        pipeline, source, at))  # fmt: skip
            if verify is not None:
                verify(result)
            crashpoint("before_commit")
            self._rows(cur, "COMMIT")
            crashpoint("after_commit")
            return result
        except BaseException:
            with contextlib.suppress(Exception):
                self._rows(cur, "ROLLBACK")
            raise

    def _apply(
        self, cur: Any, stage: str, rows: pa.Table, table: str, mode: WriteMode, keys: list[str],
        partition: Interval | None, cursor_column: str | None,
    ) -> tuple[int, int]:  # fmt: skip
        """The write mode's DML: ``(rows inserted, rows deleted)``."""
        cols = ", ".join(self.q(c) for c in rows.column_names)
        t, s = self.q(table), self.q(stage)
        replaced, newer = 0, ""
        if mode is WriteMode.REPLACE:
            cur.execute(f"DELETE FROM {t}")
            replaced = cur.rowcount or 0
        elif mode is WriteMode.REPLACE_PARTITION:
            assert partition is not None
            c = self.q(partition.column)
            cur.execute(_qmark(f"DELETE FROM {t} WHERE {c} >= $1 AND {c} < $2"),
                        [partition.start, partition.end])  # fmt: skip
            replaced = cur.rowcount or 0
        elif mode is WriteMode.MERGE:
            match = " AND ".join(f"x.{self.q(k)} = {t}.{self.q(k)}" for k in keys)
            keep = (
                f" AND NOT ({t}.{self.q(cursor_column)} > x.{self.q(cursor_column)})"
                if cursor_column
                else ""
            )
            cur.execute(f"DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM {s} x WHERE {match}{keep})")
            replaced = cur.rowcount or 0
            inner = " AND ".join(f"y.{self.q(k)} = x.{self.q(k)}" for k in keys)
            newer = f" WHERE NOT EXISTS (SELECT 1 FROM {t} y WHERE {inner})"
        cur.execute(f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} x{newer}")
        return cur.rowcount or 0, replaced

    def _quarantine(
        self, cur: Any, table: str, q_rows: pa.Table | None, load_id: str, at: dt.datetime
    ) -> int:
        if q_rows is None or not q_rows.num_rows:
            return 0
        q_rows = with_meta(q_rows, load_id, at)
        cols = ", ".join(self.q(c) for c in q_rows.column_names)
        marks = ", ".join("?" for _ in q_rows.column_names)
        cur.executemany(f"INSERT INTO {self.q(table + '_quarantine')} ({cols}) VALUES ({marks})",
                        [tuple(r.values()) for r in q_rows.to_pylist()])  # fmt: skip
        return q_rows.num_rows

    def _store_checkpoint(
        self, cur: Any, ckpt: Checkpoint, load_id: str, at: dt.datetime, exists: bool
    ) -> None:
        text, kind = encode_value(ckpt.value)
        if exists:
            self._rows(cur, f"UPDATE {self.q(CHECKPOINT_TABLE)} SET value = $1, value_type = $2, "
                       "load_id = $3, updated_at = $4 WHERE pipeline = $5 AND source = $6",
                       (text, kind, load_id, at, ckpt.pipeline, ckpt.source))  # fmt: skip
        else:
            self._rows(cur, f"INSERT INTO {self.q(CHECKPOINT_TABLE)} VALUES ($1, $2, $3, $4, $5, $6)",
                       (ckpt.pipeline, ckpt.source, text, kind, load_id, at))  # fmt: skip


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _qmark(sql: str) -> str:
    """``$1, $2 ...`` placeholders (the SQL destinations' style) as ``?`` (in order)."""
    return _PLACEHOLDER.sub("?", sql)
