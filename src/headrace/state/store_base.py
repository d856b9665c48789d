"""The run-state store contract: records, states and the Protocol every backend meets.

The engine, scheduler, CLI and web UI only talk to a :class:`StateStore`; the
SQLAlchemy Core implementation serves SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headrace.errors import StateError, UnavailableError
from headrace.state.variable_store import VariableRecord

if TYPE_CHECKING:
    from headrace.state.admission import Admission


class StoreUnavailableError(StateError, UnavailableError):
    """The store could not be reached or stayed locked; the same call may work later.

    ``service`` is the store's masked URL.
    """

    about = (("service", "state store {}"),)


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCESS, RunState.FAILED)


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # waiting to run again, e.g. a sensor between pokes
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (
            TaskState.SUCCESS,
            TaskState.FAILED,
            TaskState.UPSTREAM_FAILED,
            TaskState.SKIPPED,
        )


@dataclass
class RunRecord:
    """One run of a pipeline, keyed by (pipeline, logical_date)."""

    run_id: str
    pipeline: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    state: RunState
    params: dict[str, Any] = field(default_factory=dict)
    trigger: str = "manual"  # manual | scheduled | backfill
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    pid: int | None = None  # process driving the run, for dead-run detection
    hostname: str | None = None
    heartbeat_at: datetime | None = None
    error: str | None = None
    source_file: str | None = None  # the file defining the pipeline, recorded when the run starts


@dataclass
class TaskInstanceRecord:
    """One task of one run (map_index >= 0 for an element of a mapped task)."""

    run_id: str
    task_id: str
    state: TaskState
    map_index: int = -1
    attempt: int = 0  # number of attempts started so far
    started_at: datetime | None = None
    ended_at: datetime | None = None
    next_try_at: datetime | None = None
    error: str | None = None
    error_kind: str | None = None  # exception class name, or "timeout"
    result_kind: str | None = None  # none | json | table
    result_json: Any = None
    result_path: str | None = None  # staged Parquet file for a table result
    rows: int | None = None
    pid: int | None = None
    hostname: str | None = None


@dataclass
class LogRecord:
    run_id: str
    task_id: str
    map_index: int
    attempt: int
    text: str
    created_at: datetime | None = None


@dataclass
class CheckResultRecord:
    """The outcome of one expectation on one task's output (see headrace.quality)."""

    run_id: str
    task_id: str
    expectation: str
    severity: str  # fail | warn | quarantine
    status: str  # passed | failed
    total: int
    failed: int
    column: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # percentages, sample of failing rows
    created_at: datetime | None = None


@dataclass(frozen=True)
class SlaMissRecord:
    """One task of one scheduled run that was not done by its SLA deadline."""

    pipeline: str
    run_id: str
    task_id: str
    logical_date: datetime
    deadline: datetime
    sla: timedelta
    detected_at: datetime


@runtime_checkable
class StateStore(Protocol):
    """Persisted state of runs, task instances, logs and check results.

    Every method commits before it returns: a crash after a call never loses what
    the call wrote. Unknown run ids raise :class:`headrace.errors.StateError`.
    """

    # runs
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

        Returns the record and whether it was created by this call. Safe against
        two processes racing (unique constraint).
        """
        ...

    def admit_run(
        self,
        pipeline: str,
        logical_date: datetime,
        data_interval_start: datetime,
        data_interval_end: datetime,
        params: dict[str, Any] | None = None,
        trigger: str = "scheduled",
        *,
        max_active: int,
        queued_grace: timedelta = timedelta(minutes=2),
        stale_after: timedelta = timedelta(seconds=60),
        now: datetime | None = None,
    ) -> Admission:
        """Create the run only while fewer than ``max_active`` runs of the pipeline are active.

        Atomic across processes (see :mod:`headrace.state.admission`); returns an
        ``Admission`` (run, created, active; ``run`` None when refused).
        """
        ...

    def get_run(self, run_id: str) -> RunRecord: ...

    def find_run(self, pipeline: str, logical_date: datetime) -> RunRecord | None: ...

    def previous_run(self, pipeline: str, logical_date: datetime) -> RunRecord | None:
        """The pipeline's run with the latest logical date before ``logical_date`` (depends_on_past)."""
        ...

    def list_runs(
        self,
        pipeline: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int | None = 50,
        trigger: str | None = None,
    ) -> list[RunRecord]:
        """Newest logical date first; ``trigger`` keeps only manual/scheduled/backfill runs."""
        ...

    def count_runs(
        self,
        pipeline: str | None = None,
        states: Iterable[RunState] | None = None,
        trigger: str | None = None,
    ) -> int:
        """How many runs :meth:`list_runs` would return without a limit."""
        ...

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of :class:`RunRecord` (state, started_at, ended_at, pid, hostname, heartbeat_at, error, params, source_file)."""
        ...

    def claim_run(self, seen: RunRecord, pid: int, hostname: str) -> bool:
        """Make the run RUNNING, driven by (``pid``, ``hostname``), only if its state and
        driver are still as in ``seen`` (one atomic UPDATE). False when another caller
        claimed or changed it first."""
        ...

    def list_pipelines(self) -> list[str]:
        """Names of the pipelines that have runs, sorted."""
        ...

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete finished runs and everything recorded under them; unfinished runs stay.
        Returns how many were deleted."""
        ...

    # task instances
    def ensure_task_instances(
        self, run_id: str, keys: Sequence[tuple[str, int]]
    ) -> list[TaskInstanceRecord]:
        """Create missing (task_id, map_index) instances as QUEUED; return all of the run's."""
        ...

    def get_task_instances(self, run_id: str) -> list[TaskInstanceRecord]: ...

    def update_task_instance(
        self, run_id: str, task_id: str, map_index: int = -1, **fields: Any
    ) -> None: ...

    def update_task_instances(
        self, updates: Sequence[tuple[str, str, int, dict[str, Any]]]
    ) -> None:
        """Many (run_id, task_id, map_index, fields) updates in one transaction."""
        ...

    # logs
    def append_log(
        self, run_id: str, task_id: str, map_index: int, attempt: int, text: str
    ) -> None: ...

    def get_logs(self, run_id: str, task_id: str | None = None) -> list[LogRecord]: ...

    # data-quality results
    def record_check_results(self, results: Sequence[CheckResultRecord]) -> None: ...

    def get_check_results(
        self, run_id: str, task_id: str | None = None
    ) -> list[CheckResultRecord]: ...

    # pools
    def acquire_pool_slot(
        self, pool: str, size: int, run_id: str, task_id: str, map_index: int = -1
    ) -> bool:
        """Take a slot of ``pool`` if fewer than ``size`` are held (atomic across processes).

        Slots of runs whose driver is dead or that stopped running are given back first.
        """
        ...

    def release_pool_slot(self, run_id: str, task_id: str, map_index: int = -1) -> None: ...

    def release_pool_slots(self, run_id: str) -> int:
        """Give back every slot of the run; returns how many it held."""
        ...

    # SLA misses
    def record_sla_miss(self, miss: SlaMissRecord) -> bool:
        """Record ``miss``; False when that (run, task) was already recorded."""
        ...

    def list_sla_misses(
        self, pipeline: str | None = None, run_ids: Iterable[str] | None = None
    ) -> list[SlaMissRecord]:
        """Recorded misses (of one pipeline, or of some runs), newest deadline first."""
        ...

    # variables
    def set_variable(
        self, name: str, value: str, *, secret: bool | None = None, description: str | None = None
    ) -> VariableRecord:
        """Create or replace a variable (secret when asked or when its name looks secret)."""
        ...

    def get_variable(self, name: str) -> VariableRecord | None: ...

    def require_variable(self, name: str) -> VariableRecord: ...

    def list_variables(self) -> list[VariableRecord]: ...

    def delete_variable(self, name: str) -> bool: ...

    # operator actions (headrace.state.operations)
    def set_paused(self, pipeline: str, paused: bool, actor: str = "unknown") -> bool:
        """Pause or unpause the pipeline's schedule; whether anything changed."""
        ...

    def is_paused(self, pipeline: str) -> bool: ...

    def search_runs(
        self, query: Any, limit: int = 50, offset: int = 0
    ) -> tuple[list[RunRecord], int]:
        """One page of runs matching a :class:`headrace.state.operations.RunQuery`, and the total."""
        ...

    def list_actions(self, limit: int = 100, offset: int = 0) -> tuple[list[Any], int]:
        """Recorded operator actions, newest first, and how many there are."""
        ...

    def record_action(
        self,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> None:
        """Append an operator action (who, what, when) to the audit log."""
        ...

    def run_keys(self) -> list[tuple[str, str, str, str | None]]:
        """(run_id, pipeline, state, ended_at) of every run: what an incremental scraper compares."""
        ...

    def task_instances_of(self, run_ids: Sequence[str]) -> dict[str, list[TaskInstanceRecord]]:
        """Task instances of several runs at once, keyed by run id."""
        ...

    def task_rows_of(self, run_ids: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
        """(task_id, state, attempt, duration in microseconds or None) of several runs' task instances."""
        ...

    def check_results_of(self, run_ids: Sequence[str]) -> dict[str, list[CheckResultRecord]]:
        """Check results of several runs at once, keyed by run id."""
        ...

    def close(self) -> None: ...
