"""Sensors: tasks that wait for a file, a SQL condition or another pipeline's run.

A sensor pokes its condition every ``poke_interval`` until it holds or ``timeout``
has passed since the first poke. Semantics:

- the condition holds: the task succeeds; its result is what the poke returned
  (matched paths, the SQL value, the upstream run id);
- the timeout passes: :class:`SensorTimeout`, a ScheduleError marked **terminal** —
  a retry would only restart the wait, so the task fails without retrying;
- a poke raises (database down, permission denied): the error propagates and the
  task's retry policy applies (a :class:`~headrace.errors.TransientError` is retried).

Mode ``"poke"`` (default) keeps the worker slot, sleeping between pokes: simplest,
for short waits. Mode ``"reschedule"`` frees the slot between pokes: each poke is one
short attempt that, while the condition does not hold, ends with
:class:`SensorNotReady` (a :class:`~headrace.pipeline.Reschedule` signal); the engine
marks the task ``up_for_reschedule`` and starts the next poke ``poke_interval`` later,
running other tasks meanwhile. A poke is not a try: it uses up none of the task's
retries and sends no retry alert. The sensor still sets a retry policy of its own
(constant delay, one retry per possible poke) for pokes that really fail, so a
reschedule-mode sensor takes no ``retries=`` argument. The time of the first poke is
kept in the run's staging folder so the timeout spans attempts.
"""

from __future__ import annotations

import glob
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa

from headrace.errors import (
    DefinitionError,
    ScheduleError,
    TerminalError,
    TransientError,
    did_you_mean,
)
from headrace.pipeline import Context, Reschedule, Retry, Task
from headrace.pipeline.policy import as_timedelta
from headrace.tasks.sql_statement import Parameters, bind_values, run_sql
from headrace.tasks.template import context_values, placeholders, render

__all__ = [
    "SensorMode",
    "SensorNotReady",
    "SensorTimeout",
    "file_sensor",
    "pipeline_sensor",
    "sensor_task",
    "sql_sensor",
]


class SensorMode(StrEnum):
    """How a sensor waits between pokes (see the module docstring)."""

    POKE = "poke"  # hold the worker slot, sleeping between pokes
    RESCHEDULE = "reschedule"  # free the slot; each poke is one attempt


MODES = tuple(SensorMode)
_MAX_POKES = 100_000


class SensorTimeout(ScheduleError, TerminalError):
    """A sensor's condition did not hold within its timeout (not retried).

    Args:
        awaiting: what the sensor waited for (its description).
        waited: how long it waited.
        pokes: how many times it poked.
        logical_date: the run's logical date (``ds``).
        location: pipeline, task, run_id as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self,
        awaiting: str,
        waited: timedelta,
        pokes: int,
        logical_date: str | None = None,
        **location: Any,
    ) -> None:
        self.awaiting, self.waited, self.pokes, self.logical_date = (
            awaiting,
            waited,
            pokes,
            logical_date,
        )
        on = f" ({logical_date})" if logical_date else ""
        super().__init__(
            f"timed out{on} after {waited} and {pokes} poke(s) waiting for {awaiting}; raise its "
            "timeout or check why it never happened.",
            **location,
        )


class SensorNotReady(ScheduleError, TransientError, Reschedule):
    """A reschedule-mode sensor's condition does not hold yet: poke again later.

    A control signal, not a failure (a :class:`~headrace.pipeline.Reschedule`): the
    engine marks the task ``up_for_reschedule`` and pokes again ``poke_interval``
    later, without holding a worker slot in between and without counting a try.

    Args:
        awaiting: what the sensor waits for.
        waited: how long it has waited so far.
        timeout: how long it may wait.
        next_poke: the wait before the next poke.
        location: pipeline, task, run_id as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self,
        awaiting: str,
        waited: timedelta,
        timeout: timedelta,
        next_poke: timedelta,
        **location: Any,
    ) -> None:
        self.awaiting, self.waited, self.timeout, self.next_poke = (
            awaiting,
            waited,
            timeout,
            next_poke,
        )
        super().__init__(
            f"{awaiting} does not hold yet (waited {waited} of {timeout}); next poke in {next_poke}",
            **location,
        )


class UpstreamRunFailed(ScheduleError, TerminalError):
    """The run a pipeline sensor waits for finished in failure.

    Args:
        upstream: the pipeline waited for.
        upstream_run_id: its failed run.
        logical_date: the logical date waited for (ISO text).
        location: the waiting pipeline, task, run_id as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self, upstream: str, upstream_run_id: str, logical_date: str, **location: Any
    ) -> None:
        self.upstream, self.upstream_run_id, self.logical_date = (
            upstream,
            upstream_run_id,
            logical_date,
        )
        super().__init__(
            f"the run {upstream_run_id} of pipeline {upstream!r} for {logical_date} failed; resume it "
            f"(`headrace resume {upstream_run_id}`) and rerun this task.",
            **location,
        )


def _no_quote(value: str) -> str:
    return value


def sensor_task(
    poke: Callable[[Context], Any],
    *,
    task_id: str,
    poke_interval: timedelta | float = 60.0,
    timeout: timedelta | float = timedelta(hours=24),
    mode: SensorMode | str = SensorMode.POKE,
    description: str = "condition",
    **options: Any,
) -> Task[..., Any]:
    """A task that waits until ``poke(ctx)`` returns a truthy value.

    Args:
        poke: checks the condition once; a truthy return ends the wait and is the result.
        task_id: the task's name.
        poke_interval: wait between pokes (timedelta or seconds).
        timeout: give up after this long (timedelta or seconds): SensorTimeout.
        mode: ``"poke"`` (hold the worker slot) or ``"reschedule"`` (free it between
            pokes; see the module docstring).
        description: what is awaited, for messages.
        options: task policies passed to ``@task``.
    """
    what = f"sensor {task_id!r}"  # for log lines
    interval = as_timedelta(poke_interval, "poke_interval", task=task_id) or timedelta(0)
    limit = as_timedelta(timeout, "timeout", task=task_id) or timedelta(0)
    if mode not in MODES:
        raise DefinitionError(
            f"unknown mode {mode!r}; known: {', '.join(MODES)}." + did_you_mean(mode, MODES),
            task=task_id,
        )
    sensor_mode = SensorMode(mode)
    if interval <= timedelta(0):
        raise DefinitionError(f"poke_interval must be positive, got {interval}", task=task_id)
    if sensor_mode is SensorMode.RESCHEDULE:
        if "retries" in options:
            raise DefinitionError(
                "mode='reschedule' sets the task's retries itself (one retry per poke); "
                "drop retries= or use mode='poke'",
                task=task_id,
            )
        pokes = min(math.ceil(limit / interval) + 1, _MAX_POKES)
        options["retries"] = Retry(attempts=pokes + 1, delay=interval, backoff=1.0)

    def wait(ctx: Context) -> Any:
        if sensor_mode is SensorMode.RESCHEDULE:
            return _poke_once(ctx)
        started = time.monotonic()
        pokes = 0
        while True:
            pokes += 1
            result = poke(ctx)
            if result:
                ctx.log.info("%s: %s holds after %d poke(s)", what, description, pokes)
                return result
            waited = time.monotonic() - started
            if waited >= limit.total_seconds():
                raise SensorTimeout(
                    description,
                    timedelta(seconds=round(waited)),
                    pokes,
                    ctx.ds,
                    pipeline=ctx.pipeline,
                    task=task_id,
                    run_id=ctx.run_id,
                )
            ctx.progress(waited, limit.total_seconds(), f"waiting for {description}")
            time.sleep(min(interval.total_seconds(), max(limit.total_seconds() - waited, 0.0)))

    def _poke_once(ctx: Context) -> Any:
        marker = Path(ctx.staging_dir) / f"_sensor_{ctx.task_id}_{ctx.map_index}.json"
        now = datetime.now(UTC)
        try:
            first = datetime.fromisoformat(json.loads(marker.read_text())["first_poke"])
        except (OSError, ValueError, KeyError):
            first = now
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"first_poke": now.isoformat()}))
        result = poke(ctx)
        waited = now - first
        if result:
            marker.unlink(missing_ok=True)
            ctx.log.info("%s: %s holds after %s (poke %d)", what, description, waited, ctx.attempt)
            return result
        if waited >= limit:
            marker.unlink(missing_ok=True)  # a resumed run starts a fresh wait
            raise SensorTimeout(
                description,
                waited,
                ctx.attempt,
                ctx.ds,
                pipeline=ctx.pipeline,
                task=task_id,
                run_id=ctx.run_id,
            )
        raise SensorNotReady(
            description,
            waited,
            limit,
            interval,
            pipeline=ctx.pipeline,
            task=task_id,
            run_id=ctx.run_id,
        )

    wait.__name__ = wait.__qualname__ = task_id
    wait.__doc__ = f"Wait for {description}"
    sensor = Task(wait, task_id=task_id, **options)
    if sensor_mode is SensorMode.RESCHEDULE:
        sensor.reschedule_delay = interval
    return sensor


def file_sensor(pattern: str | Path, *, task_id: str, **options: Any) -> Task[..., Any]:
    """Wait until a file or glob (templated: ``/data/in/{{ ds }}/*.csv``) matches.

    Returns:
        A Task whose result is the sorted list of matching paths.

    Example:
        >>> ready = file_sensor("/data/in/orders_{{ ds_nodash }}.csv", task_id="wait_orders", poke_interval=30)
    """
    template = str(pattern)
    placeholders(template, task=task_id)

    def poke(ctx: Context) -> list[str]:
        # A path is not shell: values go in as they are, no quoting.
        path = render(template, context_values(ctx), task=task_id, quote=_no_quote)
        return sorted(glob.glob(path))

    return sensor_task(poke, task_id=task_id, description=f"files matching {template!r}", **options)


def sql_sensor(
    sql: str, *, conn: str, task_id: str, parameters: Parameters | None = None, **options: Any
) -> Task[..., Any]:
    """Wait until the first column of the first row of ``sql`` is truthy.

    ``sql`` binds ``:ds``, ``:data_interval_start`` ... like :func:`~headrace.tasks.sql_statement.sql_task`.

    Example:
        >>> loaded = sql_sensor("SELECT count(*) FROM orders WHERE day = :ds", conn="crm", task_id="orders_loaded")
    """
    what = f"sensor {task_id!r}"

    def poke(ctx: Context) -> Any:
        result = run_sql(conn, sql, bind_values(ctx, parameters), settings=ctx.settings, what=what)
        if not isinstance(result, pa.Table) or result.num_rows == 0 or result.num_columns == 0:
            return None
        return result.column(0)[0].as_py()

    return sensor_task(poke, task_id=task_id, description=f"SQL condition on {conn!r}", **options)


def pipeline_sensor(
    pipeline: str,
    *,
    task_id: str,
    offset: timedelta = timedelta(0),
    fail_on_failed: bool = True,
    **options: Any,
) -> Task[..., Any]:
    """Wait until pipeline ``pipeline``'s run for this run's logical date (minus ``offset``) succeeded.

    Args:
        pipeline: the other pipeline's name.
        task_id: the task's name.
        offset: look at the run ``offset`` earlier (different schedules).
        fail_on_failed: fail at once (UpstreamRunFailed) when that run failed, instead of
            waiting for a rerun until the timeout.
        options: poke_interval, timeout and task policies.

    Returns:
        A Task whose result is the awaited run's id.
    """

    def poke(ctx: Context) -> str | None:
        from headrace.state import open_store
        from headrace.state.store_base import RunState

        target: datetime = ctx.logical_date - offset
        store = open_store(ctx.settings.state_url)
        try:
            run = store.find_run(pipeline, target)
        finally:
            store.close()
        if run is None:
            return None
        if run.state == RunState.FAILED and fail_on_failed:
            raise UpstreamRunFailed(
                pipeline,
                run.run_id,
                target.isoformat(),
                pipeline=ctx.pipeline,
                task=task_id,
                run_id=ctx.run_id,
            )
        return run.run_id if run.state == RunState.SUCCESS else None

    return sensor_task(
        poke, task_id=task_id, description=f"pipeline {pipeline!r} run to succeed", **options
    )
