"""The run-state store on SQLAlchemy Core: one class for SQLite and PostgreSQL.

The engine writes about three state changes per task, so the write path is kept
short: update statements are built once per set of fields and reused, batches go
through ``executemany``, on SQLite one connection is held for the life of the store
(opening a SQLite connection costs more than the update itself) and writes run the
compiled statements on the driver (:mod:`headrace.state.fastpath`). On PostgreSQL,
single statements and reads run in autocommit mode to save round trips.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, and_, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, StatementError
from sqlalchemy.sql.dml import UpdateBase

from headrace.config import mask_url
from headrace.errors import StateError
from headrace.masking import MASKER
from headrace.state import fastpath, migrations
from headrace.state.admission import AdmissionMixin
from headrace.state.claims import ClaimsMixin
from headrace.state.connect import BEGIN_KEY, NotJSONError
from headrace.state.fastpath import Prepared, RowsMissing
from headrace.state.figures import FiguresMixin
from headrace.state.lineage_store import LineageMixin
from headrace.state.operations import OperationsMixin
from headrace.state.resource_pools import PoolSlotsMixin
from headrace.state.rows import (
    build_update,
    check_record,
    log_record,
    queued_run_row,
    raise_first_missing,
    run_exists,
    run_record,
    state_value,
    task_record,
    unknown_run,
    unknown_task,
)
from headrace.state.schema import (
    RUN_UPDATABLE,
    TASK_UPDATABLE,
    check_results,
    pool_slots,
    runs,
    sla_misses,
    task_instances,
    task_logs,
    utcnow,
)
from headrace.state.sla_misses import SlaMissesMixin
from headrace.state.store_base import (
    CheckResultRecord,
    LogRecord,
    RunRecord,
    RunState,
    StoreUnavailableError,
    TaskInstanceRecord,
    TaskState,
)
from headrace.state.variable_store import VariablesMixin

_RUN_FIELDS = frozenset(RUN_UPDATABLE)
_DELETE_BATCH = 500  # runs per transaction in delete_runs
_TASK_FIELDS = frozenset(TASK_UPDATABLE)
_LOG_COLUMNS = ("run_id", "task_id", "map_index", "attempt", "text", "created_at")
_CHECK_COLUMNS = tuple(c.name for c in check_results.columns if c.name != "id")
#: Fields that may carry text a task wrote: masked (headrace.masking) before they are stored.
_MASKED_FIELDS = ("error", "result_json")


def _masked(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with secrets in errors and JSON results replaced by ``***``."""
    if not any(fields.get(name) is not None for name in _MASKED_FIELDS):
        return fields
    return {k: MASKER.mask_value(v) if k in _MASKED_FIELDS else v for k, v in fields.items()}


#: A Core statement and, on SQLite, the same statement compiled for the driver.
_Stmt = tuple[UpdateBase, Prepared | None]


class SqlStateStore(
    AdmissionMixin,
    ClaimsMixin,
    PoolSlotsMixin,
    SlaMissesMixin,
    VariablesMixin,
    OperationsMixin,
    FiguresMixin,
    LineageMixin,
):
    """A :class:`~headrace.state.store_base.StateStore` on SQLite or PostgreSQL.

    Build it with :func:`headrace.state.open_store`, which also creates or migrates
    the schema. Every method commits before it returns. Safe to share between
    threads; each process opens its own store.

    Args:
        engine: from :func:`headrace.state.connect.make_engine`.
        url: the store's URL, shown (password masked) in error messages.
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.backend = engine.dialect.name
        #: The store's URL with its password masked, for messages.
        self.location = mask_url(url.render_as_string(hide_password=False))
        self._where = self.location
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.RLock()
        self._conn: Connection | None = engine.connect() if self.backend == "sqlite" else None
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite writes skip SQLAlchemy's per-call machinery (see fastpath.py).
        self._fast = self.backend == "sqlite"
        self._run_updates: dict[tuple[str, ...], _Stmt] = {}
        self._task_updates: dict[tuple[str, ...], _Stmt] = {}
        self._log_insert = self._statement(insert(task_logs), _LOG_COLUMNS)
        self._check_insert = self._statement(insert(check_results), _CHECK_COLUMNS)
        insert_fn = sqlite.insert if self.backend == "sqlite" else postgresql.insert
        # Two engines ensuring the same task instances must not fail on each other.
        self._ensure_ti = insert_fn(task_instances).on_conflict_do_nothing(
            index_elements=["run_id", "task_id", "map_index"]
        )

    def __repr__(self) -> str:
        return f"SqlStateStore({self._where!r})"

    def __enter__(self) -> SqlStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(
        self,
        what: str,
        write: bool = True,
        atomic: bool = True,
        location: Mapping[str, Any] | None = None,
    ) -> Iterator[Connection]:
        """A committed transaction; driver failures become :class:`StateError`.

        ``what`` names the operation in messages; ``location`` (pipeline, run_id, task)
        is kept on the error as fields.

        ``atomic=False`` promises the body is a single write statement or reads that
        need no common snapshot, so PostgreSQL may run it in autocommit mode.

        IntegrityError passes through untouched: callers that expect it (create_run)
        handle it, and it means a bug elsewhere.
        """
        loc = dict(location or {})
        if self._pid != os.getpid():
            self._after_fork()
        if self._closed:
            raise StateError(
                f"State store {self._where} is closed: {what} needs an open store.", **loc
            )
        try:
            if self._conn is not None:
                with self._lock:
                    self._conn.info[BEGIN_KEY] = "BEGIN IMMEDIATE" if write else "BEGIN"
                    with self._conn.begin():
                        yield self._conn
            elif atomic:
                with self.engine.begin() as conn:
                    yield conn
            else:
                # One statement (or independent reads): autocommit saves the BEGIN and
                # COMMIT round trips, a third of a hot-path update on PostgreSQL.
                with self._autocommit.connect() as conn:
                    yield conn
        except IntegrityError:
            raise
        except NotJSONError as exc:
            raise StateError(f"{what}: {exc}", **loc) from exc
        except StatementError as exc:
            cause = exc.orig if exc.orig is not None else exc
            if isinstance(cause, StateError):
                raise StateError(f"{what}: {cause}", **loc) from exc
            if isinstance(exc, OperationalError | InterfaceError):
                # Lost connection, server down, lock wait exceeded: trying later can help.
                raise StoreUnavailableError(
                    f"{what} failed: {type(cause).__name__}: {cause}", service=self._where, **loc
                ) from exc
            raise StateError(
                f"State store {self._where}: {what} failed: {type(cause).__name__}: {cause}",
                **loc,
            ) from exc

    def _after_fork(self) -> None:
        """Drop connections inherited from the parent process; open new ones on demand.

        A forked child must not use its parent's sockets or SQLite handle, and a lock
        held by another parent thread at fork time would never be released here.
        """
        self.engine.dispose(close=False)
        self._lock = threading.RLock()
        self._pid = os.getpid()
        if self._conn is not None:
            self._conn = self.engine.connect()

    def _read(self, what: str, location: Mapping[str, Any] | None = None) -> Any:
        return self._tx(what, write=False, atomic=False, location=location)

    def _statement(self, stmt: UpdateBase, column_keys: Sequence[str] | None = None) -> _Stmt:
        prepared = Prepared.compile(stmt, self.engine.dialect, column_keys) if self._fast else None
        return stmt, prepared

    def _write(
        self,
        what: str,
        steps: Sequence[tuple[_Stmt, list[dict[str, Any]]]],
        require_all: bool = False,
        location: Mapping[str, Any] | None = None,
    ) -> bool:
        """Run write statements in one transaction.

        Args:
            what: the operation, for error messages.
            location: pipeline, run_id, task... kept on an error as fields.
            steps: (statement, parameter dicts) pairs, each run as one executemany.
            require_all: UPDATEs whose rows must all exist: when one is missing,
                nothing is written and False is returned (the caller says which).

        Returns:
            True when written.
        """
        if not self._fast:
            single = len(steps) == 1 and len(steps[0][1]) == 1
            try:
                with self._tx(what, atomic=not single, location=location) as conn:
                    for (stmt, _), params in steps:
                        matched = conn.execute(stmt, params).rowcount
                        if require_all and matched != len(params):
                            raise RowsMissing(what)
            except RowsMissing:
                return False
            return True
        try:
            rows = [
                (prepared, [prepared.row(p) for p in params])
                for (_, prepared), params in steps
                if prepared is not None
            ]
        except StateError as exc:  # a naive datetime, a value that is not JSON
            raise StateError(f"{what}: {exc}", **(location or {})) from exc
        if self._pid != os.getpid():
            self._after_fork()
        if self._closed or self._conn is None:
            raise StateError(
                f"State store {self._where} is closed: {what} needs an open store.",
                **(location or {}),
            )
        with self._lock:
            driver = cast(sqlite3.Connection, self._conn.connection.driver_connection)
            return fastpath.write_checked(
                driver, rows, require_all, what, service=self._where, location=location
            )

    def migrate(
        self, steps: Sequence[migrations.Migration] = migrations.MIGRATIONS
    ) -> tuple[int | None, int]:
        """Create or upgrade the schema; see :func:`headrace.state.migrations.migrate`."""
        with self._read("read the schema version") as conn:
            if (
                self.backend == "postgresql"
                and conn.exec_driver_sql("SELECT current_schema()").scalar() is None
            ):
                raise StateError(
                    f"State store {self._where}: the search_path names no existing schema; "
                    f"create the schema first or pass schema= to open_store."
                )
            current = migrations.current_version(conn)
        if current == migrations.BASELINE_VERSION + len(steps):
            return current, current  # the common case: no lock taken
        with self._tx("migrate the schema") as conn:
            return migrations.migrate(conn, steps)

    def schema_version(self) -> int | None:
        """The schema version stamped in the store."""
        with self._read("read the schema version") as conn:
            return migrations.current_version(conn)

    def close(self) -> None:
        """Release the connection(s); the store cannot be used afterwards."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
        self.engine.dispose(close=self._pid == os.getpid())

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        pipeline: str,
        logical_date: datetime,
        data_interval_start: datetime,
        data_interval_end: datetime,
        params: dict[str, Any] | None = None,
        trigger: str = "manual",
    ) -> tuple[RunRecord, bool]:
        """Create the run, or return the existing one for (pipeline, logical_date).

        Returns:
            The record and whether this call created it. Two processes racing on
            the same key both get the one run: the unique constraint decides, the
            loser re-reads.

        Example:
            >>> run, created = store.create_run("etl", day, day, day + timedelta(days=1))
        """
        when = logical_date.isoformat() if isinstance(logical_date, datetime) else logical_date
        what = f"create run for {when}"
        loc = {"pipeline": pipeline}
        for _ in range(3):
            values = queued_run_row(
                pipeline, logical_date, data_interval_start, data_interval_end, params, trigger
            )
            try:
                with self._tx(what, location=loc) as conn:
                    found = self._find(conn, pipeline, logical_date)
                    if found is not None:
                        return found, False
                    conn.execute(insert(runs), values)
                    # Re-read so the caller sees exactly what was stored (UTC times).
                    created = self._find(conn, pipeline, logical_date)
            except IntegrityError:
                with self._read(what, loc) as conn:
                    found = self._find(conn, pipeline, logical_date)
                if found is not None:
                    return found, False
                continue  # a run-id collision (same millisecond, same 40 random bits)
            assert created is not None  # inserted in the same transaction
            return created, True
        raise StateError(f"{what}: could not allocate a unique run id after 3 tries.", **loc)

    def _find(self, conn: Connection, pipeline: str, logical_date: datetime) -> RunRecord | None:
        row = conn.execute(
            select(runs).where(
                and_(runs.c.pipeline == pipeline, runs.c.logical_date == logical_date)
            )
        ).first()
        return run_record(row._mapping) if row is not None else None

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; a :class:`StateError` suggesting the closest id if unknown."""
        with self._read(f"read run {run_id!r}") as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise unknown_run(conn, run_id, self._where)
        return run_record(row._mapping)

    def resolve_run_id(self, text: str) -> str:
        """The run id ``text`` names: the id itself or a unique prefix of one.

        Raises:
            StateError: no run matches (with the closest id), or the prefix is ambiguous.
        """
        with self._read(f"find run {text!r}") as conn:
            matches = list(
                conn.execute(
                    select(runs.c.run_id)
                    .where(runs.c.run_id.startswith(text, autoescape=True))
                    .order_by(runs.c.run_id)
                    .limit(6)
                ).scalars()
            )
            if text in matches or len(matches) == 1:
                return text if text in matches else matches[0]
            if not matches:
                raise unknown_run(conn, text, self._where)
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise StateError(
            f"Run id prefix {text!r} is ambiguous: it matches {shown}; type more characters."
        )

    def find_run(self, pipeline: str, logical_date: datetime) -> RunRecord | None:
        """The run of ``pipeline`` for ``logical_date``, or None."""
        with self._read(f"find run of pipeline {pipeline!r} for {logical_date}") as conn:
            return self._find(conn, pipeline, logical_date)

    def previous_run(self, pipeline: str, logical_date: datetime) -> RunRecord | None:
        """The run of ``pipeline`` with the latest logical date before ``logical_date``, or None."""
        query = (
            select(runs)
            .where(and_(runs.c.pipeline == pipeline, runs.c.logical_date < logical_date))
            .order_by(runs.c.logical_date.desc())
            .limit(1)
        )
        with self._read(f"find the run of pipeline {pipeline!r} before {logical_date}") as conn:
            row = conn.execute(query).first()
        return run_record(row._mapping) if row is not None else None

    def list_runs(
        self,
        pipeline: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int | None = 50,
        trigger: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest logical date first (then newest created).

        Args:
            pipeline: only this pipeline's runs.
            states: only runs in one of these states.
            limit: at most this many; None or 0 for all.
            trigger: only runs started this way (manual, scheduled, backfill).
        """
        query = self._filter_runs(select(runs), pipeline, states, trigger).order_by(
            runs.c.logical_date.desc(), runs.c.created_at.desc(), runs.c.run_id.desc()
        )
        if limit:
            query = query.limit(limit)
        with self._read("list runs") as conn:
            return [run_record(r._mapping) for r in conn.execute(query)]

    def count_runs(
        self,
        pipeline: str | None = None,
        states: Iterable[RunState] | None = None,
        trigger: str | None = None,
    ) -> int:
        """How many runs match; the same filters as :meth:`list_runs`, without loading them."""
        query = self._filter_runs(select(func.count()).select_from(runs), pipeline, states, trigger)
        with self._read("count runs") as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _filter_runs(
        query: Select[Any],
        pipeline: str | None,
        states: Iterable[RunState] | None,
        trigger: str | None,
    ) -> Select[Any]:
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        if states is not None:
            query = query.where(
                runs.c.state.in_([state_value(RunState, s, "the runs filter") for s in states])
            )
        if trigger is not None:
            query = query.where(runs.c.trigger == trigger)
        return query

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete finished runs with their task instances, logs, check results and SLA
        misses; a run that is not finished (or not there) is left alone.

        Each batch of 500 runs goes in one transaction: a crash leaves every run either
        whole or gone. Returns how many runs were deleted.
        """
        deleted = 0
        finished = [state.value for state in RunState if state.finished]
        ids = list(dict.fromkeys(run_ids))
        for start in range(0, len(ids), _DELETE_BATCH):
            batch = ids[start : start + _DELETE_BATCH]
            with self._tx("delete runs") as conn:
                doomed = [
                    row.run_id
                    for row in conn.execute(
                        select(runs.c.run_id).where(
                            runs.c.run_id.in_(batch), runs.c.state.in_(finished)
                        )
                    )
                ]
                if not doomed:
                    continue
                # children first: SQLite enforces the ON DELETE CASCADE only with a pragma
                for child in (task_logs, check_results, sla_misses, pool_slots, task_instances):
                    conn.execute(delete(child).where(child.c.run_id.in_(doomed)))
                deleted += conn.execute(delete(runs).where(runs.c.run_id.in_(doomed))).rowcount
        return deleted

    def list_pipelines(self) -> list[str]:
        """The names of pipelines that have at least one run, sorted."""
        with self._read("list pipelines") as conn:
            return list(
                conn.execute(select(runs.c.pipeline).distinct().order_by(runs.c.pipeline)).scalars()
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of the run: state, started_at, ended_at, pid, hostname, heartbeat_at, error, params, source_file."""
        if not fields:
            return
        key = tuple(fields)
        stmt = self._run_updates.get(key)
        if stmt is None:
            stmt = self._run_updates[key] = self._statement(build_update(key, runs, _RUN_FIELDS))
        params = {f"v_{k}": v for k, v in _masked(fields).items()}
        if "state" in fields:
            params["v_state"] = state_value(RunState, fields["state"], f"run {run_id!r}")
        params["k_run_id"] = run_id
        loc = {"run_id": run_id}
        if not self._write("update run", [(stmt, [params])], require_all=True, location=loc):
            with self._read("update run", loc) as conn:
                raise unknown_run(conn, run_id, self._where)

    # ------------------------------------------------------------------ task instances

    def ensure_task_instances(
        self, run_id: str, keys: Sequence[tuple[str, int]]
    ) -> list[TaskInstanceRecord]:
        """Create the missing (task_id, map_index) instances as QUEUED; return all of the run's."""
        rows = [
            {
                "run_id": run_id,
                "task_id": task_id,
                "map_index": map_index,
                "state": TaskState.QUEUED.value,
                "attempt": 0,
            }
            for task_id, map_index in keys
        ]
        with self._tx(f"create task instances of run {run_id!r}") as conn:
            if not run_exists(conn, run_id):
                raise unknown_run(conn, run_id, self._where)
            if rows:
                conn.execute(self._ensure_ti, rows)
            return self._task_instances(conn, run_id)

    def get_task_instances(self, run_id: str) -> list[TaskInstanceRecord]:
        """The run's task instances ordered by task id and map index."""
        with self._read(f"read task instances of run {run_id!r}") as conn:
            found = self._task_instances(conn, run_id)
            if not found and not run_exists(conn, run_id):
                raise unknown_run(conn, run_id, self._where)
            return found

    def get_task_instance(
        self, run_id: str, task_id: str, map_index: int = -1
    ) -> TaskInstanceRecord:
        """One task instance; a :class:`StateError` naming the closest task if unknown."""
        with self._read(f"read task {task_id!r} of run {run_id!r}") as conn:
            row = conn.execute(
                select(task_instances).where(
                    and_(
                        task_instances.c.run_id == run_id,
                        task_instances.c.task_id == task_id,
                        task_instances.c.map_index == map_index,
                    )
                )
            ).first()
            if row is None:
                raise unknown_task(conn, run_id, task_id, map_index, self._where)
        return task_record(row._mapping)

    def _task_instances(self, conn: Connection, run_id: str) -> list[TaskInstanceRecord]:
        query = (
            select(task_instances)
            .where(task_instances.c.run_id == run_id)
            .order_by(task_instances.c.task_id, task_instances.c.map_index)
        )
        return [task_record(r._mapping) for r in conn.execute(query)]

    def update_task_instance(
        self, run_id: str, task_id: str, map_index: int = -1, **fields: Any
    ) -> None:
        """Set fields of one task instance (any :class:`TaskInstanceRecord` field but its key)."""
        if not fields:
            return
        stmt, params = self._ti_params(run_id, task_id, map_index, fields)
        loc = {"run_id": run_id, "task": task_id}
        if not self._write("update task", [(stmt, [params])], require_all=True, location=loc):
            with self._read("update task", loc) as conn:
                raise unknown_task(conn, run_id, task_id, map_index, self._where)

    def update_task_instances(
        self, updates: Sequence[tuple[str, str, int, dict[str, Any]]]
    ) -> None:
        """Many (run_id, task_id, map_index, fields) updates in one transaction.

        Updates setting the same fields share one ``executemany``; all or none apply.
        """
        groups: dict[int, tuple[_Stmt, list[dict[str, Any]]]] = {}
        for run_id, task_id, map_index, fields in updates:
            if not fields:
                continue
            stmt, params = self._ti_params(run_id, task_id, map_index, fields)
            groups.setdefault(id(stmt), (stmt, []))[1].append(params)
        if not groups:
            return
        what = f"update {len(updates)} task instances"
        if not self._write(what, list(groups.values()), require_all=True):
            with self._read(what) as conn:
                for _, batch in groups.values():
                    raise_first_missing(conn, batch, self._where)
            raise StateError(f"{what}: a task instance vanished while updating; try again.")

    def _ti_params(
        self, run_id: str, task_id: str, map_index: int, fields: dict[str, Any]
    ) -> tuple[_Stmt, dict[str, Any]]:
        key = tuple(fields)
        stmt = self._task_updates.get(key)
        if stmt is None:
            update = build_update(key, task_instances, _TASK_FIELDS)
            stmt = self._task_updates[key] = self._statement(update)
        params = {f"v_{k}": v for k, v in _masked(fields).items()}
        if "state" in fields:
            params["v_state"] = state_value(
                TaskState, fields["state"], f"task {task_id!r} of run {run_id!r}"
            )
        params["k_run_id"] = run_id
        params["k_task_id"] = task_id
        params["k_map_index"] = map_index
        return stmt, params

    # ------------------------------------------------------------------ logs

    def append_log(
        self, run_id: str, task_id: str, map_index: int, attempt: int, text: str
    ) -> None:
        """Store one chunk of a task attempt's log output."""
        values = {
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "attempt": attempt,
            "text": MASKER.mask(text),
            "created_at": utcnow(),
        }
        try:
            self._write(
                f"append log of task {task_id!r} of run {run_id!r}", [(self._log_insert, [values])]
            )
        except (
            IntegrityError
        ):  # the foreign key: it means only "no such run", which the error names
            with self._read(f"read run {run_id!r}") as conn:
                raise unknown_run(conn, run_id, self._where) from None

    def get_logs(self, run_id: str, task_id: str | None = None) -> list[LogRecord]:
        """The run's (or one task's) log chunks in the order they were appended."""
        query = select(task_logs).where(task_logs.c.run_id == run_id).order_by(task_logs.c.id)
        if task_id is not None:
            query = query.where(task_logs.c.task_id == task_id)
        with self._read(f"read logs of run {run_id!r}") as conn:
            found = [log_record(r) for r in conn.execute(query)]
            if not found and not run_exists(conn, run_id):
                raise unknown_run(conn, run_id, self._where)
        return found

    # ------------------------------------------------------------------ check results

    def record_check_results(self, results: Sequence[CheckResultRecord]) -> None:
        """Store expectation outcomes (one executemany)."""
        if not results:
            return
        now = utcnow()
        rows = [{c: getattr(r, c) for c in _CHECK_COLUMNS} for r in results]
        for row in rows:
            row["details"] = MASKER.mask_value(dict(row["details"] or {}))
            row["created_at"] = row["created_at"] or now
        try:
            self._write(f"record {len(rows)} check results", [(self._check_insert, rows)])
        except IntegrityError:  # the foreign key: "no such run" is named below, else re-raised
            with self._read("read runs") as conn:
                for run_id in dict.fromkeys(r.run_id for r in results):
                    if not run_exists(conn, run_id):
                        raise unknown_run(conn, run_id, self._where) from None
            raise

    def get_check_results(self, run_id: str, task_id: str | None = None) -> list[CheckResultRecord]:
        """The run's (or one task's) check results in the order they were recorded."""
        query = (
            select(check_results)
            .where(check_results.c.run_id == run_id)
            .order_by(check_results.c.id)
        )
        if task_id is not None:
            query = query.where(check_results.c.task_id == task_id)
        with self._read(f"read check results of run {run_id!r}") as conn:
            found = [check_record(r) for r in conn.execute(query)]
            if not found and not run_exists(conn, run_id):
                raise unknown_run(conn, run_id, self._where)
        return found
