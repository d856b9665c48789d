"""One attempt of one task, wherever it runs: arguments, context, capture, staging, checks.

The engine hands :func:`run_work_item` to its executor (see
:class:`~headrace.executors.executor_base.AttemptFn`), which calls it in the driving process or
in a worker; it never raises for a task failure, it returns an :class:`Outcome` saying
what happened.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.engine.branch import chosen_ids
from headrace.engine.convert import load_as, wanted_formats
from headrace.engine.loader import find_pipeline
from headrace.engine.staging import (
    ResultTypeError,
    read_quarantine,
    result_path,
    stage_value,
    table_format,
    to_arrow,
    write_table,
)
from headrace.engine.task_variables import SecretMask, variable_reader
from headrace.errors import DefinitionError, QualityError, TerminalError, describe, did_you_mean
from headrace.executors.executor_base import Outcome, ResultRef, RunInfo, Sink, WorkItem
from headrace.executors.spark import spark_session
from headrace.observe.statsd import StatsdClient
from headrace.pipeline import Context, Pipeline, Reschedule, Task
from headrace.pipeline.graph_builder import TaskRef

TASK_LOGGER = "headrace.task"
#: ``Outcome.error_kind`` of an attempt that ended with :class:`headrace.pipeline.Reschedule`.
RESCHEDULE = "reschedule"
# Task loggers log at INFO even when the root logger stays at WARNING.
logging.getLogger(TASK_LOGGER).setLevel(logging.INFO)
_HOST = socket.gethostname()
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


class TaskTimeout(BaseException):
    """Raised inside an in-process attempt by SIGALRM when its timeout passes.

    A BaseException (like KeyboardInterrupt) so a task's ``except Exception`` cannot swallow it.
    """


class _CaptureHandler(logging.Handler):
    def __init__(self, sink: Sink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.log(self.format(record))
        except Exception:  # pragma: no cover - logging must never break a task
            self.handleError(record)


class _LineWriter(io.TextIOBase):
    """A text stream that sends whole lines to the sink (task stdout/stderr)."""

    def __init__(self, sink: Sink, prefix: str) -> None:
        self.sink, self.prefix, self.buffer_text = sink, prefix, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer_text += text
        if "\n" in self.buffer_text:
            *lines, self.buffer_text = self.buffer_text.split("\n")
            for line in lines:
                self.sink.log(self.prefix + line)
        return len(text)

    def drain(self) -> None:
        if self.buffer_text:
            self.sink.log(self.prefix + self.buffer_text)
            self.buffer_text = ""


class _MaskedSink:
    """A sink hiding the secret values a task read (see :class:`SecretMask`) before they are stored."""

    def __init__(self, sink: Sink, mask: SecretMask) -> None:
        self.sink, self.mask = sink, mask

    def log(self, text: str) -> None:
        self.sink.log(self.mask(text) if self.mask.values else text)

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self.sink.progress(
            done, total, self.mask(message) if message and self.mask.values else message
        )


@contextmanager
def capture(sink: Sink) -> Iterator[None]:
    """Send logging records and stdout/stderr written during the block to ``sink``."""
    handler = _CaptureHandler(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    out, err = sys.stdout, sys.stderr
    out_writer, err_writer = _LineWriter(sink, ""), _LineWriter(sink, "[stderr] ")
    sys.stdout, sys.stderr = out_writer, err_writer
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        out_writer.drain()
        err_writer.drain()
        root.removeHandler(handler)


@contextmanager
def alarm(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TaskTimeout` in the main thread after ``seconds`` (best effort).

    Only Python code is interrupted: a call blocked inside C code (a long query)
    finishes first. Off the main thread nothing is enforced here.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _expired(signum: int, frame: Any) -> None:
        raise TaskTimeout()

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_work_item(
    item: WorkItem, sink: Sink, pipeline: Pipeline | None = None, *, soft_timeout: bool = False
) -> Outcome:
    """Run one attempt of ``item``, finding its pipeline by file when not given (an :class:`AttemptFn`).

    Args:
        item: what to run.
        sink: receives log lines and progress while the task runs.
        pipeline: the pipeline object, when the caller has it (in-process executor).
        soft_timeout: see :func:`run_attempt`.
    """
    if pipeline is None:
        try:
            pipeline = find_pipeline(item.pipeline_file, item.pipeline_module, item.run.pipeline)
        except Exception as exc:
            return Outcome(
                item.task_id, item.map_index, item.attempt, ok=False, retryable=False,
                error=describe(exc), error_kind=type(exc).__name__, pid=os.getpid(),
            )  # fmt: skip
    return run_attempt(item, pipeline, sink, soft_timeout=soft_timeout)


def run_attempt(
    item: WorkItem, pipeline: Pipeline, sink: Sink, *, soft_timeout: bool = False
) -> Outcome:
    """Run one attempt of ``item`` and report how it ended.

    Args:
        item: what to run.
        pipeline: the pipeline the task belongs to (found by the executor).
        sink: receives log lines and progress while the task runs.
        soft_timeout: enforce ``item.timeout`` with SIGALRM (in-process executor);
            process workers are killed from outside instead.
    """
    started = datetime.now(UTC)
    outcome = Outcome(
        item.task_id,
        item.map_index,
        item.attempt,
        ok=False,
        started_at=started,
        pid=os.getpid(),
        hostname=_HOST,
    )
    task = pipeline.tasks.get(item.task_id)
    if task is None:
        outcome.error = (
            f"pipeline {pipeline.name!r} has no task {item.task_id!r} any more; was the file changed "
            "since the run started?" + did_you_mean(item.task_id, pipeline.tasks)
        )
        outcome.error_kind, outcome.retryable = "DefinitionError", False
        return _ended(outcome)
    run = item.run
    settings, staging = _run_paths(run)
    own_checks: list[Any] = []  # results a task records itself (dbt tests), kept on failure too
    own_metrics: list[dict[str, Any]] = []  # ctx.metric values, kept on failure too
    mask = SecretMask()  # secret Variables the task reads: hidden in its log lines and error
    masked = _MaskedSink(sink, mask)
    ctx = Context(
        run_id=run.run_id,
        pipeline=run.pipeline,
        task_id=item.task_id,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        settings=settings,
        staging_dir=staging,
        map_index=item.map_index,
        attempt=item.attempt,
        params=dict(run.params),
        log=logging.getLogger(f"{TASK_LOGGER}.{run.pipeline}.{item.task_id}"),
        report_progress=sink.progress,
        load_quarantine=partial(_quarantine_of, pipeline, staging),
        record_checks=own_checks.extend,
        timetable=pipeline.timetable,
        variables=variable_reader(run.state_url or settings.state_url, mask),
        record_metric=partial(_record_metric, own_metrics, settings, run.pipeline, item.task_id),
    )
    try:
        with capture(masked), alarm(item.timeout if soft_timeout else None):
            if "spark" in wanted_formats(task).values():  # Spark reads its inputs: session first
                spark_session(settings)
            args, kwargs = _arguments(task, item)
            if task.context_param is not None:
                _add_context(task, args, kwargs, ctx)
            value = task.fn(*args, **kwargs)
            if task.branch:  # the stored result is the checked choice (full ids)
                value = chosen_ids(pipeline, item.task_id, value)
            _finish(value, task, item, staging, outcome)
    except Reschedule as wanted:  # not a failure: no traceback, the driver runs it again later
        outcome.ok, outcome.result = False, None
        outcome.error = f"{type(wanted).__name__}: {wanted}"
        outcome.error_kind, outcome.retryable = RESCHEDULE, True
    except TaskTimeout:
        outcome.ok, outcome.result = False, None
        outcome.error = f"task {item.task_id!r} exceeded its timeout of {item.timeout:g} s"
        outcome.error_kind = "timeout"
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # SystemExit from a task is a task failure too
        masked.log("".join(traceback.format_exception(exc)).rstrip())
        outcome.ok = False
        outcome.error = describe(exc)  # with the driver or IO error it wraps, if any
        outcome.error_kind = type(exc).__name__
        outcome.retryable = not isinstance(exc, TerminalError | QualityError)
    if own_checks:
        outcome.checks = [*own_checks, *(outcome.checks or [])]
    outcome.metrics = own_metrics
    if mask.values and outcome.error:
        outcome.error = mask(outcome.error)
    return _ended(outcome)


@functools.lru_cache(maxsize=8)
def _staging_path(staging_dir: str) -> Path:
    return Path(staging_dir)


def _record_metric(
    kept: list[dict[str, Any]],
    settings: Settings,
    pipeline: str,
    task_id: str,
    name: str,
    value: float,
    tags: dict[str, str],
) -> None:
    """``ctx.metric``: to StatsD now (from wherever the task runs), to the store with the outcome."""
    kept.append({"name": name, "value": value, "tags": tags})
    client = statsd_client(settings.metrics.statsd, settings.metrics.prefix, settings.metrics.tags)
    if client is not None:
        client.gauge(f"custom.{name}", value, {"pipeline": pipeline, "task": task_id, **tags})


@functools.lru_cache(maxsize=4)
def statsd_client(url: str | None, prefix: str, tags: tuple[str, ...]) -> StatsdClient | None:
    """One StatsD socket per process and address."""
    return StatsdClient(url, prefix, tags) if url else None


def _run_paths(run: RunInfo) -> tuple[Settings, Path]:
    """The settings handed down with the run and its staging folder (hot path)."""
    return run.settings, _staging_path(run.staging_dir)


def _ended(outcome: Outcome) -> Outcome:
    outcome.ended_at = datetime.now(UTC)
    return outcome


def _arguments(task: Task[Any, Any], item: WorkItem) -> tuple[list[Any], dict[str, Any]]:
    """The task's call arguments with upstream results loaded in place of TaskRefs.

    A table goes to a parameter annotated with a table type as that type (see
    :mod:`headrace.engine.convert`).
    """
    loaded: dict[tuple[str, str | None], Any] = {}
    wanted = wanted_formats(task)
    names = list(task.signature.parameters)

    def resolve(value: Any, fmt: str | None = None) -> Any:
        if isinstance(value, TaskRef):
            if (value.task_id, fmt) not in loaded:
                loaded[(value.task_id, fmt)] = load_as(item.inputs[value.task_id], fmt)
            return loaded[(value.task_id, fmt)]
        if isinstance(value, list | tuple):
            return type(value)(resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    args = [
        resolve(a, wanted.get(names[i]) if i < len(names) else None)
        for i, a in enumerate(task.args)
    ]
    kwargs = {k: resolve(v, wanted.get(k)) for k, v in task.kwargs.items()}
    if task.map_param is not None:
        assert item.map_input is not None, "an element of a mapped task always gets its input"
        kwargs[task.map_param] = load_as(item.map_input, wanted.get(task.map_param))
    return args, kwargs


def _add_context(
    task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], ctx: Context
) -> None:
    """Put the context where the function declared it: by position when the positional
    arguments reach it, else by name."""
    position = task.context_position
    if position is not None and len(args) >= position:
        args.insert(position, ctx)
    else:
        kwargs[task.context_param] = ctx  # type: ignore[index]


def _finish(
    value: Any, task: Task[Any, Any], item: WorkItem, staging: Path, outcome: Outcome
) -> None:
    """Check (if the task has checks) and stage the returned value into ``outcome``."""
    if not task.checks:
        if value is None or table_format(value) is None:  # no file: skip building its path
            outcome.result, outcome.rows = stage_value(
                value, staging, pipeline=item.run.pipeline, task_id=item.task_id
            )
        else:
            path = result_path(staging, item.task_id, item.map_index)
            outcome.result, outcome.rows = stage_value(
                value, path, pipeline=item.run.pipeline, task_id=item.task_id
            )
        outcome.ok = True
        return
    path = result_path(staging, item.task_id, item.map_index)
    from headrace.engine.task_checks import apply_task_checks

    fmt = table_format(value)
    if fmt is None:
        raise ResultTypeError(
            f"has checks but returned {type(value).__name__}, not a table",
            pipeline=item.run.pipeline,
            task=item.task_id,
        )
    quarantine = result_path(staging, item.task_id, item.map_index, "quarantine.parquet")
    quarantine.unlink(missing_ok=True)  # from an earlier attempt
    checked = apply_task_checks(
        to_arrow(value, fmt),
        task.checks,
        pipeline=item.run.pipeline,
        task=item.task_id,
        run_id=item.run.run_id,
    )
    outcome.checks = checked.records
    if checked.quarantined is not None and checked.quarantined.num_rows:
        write_table(checked.quarantined, "arrow", quarantine)
    if checked.failure is not None:
        raise checked.failure
    outcome.rows = write_table(checked.passed, "arrow", path)
    outcome.result = ResultRef("table", path=str(path), format=fmt)
    outcome.ok = True


def _quarantine_of(pipeline: Pipeline, staging: Path, task_id: str) -> Any:
    if task_id not in pipeline.tasks:
        raise DefinitionError(
            "no such task to read quarantined rows from." + did_you_mean(task_id, pipeline.tasks),
            pipeline=pipeline.name,
            task=task_id,
        )
    return read_quarantine(staging, task_id)
