"""Response models of the JSON API, built from the state store's records.

Texts that may hold connection URLs (errors, logs) pass through
:func:`headrace.config.mask_url`, so a password in an exception message is never served.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from headrace.masking import MASKER
from headrace.state.store_base import (
    CheckResultRecord,
    LogRecord,
    RunRecord,
    SlaMissRecord,
    TaskInstanceRecord,
)


def masked(text: str | None) -> str | None:
    """``text`` with secrets replaced by ``***`` (None stays None); see headrace.masking.

    The store already masks what it writes; this also covers rows written before
    masking existed and secrets registered since.
    """
    return MASKER.mask(text) if text else text


def duration_seconds(
    started: datetime | None, ended: datetime | None, now: datetime | None = None
) -> float | None:
    """Seconds from ``started`` to ``ended`` (or to now while running); None if never started."""
    if started is None:
        return None
    end = ended or now or datetime.now(UTC)
    return round(max((end - started).total_seconds(), 0.0), 3)


def group_of(task_id: str) -> str | None:
    """The task group of a dotted task id (``extract.users`` -> ``extract``), or None."""
    group, dot, _ = task_id.rpartition(".")
    return group if dot else None


class RunOut(BaseModel):
    """One run of a pipeline."""

    run_id: str
    pipeline: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    state: str
    trigger: str
    params: dict[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    hostname: str | None
    pid: int | None
    error: str | None
    source_file: str | None

    @classmethod
    def of(cls, run: RunRecord) -> RunOut:
        return cls(
            run_id=run.run_id,
            pipeline=run.pipeline,
            logical_date=run.logical_date,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            state=run.state.value,
            trigger=run.trigger,
            params=run.params,
            created_at=run.created_at,
            started_at=run.started_at,
            ended_at=run.ended_at,
            duration_seconds=duration_seconds(run.started_at, run.ended_at),
            hostname=run.hostname,
            pid=run.pid,
            error=masked(run.error),
            source_file=run.source_file,
        )


class TaskInstanceOut(BaseModel):
    """One task instance of a run (``map_index`` >= 0 for an element of a mapped task)."""

    task_id: str
    map_index: int
    group: str | None
    state: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    next_try_at: datetime | None
    rows: int | None
    error: str | None
    error_kind: str | None
    result_kind: str | None

    @classmethod
    def of(cls, ti: TaskInstanceRecord) -> TaskInstanceOut:
        return cls(
            task_id=ti.task_id,
            map_index=ti.map_index,
            group=group_of(ti.task_id),
            state=ti.state.value,
            attempt=ti.attempt,
            started_at=ti.started_at,
            ended_at=ti.ended_at,
            duration_seconds=duration_seconds(ti.started_at, ti.ended_at),
            next_try_at=ti.next_try_at,
            rows=ti.rows,
            error=masked(ti.error),
            error_kind=ti.error_kind,
            result_kind=ti.result_kind,
        )


class SlaMissOut(BaseModel):
    """A task of a run not done by its SLA deadline."""

    pipeline: str
    run_id: str
    task_id: str
    logical_date: datetime
    deadline: datetime
    sla_seconds: float
    detected_at: datetime

    @classmethod
    def of(cls, miss: SlaMissRecord) -> SlaMissOut:
        return cls(
            pipeline=miss.pipeline,
            run_id=miss.run_id,
            task_id=miss.task_id,
            logical_date=miss.logical_date,
            deadline=miss.deadline,
            sla_seconds=miss.sla.total_seconds(),
            detected_at=miss.detected_at,
        )


class RunDetailOut(BaseModel):
    """A run with its task instances and SLA misses."""

    run: RunOut
    tasks: list[TaskInstanceOut]
    sla_misses: list[SlaMissOut]


class RunListOut(BaseModel):
    """A page of runs, newest logical date first; ``total`` counts all that match."""

    runs: list[RunOut]
    total: int


class LogOut(BaseModel):
    """Captured output of one task attempt."""

    task_id: str
    map_index: int
    attempt: int
    text: str
    created_at: datetime | None

    @classmethod
    def of(cls, log: LogRecord) -> LogOut:
        return cls(
            task_id=log.task_id,
            map_index=log.map_index,
            attempt=log.attempt,
            text=MASKER.mask(log.text),
            created_at=log.created_at,
        )


class CheckOut(BaseModel):
    """The result of one expectation on one task's output."""

    task_id: str
    expectation: str
    column: str | None
    severity: str
    status: str
    total: int
    failed: int
    details: dict[str, Any]
    created_at: datetime | None

    @classmethod
    def of(cls, check: CheckResultRecord) -> CheckOut:
        return cls(
            task_id=check.task_id,
            expectation=check.expectation,
            column=check.column,
            severity=check.severity,
            status=check.status,
            total=check.total,
            failed=check.failed,
            details=check.details,
            created_at=check.created_at,
        )


class PipelineOut(BaseModel):
    """A pipeline known from the store's runs and/or from a pipeline file."""

    name: str
    runs: int
    last_run: RunOut | None
    file: str | None = None
    schedule: str | None = None
    tasks: list[str] | None = None
    doc: str | None = None
    description: str | None = None  # one line (default: the doc's first line)


class PipelineFileErrorOut(BaseModel):
    """A file of the pipelines folder that could not be loaded.

    ``kind`` and the location fields come from the error's own fields
    (:meth:`headrace.errors.HeadraceError.fields`), so a client needs not parse ``error``.
    """

    file: str
    error: str
    kind: str | None = None  # the error class: DefinitionError, InvalidScheduleError, ...
    location: str | None = None  # file:line of the mistake
    pipeline: str | None = None
    task: str | None = None


class PipelineListOut(BaseModel):
    pipelines: list[PipelineOut]
    errors: list[PipelineFileErrorOut]


class HealthOut(BaseModel):
    """Whether the store answers, and where it is (password masked)."""

    status: str
    store: str
    runs: int | None
    version: str
