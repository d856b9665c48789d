"""SLA misses: detecting scheduled tasks not done by their deadline, recording each once.

A task's SLA counts from its run's data interval end (the moment the run became
due), as in Airflow: with ``sla=timedelta(hours=3)`` on a daily 02:00 schedule, the
run for Monday must have the task done by Tuesday 05:00. Only scheduled runs are
checked: a backfill of last year would otherwise miss every SLA at once.

Misses are kept in one table, ``headrace_sla_misses``, beside the run-state tables
in the same database. Its primary key (run_id, task_id) makes recording idempotent,
so two schedulers, or one restarted, alert once per miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from headrace.errors import ScheduleError
from headrace.pipeline import Pipeline
from headrace.state.base import RunRecord, RunState, StateStore, TaskInstanceRecord, TaskState

__all__ = ["SlaLedger", "SlaMiss", "find_sla_misses"]

_DONE = (TaskState.SUCCESS, TaskState.SKIPPED)
#: how many of a pipeline's newest runs are checked each pass
RECENT_RUNS = 20

_metadata = MetaData()
sla_misses = Table(
    "headrace_sla_misses",
    _metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task_id", String(250), primary_key=True),
    Column("pipeline", String(250), nullable=False, index=True),
    Column("logical_date", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("sla_seconds", Integer, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class SlaMiss:
    """One task of one run that was not done by its deadline."""

    pipeline: str
    run_id: str
    task_id: str
    logical_date: datetime
    deadline: datetime
    sla: timedelta
    detected_at: datetime


class SlaLedger:
    """The recorded SLA misses, in the state store's database.

    Args:
        engine: the SQLAlchemy engine of the state store (``store.engine``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine, checkfirst=True)

    @classmethod
    def for_store(cls, store: StateStore) -> SlaLedger:
        """The ledger living beside ``store``'s tables."""
        engine = getattr(store, "engine", None)
        if not isinstance(engine, Engine):
            raise ScheduleError(
                f"SLA misses are kept in the state store's database, but {type(store).__name__} "
                "exposes no SQLAlchemy engine; use headrace.state.open_store()."
            )
        return cls(engine)

    def record(self, miss: SlaMiss) -> bool:
        """Record ``miss``; False when it was already recorded (by this or another scheduler)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(sla_misses).values(
                        run_id=miss.run_id,
                        task_id=miss.task_id,
                        pipeline=miss.pipeline,
                        logical_date=miss.logical_date,
                        deadline=miss.deadline,
                        sla_seconds=int(miss.sla.total_seconds()),
                        detected_at=miss.detected_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def known(self, run_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(run_id, task_id) pairs already recorded among ``run_ids``."""
        ids = list(run_ids)
        if not ids:
            return set()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sla_misses.c.run_id, sla_misses.c.task_id).where(
                    sla_misses.c.run_id.in_(ids)
                )
            )
            return {(r.run_id, r.task_id) for r in rows}

    def list(self, pipeline: str | None = None) -> list[SlaMiss]:
        """Recorded misses, newest deadline first."""
        query = select(sla_misses).order_by(sla_misses.c.deadline.desc())
        if pipeline is not None:
            query = query.where(sla_misses.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [
                SlaMiss(
                    pipeline=r.pipeline,
                    run_id=r.run_id,
                    task_id=r.task_id,
                    logical_date=_aware(r.logical_date),
                    deadline=_aware(r.deadline),
                    sla=timedelta(seconds=r.sla_seconds),
                    detected_at=_aware(r.detected_at),
                )
                for r in conn.execute(query)
            ]


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time headrace writes is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def find_sla_misses(
    pipeline: Pipeline,
    store: StateStore,
    now: datetime,
    *,
    runs: Iterable[RunRecord] | None = None,
    skip: set[tuple[str, str]] | None = None,
) -> list[SlaMiss]:
    """Tasks of recent scheduled runs of ``pipeline`` past their SLA deadline and not done.

    Args:
        pipeline: the pipeline; only its tasks with an ``sla`` are checked.
        store: the state store.
        now: the current time (injected).
        runs: the runs to check (default: the newest scheduled ones).
        skip: (run_id, task_id) pairs already recorded.

    Returns:
        One miss per late task: not done at ``now`` past the deadline, or done after it.
    """
    slas = {tid: t.sla for tid, t in pipeline.tasks.items() if t.sla is not None}
    if not slas:
        return []
    shortest = min(slas.values())
    candidates = (
        list(runs)
        if runs is not None
        else [
            r for r in store.list_runs(pipeline.name, limit=RECENT_RUNS) if r.trigger == "scheduled"
        ]
    )
    skip = skip or set()
    misses: list[SlaMiss] = []
    for run in candidates:
        if run.data_interval_end + shortest > now:
            continue  # no deadline of this run has passed yet
        if (
            run.state == RunState.SUCCESS
            and run.ended_at is not None
            and (run.ended_at <= run.data_interval_end + shortest)
        ):
            continue  # finished before the earliest deadline: every task was on time
        by_task: dict[str, list[TaskInstanceRecord]] = {}
        for ti in store.get_task_instances(run.run_id):
            by_task.setdefault(ti.task_id, []).append(ti)
        for task_id, sla in slas.items():
            deadline = run.data_interval_end + sla
            if deadline > now or (run.run_id, task_id) in skip:
                continue
            instances = by_task.get(task_id, [])
            if instances:
                # A mapped task is done when every element is.
                done_on_time = all(
                    ti.state in _DONE and (ti.ended_at is None or ti.ended_at <= deadline)
                    for ti in instances
                )
            else:
                done_on_time = run.state == RunState.SUCCESS and (run.ended_at or now) <= deadline
            if not done_on_time:
                misses.append(
                    SlaMiss(
                        pipeline=pipeline.name,
                        run_id=run.run_id,
                        task_id=task_id,
                        logical_date=run.logical_date,
                        deadline=deadline,
                        sla=sla,
                        detected_at=now,
                    )
                )
    return misses
