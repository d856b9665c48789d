"""SLA misses: detecting scheduled tasks not done by their deadline, recording each once.

A task's SLA counts from its run's data interval end (the moment the run became
due), as in Airflow: with ``sla=timedelta(hours=3)`` on a daily 02:00 schedule, the
run for Monday must have the task done by Tuesday 05:00. Only scheduled runs are
checked: a backfill of last year would otherwise miss every SLA at once.

Misses are kept by the state store (``record_sla_miss`` / ``list_sla_misses``, table
``sla_misses`` created by its migrations). One row per (run_id, task_id) makes
recording idempotent, so two schedulers, or one restarted, alert once per miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from headrace.pipeline import Pipeline
from headrace.state.store_base import (
    RunRecord,
    RunState,
    SlaMissRecord,
    StateStore,
    TaskInstanceRecord,
    TaskState,
)

__all__ = ["SlaLedger", "SlaMiss", "find_sla_misses"]

_DONE = (TaskState.SUCCESS, TaskState.SKIPPED)
#: how many of a pipeline's newest runs are checked each pass
RECENT_RUNS = 20

#: One task of one run that was not done by its deadline (the store's record).
SlaMiss = SlaMissRecord


class SlaLedger:
    """The recorded SLA misses, kept by the state store.

    Args:
        store: the state store.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store

    @classmethod
    def for_store(cls, store: StateStore) -> SlaLedger:
        """The ledger of ``store``."""
        return cls(store)

    def record(self, miss: SlaMiss) -> bool:
        """Record ``miss``; False when it was already recorded (by this or another scheduler)."""
        return self.store.record_sla_miss(miss)

    def known(self, run_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(run_id, task_id) pairs already recorded among ``run_ids``."""
        return {(m.run_id, m.task_id) for m in self.store.list_sla_misses(run_ids=list(run_ids))}

    def list(self, pipeline: str | None = None) -> list[SlaMiss]:
        """Recorded misses, newest deadline first."""
        return self.store.list_sla_misses(pipeline)


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
