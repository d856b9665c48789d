"""What the engine hands an executor, what it gets back, and the Executor Protocol.

The engine decides *what* runs and records state; an executor decides *where*: in
the driving process, in a local process pool, or on remote workers. A task function
is never pickled: a :class:`WorkItem` names the pipeline file and task id, and the
worker imports the file once and finds the task itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headrace.config import Settings
from headrace.state.store_base import CheckResultRecord

if TYPE_CHECKING:
    from headrace.pipeline import Pipeline

TaskKey = tuple[str, int]  # (task_id, map_index)


@dataclass
class ResultRef:
    """Where a task's result lives, so a downstream task can load it lazily.

    Attributes:
        kind: ``none``, ``json`` (value inline), ``table`` (Parquet at path) or
            ``list`` (the gathered results of a mapped task, in ``items``).
        format: for tables, the kind the task returned and the downstream task receives:
            ``arrow``, ``arrow_stream``, ``polars``, ``polars_lazy`` or ``pandas``.
    """

    kind: str
    value: Any = None
    path: str | None = None
    format: str | None = None
    items: list[ResultRef] | None = None


@dataclass
class RunInfo:
    """The run-wide facts a task's context needs, sent with every work item.

    Attributes:
        settings: what ``ctx.settings`` is in the task (state store, connections, pools,
            queue, alerts): the driver's, handed down whole to a local task process; on a
            remote worker the worker's own (a job carries only a secret-free profile of
            the driver's, checked against them: see ``executors.distributed``).
    """

    run_id: str
    pipeline: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    params: dict[str, Any]
    settings: Settings
    staging_dir: str
    state_url: str = ""  # the run's state store, for ctx.var (Variables)

    @property
    def home(self) -> str:
        return str(self.settings.home)

    @property
    def connections(self) -> dict[str, str]:
        return dict(self.settings.connections)


@dataclass
class WorkItem:
    """One attempt of one task instance, ready to run anywhere the pipeline file exists.

    Attributes:
        pipeline_file / pipeline_module: where the worker finds the pipeline.
        inputs: upstream task id -> its result (only the upstreams the task reads).
        map_input: for an element of a mapped task, the element it receives.
        timeout: seconds one attempt may take, or None.
    """

    run: RunInfo
    pipeline_file: str
    pipeline_module: str
    task_id: str
    map_index: int
    attempt: int
    inputs: dict[str, ResultRef] = field(default_factory=dict)
    map_input: ResultRef | None = None
    timeout: float | None = None

    @property
    def key(self) -> TaskKey:
        return (self.task_id, self.map_index)


@dataclass
class Outcome:
    """The end of one attempt, as the executor reports it to the engine.

    Attributes:
        error_kind: exception class name, ``timeout``, ``worker_died`` or ``interrupted``.
        retryable: False for TerminalError (and its subclasses) and QualityError.
        log: the attempt's captured log and stdout/stderr lines.
        checks: results of the task's data-quality checks, to be stored.
        metrics: what the task published with ``ctx.metric`` (``{name, value, tags}``).
    """

    task_id: str
    map_index: int
    attempt: int
    ok: bool
    result: ResultRef | None = None
    rows: int | None = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = True
    log: str = ""
    checks: list[CheckResultRecord] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    pid: int | None = None
    hostname: str | None = None

    @property
    def key(self) -> TaskKey:
        return (self.task_id, self.map_index)


@dataclass
class Event:
    """A change worth showing live: run or task state, progress, a log line.

    Attributes:
        kind: ``run`` (state of the run), ``task`` (state of a task instance),
            ``progress`` or ``log``.
    """

    kind: str
    run_id: str
    task_id: str | None = None
    map_index: int = -1
    state: str | None = None
    attempt: int | None = None
    done: float | None = None
    total: float | None = None
    message: str | None = None
    error: str | None = None

    @classmethod
    def from_log(cls, item: WorkItem, text: str) -> Event:
        """A log line of ``item``'s attempt."""
        return cls("log", item.run.run_id, item.task_id, item.map_index, attempt=item.attempt,
                   message=text)  # fmt: skip

    @classmethod
    def from_progress(
        cls, item: WorkItem, done: float | None, total: float | None, message: str | None
    ) -> Event:
        """Progress reported by ``item``'s attempt (``ctx.progress``)."""
        return cls("progress", item.run.run_id, item.task_id, item.map_index,
                   attempt=item.attempt, done=done, total=total, message=message)  # fmt: skip


EventSink = Callable[[Event], None]


class Sink(Protocol):
    """Where a running attempt sends its log lines and progress."""

    def log(self, text: str) -> None: ...

    def progress(self, done: float, total: float | None, message: str | None) -> None: ...


class AttemptFn(Protocol):
    """Runs one attempt of a work item where the executor put it; never raises for a task failure.

    The engine hands its own (``headrace.engine.attempt.run_work_item``) to
    :meth:`Executor.start`: executors decide where an attempt runs, the engine what
    it does. It must be a module-level function: a process pool sends it to its
    workers by reference.

    Args:
        item: the attempt.
        sink: receives its log lines and progress.
        pipeline: the pipeline object when the executor has it; None: found by
            ``item.pipeline_file`` (imported once per process).
        soft_timeout: enforce ``item.timeout`` inside the attempt (in-process executor).
    """

    def __call__(
        self,
        item: WorkItem,
        sink: Sink,
        pipeline: Pipeline | None = None,
        *,
        soft_timeout: bool = False,
    ) -> Outcome: ...


@runtime_checkable
class Executor(Protocol):
    """Runs work items and reports their outcomes; used by one run at a time.

    The engine calls :meth:`start` once per run (with the pipeline object, which a local
    executor may use directly, remote ones find it by ``WorkItem.pipeline_file``; and
    the function that runs one attempt), then alternates :meth:`submit` (never more
    than ``capacity`` items in flight) and :meth:`wait`, and :meth:`shutdown` at the end.
    Progress and log lines of running attempts go to the ``emit`` callback as
    :class:`Event` objects while they happen; the whole log also comes back in the
    :class:`Outcome`.
    """

    capacity: int

    def start(self, emit: EventSink, pipeline: Pipeline, run_item: AttemptFn) -> None: ...

    def submit(self, item: WorkItem) -> None: ...

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Outcomes finished since the last call; empty when ``timeout`` seconds passed first."""
        ...

    def shutdown(self, kill: bool = False) -> None:
        """Stop the workers; ``kill`` stops running attempts at once (their outcomes are lost)."""
        ...
