"""The write path shared by lakehouse tables (Delta Lake, Iceberg): the checkpoint rides
in the table's own commit.

A lakehouse table has no multi-table transaction, so everything that must commit with
the rows goes into the one commit that adds them: the load id, the load's counts (the
ledger) and the table's checkpoint map (every (pipeline, source) that loads the table,
carried forward from commit to commit). Delta keeps them in the commit's custom
metadata (plus an application transaction id per source); Iceberg in the table
properties and the snapshot summary, set in the same metadata commit.

A write reads the table's latest state, compares the fence with the checkpoint found
there, prepares the rows (merge: de-duplicated, rows older than the stored ones
dropped) and commits *without* the library's automatic retry: a concurrent commit
makes the commit fail, and the write starts over from the new state — re-checking the
fence, so a stale extract is never applied over a newer one (:class:`CheckpointMoved`).

Quarantined rows go to ``<table>_quarantine``, committed just before the data (see
``lake_quarantine``); a merge's plan is in ``merge_plan``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headrace.connectors.crashpoints import crashpoint
from headrace.connectors.destinations.destination_base import (
    QUARANTINE_SUFFIX,
    LoadResult,
    WriteMode,
    as_arrow,
    with_meta,
    write_arguments,
)
from headrace.connectors.destinations.lake_metadata import (
    KEY_CHECKPOINTS,
    KEY_LOAD,
    KEY_LOAD_ID,
    checkpoint_key,
)
from headrace.connectors.destinations.lake_quarantine import drop_orphans, quarantine_once
from headrace.connectors.destinations.merge_plan import dedupe, plan_merge
from headrace.connectors.fidelity import Fidelity, Rejects, screen_text, with_rejects
from headrace.connectors.incremental import (
    Checkpoint,
    CheckpointMoved,
    Interval,
    decode_value,
    encode_value,
)
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError, HeadraceError, did_you_mean

#: ``"customers@3"`` in a query: table ``customers`` at version (or snapshot id) 3.
TIME_TRAVEL = re.compile(r'"([^"@]+)@(\d+)"')
CONFLICT_RETRIES = 20


class CommitConflict(Exception):
    """Another writer committed to the table first; the write starts over (not an error)."""


@dataclass
class TableState:
    """What a write read of a table before committing: the handle, the headrace metadata.

    Args:
        handle: the backend's table object at the version read (None: no table yet).
        checkpoints: ``"pipeline\\x1fsource"`` -> ``[text, kind, load_id, updated_at]``.
        columns: the table's column names (empty: no table).
    """

    handle: Any
    checkpoints: dict[str, list[Any]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WholeData:
    """A write's data read whole before its commit (lakehouse tables, Snowflake)."""

    rows: pa.Table
    quarantine: pa.Table | None
    load_id: str
    loaded_at: dt.datetime
    checkpoint: Checkpoint | None
    nulled: int  # values set to null by the source and the text screen (fidelity)


def read_whole(
    data: Any, table: str, connection: str, fidelity: Fidelity, *, quarantine: Any,
    load_id: str | Callable[[], str] | None, metadata: bool,
    checkpoint: Checkpoint | Callable[[], Checkpoint | None] | None,
) -> WholeData:  # fmt: skip
    """Read ``data`` and its quarantine whole, screened; settle the load id and checkpoint.

    Args: as :meth:`SqlDestination.write` (``connection``: the destination, as errors name
    it); callables (a streamed extract's digest, rejects and checkpoint) are called once
    the data has been read.
    """
    screened = Rejects()
    arrow = as_arrow(data, table=table, connection=connection)
    arrow = screen_text(arrow, fidelity.text, screened, f"{table!r} in {connection}")
    rows = arrow.read_all() if isinstance(arrow, pa.RecordBatchReader) else arrow
    final_id = (load_id() if callable(load_id) else load_id) or uuid.uuid4().hex
    q_data = quarantine() if callable(quarantine) else quarantine
    q_name = f"{table}{QUARANTINE_SUFFIX}"
    q_arrow = as_arrow(q_data, table=q_name, connection=connection) if q_data is not None else None
    q_arrow = with_rejects(q_arrow, getattr(data, "rejects", None), screened)
    if isinstance(q_arrow, pa.RecordBatchReader):
        q_arrow = q_arrow.read_all()
    loaded_at = dt.datetime.now(dt.UTC)
    if metadata:
        rows = with_meta(rows, final_id, loaded_at)
    return WholeData(
        rows,
        q_arrow,
        final_id,
        loaded_at,
        checkpoint() if callable(checkpoint) else checkpoint,
        screened.nulled + getattr(getattr(data, "rejects", None), "nulled", 0),
    )


@dataclass(frozen=True)
class LakeLoad:
    """One write's prepared rows and what it will commit."""

    table: str
    mode: WriteMode
    keys: list[str]
    partition: Interval | None
    data: pa.Table
    load_id: str
    loaded_at: dt.datetime
    properties: dict[str, str]
    rows_in: int
    rows_loaded: int
    rows_replaced: int


class LakeDestination(ABC):
    """Base of the Delta Lake and Iceberg destinations; backends supply table operations."""

    where = ""
    fidelity = Fidelity()
    #: The SQL :meth:`query` runs (how names are quoted, ``$1`` values bound).
    dialect = "duckdb"

    # -- primitives a backend implements ---------------------------------------------

    @abstractmethod
    def tables(self) -> list[str]:
        """The names of the tables this destination holds."""

    @abstractmethod
    def _state(self, table: str) -> TableState:
        """The table's latest version and the headrace metadata of its latest load."""

    @abstractmethod
    def _history(self, table: str) -> Iterator[dict[str, str]]:
        """The headrace metadata of each commit of ``table``, newest first."""

    @abstractmethod
    def _commit(self, state: TableState, load: LakeLoad) -> None:
        """Apply ``load`` in one commit on top of ``state``; :class:`CommitConflict` if
        another commit came first."""

    @abstractmethod
    def _append_quarantine(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        """Append rows to the quarantine table ``table`` (created if absent)."""

    @abstractmethod
    def _drop_quarantine(self, table: str, load_ids: list[str], properties: dict[str, str]) -> None:
        """Delete the rows of ``load_ids`` from the quarantine table ``table`` in one commit
        that records ``properties`` (see ``lake_quarantine.drop_orphans``)."""

    @abstractmethod
    def read(self, table: str, version: Any = None) -> pa.Table:
        """The rows of ``table`` as Arrow, at ``version`` (time travel) or the latest."""

    @abstractmethod
    def _keys_stored(self, state: TableState, columns: list[str], incoming: pa.Table) -> pa.Table:
        """The given columns of the stored rows (for merge planning): at least those whose
        key is among ``incoming``'s (a backend may return more; the plan joins on keys)."""

    def _may_hold_newer(self, state: TableState, cursor: str, incoming: pa.ChunkedArray) -> bool:
        """Whether a stored row may have ``cursor`` above the smallest incoming value (False
        lets a merge skip reading the stored cursors; a backend with file statistics
        answers it from them)."""
        return True

    @abstractmethod
    def _count_where(self, state: TableState, interval: Interval) -> int:
        """Stored rows inside ``interval`` (what replace_partition deletes)."""

    # -- the shared API --------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[LakeDestination]:
        """The same API as the SQL destinations' session (a lake table keeps no connection)."""
        yield self

    def q(self, name: str) -> str:
        """``name`` quoted as :meth:`query` knows the table."""
        return quote_ident(name, "duckdb")

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run DuckDB SQL (``$1`` placeholders) over the tables of this destination it
        names (latest versions; ``"table@version"``: that version)."""
        import duckdb

        con = duckdb.connect()
        try:
            self.register(con, sql, named_only=True)
            return con.sql(sql, params=list(params) or None).to_arrow_table()
        except HeadraceError:
            raise
        except Exception as exc:
            raise ConnectorError(f"Query failed: {exc}", connection=self.where) from exc
        finally:
            con.close()

    def register(self, con: Any, sql: str = "", *, named_only: bool = False) -> list[str]:
        """Make every table readable by name on DuckDB connection ``con`` (the latest
        version), and each ``"table@version"`` that ``sql`` names at that version (time
        travel: a Delta version number, an Iceberg snapshot id). Returns the names.

        ``named_only``: only the tables ``sql`` names (as a word, in any case), for one
        query: a file table is read whole, and reading one table (the quarantine page)
        must not read every table of the destination.
        """
        names = self.tables()
        for name in names:
            if not named_only or _names(sql, name):
                con.register(name, self._relation(name))
        for name, version in sorted(set(TIME_TRAVEL.findall(sql))):
            if name not in names:
                raise ConnectorError(
                    f"no such table (time travel {name}@{version})." + did_you_mean(name, names),
                    table=name,
                    connection=self.where,
                )
            con.register(f"{name}@{version}", self.read(name, int(version)))
        return names

    def _relation(self, table: str) -> Any:
        """What DuckDB reads as ``table`` (an Arrow dataset or table)."""
        return self.read(table)

    def columns(self, table: str) -> dict[str, str] | None:
        """Column -> Arrow type of ``table``, or None when it does not exist."""
        if table not in self.tables():
            return None
        return {f.name: str(f.type) for f in self._arrow_schema(table)}

    def _arrow_schema(self, table: str) -> pa.Schema:
        """The table's Arrow schema (backends read it from metadata, not the rows)."""
        return self.read(table).schema

    def row_count(self, table: str) -> int | None:
        """The number of rows of ``table``, or None when it does not exist."""
        if table not in self.tables():
            return None
        return self.read(table).num_rows

    def checkpoint(self, pipeline: str, source: str) -> Checkpoint | None:
        """The last committed checkpoint of (pipeline, source), over every table, or None."""
        return self._checkpoint(pipeline, source, {})

    def _checkpoint(
        self, pipeline: str, source: str, read: dict[str, TableState]
    ) -> Checkpoint | None:
        """:meth:`checkpoint`, taking the tables in ``read`` as already read."""
        key = checkpoint_key(pipeline, source)
        best: list[Any] | None = None
        for name in self.tables():
            if name.endswith(QUARANTINE_SUFFIX):
                continue
            state = read[name] if name in read else self._state(name)
            entry = state.checkpoints.get(key)
            if entry is not None and (best is None or entry[3] > best[3]):
                best = entry
        if best is None:
            return None
        text, kind, load_id, updated_at = best
        return Checkpoint(
            pipeline,
            source,
            decode_value(text, kind),
            load_id,
            dt.datetime.fromisoformat(updated_at),
        )

    def load(self, load_id: str) -> LoadResult | None:
        """The recorded result of ``load_id`` if it committed, else None."""
        for name in self.tables():
            if not name.endswith(QUARANTINE_SUFFIX) and (done := self._recorded(name, load_id)):
                return done
        return None

    def _recorded(self, table: str, load_id: str) -> LoadResult | None:
        """The ledger entry of ``load_id`` in ``table``'s history, or None."""
        for meta in self._history(table):
            if meta.get(KEY_LOAD_ID) == load_id and KEY_LOAD in meta:
                rec = json.loads(meta[KEY_LOAD])
                return LoadResult(
                    table, WriteMode(rec["mode"]), load_id, rec["rows_in"], rec["rows_loaded"],
                    rec["rows_replaced"], rec["rows_quarantined"], already_loaded=True,
                )  # fmt: skip
        return None

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
        """Write ``data`` to ``table``, committing the checkpoint in the table's own commit.

        Args: as :meth:`SqlDestination.write`; a stream is read whole before the commit
        (a lakehouse commit adds files that are written before it).

        Returns:
            A :class:`LoadResult`.

        Raises:
            CheckpointMoved: the fence no longer holds; nothing was applied.

        Example:
            >>> dest = open_destination("delta:///data/lake")
            >>> dest.write(rows, "customers", mode="merge", keys=["customer_id"],
            ...            fence=Checkpoint("etl", "crm.customers", None),
            ...            checkpoint=Checkpoint("etl", "crm.customers", last))
        """
        mode, keys = write_arguments(table, mode, keys, partition)
        whole = read_whole(data, table, self.where, self.fidelity, quarantine=quarantine,
                           load_id=load_id, metadata=metadata, checkpoint=checkpoint)  # fmt: skip
        crashpoint("after_stage")
        try:
            return self._write_retrying(
                whole.rows, table, mode, keys, partition, whole.checkpoint, whole.quarantine,
                whole.load_id, whole.loaded_at, dedupe_order_by, fence, cursor_column, origin,
                verify, whole.nulled,
            )  # fmt: skip
        except HeadraceError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"Loading failed ({mode.value}): {exc}", table=table, connection=self.where
            ) from exc

    def _write_retrying(
        self, rows: pa.Table, table: str, mode: WriteMode, keys: list[str],
        partition: Interval | None, new_ckpt: Checkpoint | None, q_arrow: pa.Table | None,
        load_id: str, loaded_at: dt.datetime, dedupe_order_by: str | None,
        fence: Checkpoint | None, cursor_column: str | None, origin: tuple[str, str] | None,
        verify: Callable[[LoadResult], None] | None, nulled: int,
    ) -> LoadResult:  # fmt: skip
        """Read the table, check the fence, commit; start over when a commit conflicts."""
        quarantined = 0 if q_arrow is None else q_arrow.num_rows
        for _attempt in range(CONFLICT_RETRIES):
            state = self._state(table)
            done = self._recorded(table, load_id) if state.handle is not None else None
            if done is not None:  # a replay of a committed load changes nothing
                return done
            if fence is not None:
                self._check_fence(fence, table, {table: state})
            load = self._prepare(
                state, rows, table, mode, keys, partition, load_id, loaded_at, dedupe_order_by,
                cursor_column if mode is WriteMode.MERGE else None,
            )  # fmt: skip
            crashpoint("after_apply")
            if q_arrow is not None and q_arrow.num_rows:
                quarantine_once(self, table, q_arrow, load_id, loaded_at, fence)
            crashpoint("after_quarantine")
            stored = _advance(state.checkpoints, new_ckpt, load_id, loaded_at)
            result = LoadResult(
                table, mode, load_id, load.rows_in, load.rows_loaded, load.rows_replaced,
                quarantined, stored,
                rows_superseded=load.rows_in - load.rows_loaded if mode is WriteMode.MERGE else 0,
                values_nulled=nulled,
            )  # fmt: skip
            if verify is not None:
                verify(result)
            load = dataclasses.replace(
                load, properties=_properties(state, result, stored, fence, origin, loaded_at)
            )
            crashpoint("before_commit")
            try:
                self._commit(state, load)
            except CommitConflict:
                continue  # someone committed in between: re-read, re-check the fence
            if fence is not None:
                checkpoints = json.loads(load.properties[KEY_CHECKPOINTS])
                drop_orphans(self, table, load_id, fence, checkpoints)
            crashpoint("after_commit")
            return result
        raise ConnectorError(
            f"Loading failed: {CONFLICT_RETRIES} commits in a row lost to concurrent "
            "writers; try again later.",
            table=table,
            connection=self.where,
        )

    def _check_fence(self, fence: Checkpoint, table: str, read: dict[str, TableState]) -> None:
        """Raise :class:`CheckpointMoved` unless the stored checkpoint is the fence's value."""
        found_ckpt = self._checkpoint(fence.pipeline, fence.source, read)
        found = found_ckpt.value if found_ckpt else None
        if found != fence.value:
            raise CheckpointMoved(
                fence.pipeline, fence.source, fence.value, found, table=table, connection=self.where
            )

    def _prepare(
        self, state: TableState, rows: pa.Table, table: str, mode: WriteMode, keys: list[str],
        partition: Interval | None, load_id: str, loaded_at: dt.datetime,
        dedupe_order_by: str | None, cursor_column: str | None,
    ) -> LakeLoad:  # fmt: skip
        """The rows to commit and their counts, from the table as read."""
        replaced = 0
        rows_in = rows.num_rows
        if mode is WriteMode.MERGE:
            rows = dedupe(rows, keys, dedupe_order_by, table, self.where)
            if state.handle is not None:
                rows, replaced = plan_merge(
                    rows, keys, cursor_column, state.columns,
                    functools.partial(self._keys_stored, state),
                    functools.partial(self._may_hold_newer, state), table, self.where,
                )  # fmt: skip
        elif mode is WriteMode.REPLACE_PARTITION:
            assert partition is not None
            _inside(rows, partition, table, self.where)
            replaced = self._count_where(state, partition) if state.handle is not None else 0
        elif mode is WriteMode.REPLACE and state.handle is not None:
            replaced = 0
        return LakeLoad(
            table, mode, keys, partition, rows, load_id, loaded_at, {}, rows_in, rows.num_rows,
            replaced,
        )  # fmt: skip


# -- helpers -------------------------------------------------------------------------


def _names(sql: str, table: str) -> bool:
    """Whether ``sql`` may name ``table``: its name as a whole word, in any case
    (``orders`` is not named by ``orders_quarantine``)."""
    return re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", sql, re.IGNORECASE) is not None


def _inside(rows: pa.Table, partition: Interval, table: str, connection: str) -> None:
    """Every row of a replace_partition load lies in its interval, or a ConnectorError."""
    import pyarrow.compute as pc

    col = rows.column(partition.column)
    lo, hi = partition.start, partition.end
    if pa.types.is_timestamp(col.type) and col.type.tz is None and hasattr(lo, "tzinfo"):
        lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
    outside = (
        rows.num_rows
        - pc.sum(pc.and_(pc.greater_equal(col, pa.scalar(lo)), pc.less(col, pa.scalar(hi)))).as_py()
        if rows.num_rows
        else 0
    )
    if outside:
        raise ConnectorError(
            f"replace_partition: {outside} rows are outside [{partition.start}, "
            f"{partition.end}); they would not be replaced by a rerun.",
            table=table,
            column=partition.column,
            connection=connection,
        )


def partition_bounds(partition: Interval, naive: bool) -> tuple[Any, Any]:
    """The interval's ends, without a time zone for a column that has none."""
    lo, hi = partition.start, partition.end
    if naive and isinstance(lo, dt.datetime):
        lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
    return lo, hi


def _advance(
    stored: dict[str, list[Any]], new: Checkpoint | None, load_id: str, at: dt.datetime
) -> Checkpoint | None:
    """The checkpoint to commit: never backwards, never back to "nothing loaded yet"."""
    if new is None or new.value is None:
        return None
    entry = stored.get(checkpoint_key(new.pipeline, new.source))
    if entry is not None:
        old = decode_value(entry[0], entry[1])
        try:
            if old is not None and new.value < old:
                return None
        except TypeError:  # the cursor changed type: take the new one
            pass
    return Checkpoint(new.pipeline, new.source, new.value, load_id, at)


def _properties(
    state: TableState, result: LoadResult, stored: Checkpoint | None, fence: Checkpoint | None,
    origin: tuple[str, str] | None, at: dt.datetime,
) -> dict[str, str]:  # fmt: skip
    """The metadata a load commits: its id, its counts and the table's checkpoint map."""
    checkpoints = dict(state.checkpoints)
    if stored is not None:
        text, kind = encode_value(stored.value)
        checkpoints[checkpoint_key(stored.pipeline, stored.source)] = [
            text, kind, result.load_id, at.isoformat(),
        ]  # fmt: skip
    named = stored or fence
    pipeline, source = origin or ((named.pipeline, named.source) if named else ("", ""))
    ledger = {
        "mode": result.mode.value, "rows_in": result.rows_in, "rows_loaded": result.rows_loaded,
        "rows_replaced": result.rows_replaced, "rows_quarantined": result.rows_quarantined,
        "pipeline": pipeline, "source": source, "loaded_at": at.isoformat(),
    }  # fmt: skip
    return {
        KEY_LOAD_ID: result.load_id,
        KEY_LOAD: json.dumps(ledger),
        KEY_CHECKPOINTS: json.dumps(checkpoints),
    }
