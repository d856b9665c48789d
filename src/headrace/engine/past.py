"""``depends_on_past``: a task instance runs only if the same task did well in the previous run.

As in Airflow, "previous run" is the pipeline's run with the latest logical date before
this one (whatever triggered it), and "did well" is ``success`` or ``skipped``. The
first run of a pipeline, and a task the previous run did not have, may always run.

While the previous run is still going (queued, or running with a live driver) the task
waits; once it has ended with the task in any other state, the task is marked
``upstream_failed`` with a message naming the previous run, and ``headrace resume``
of this run tries again after that run was fixed.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from headrace.engine.clock import Clock
from headrace.engine.run_result import driver_alive
from headrace.pipeline import Pipeline
from headrace.state.store_base import RunRecord, RunState, StateStore, TaskState

__all__ = ["PAST_ERROR_KIND", "PastGate", "PastVerdict"]

#: ``error_kind`` of a task instance held back by depends_on_past.
PAST_ERROR_KIND = "depends_on_past"
_GOOD = (TaskState.SUCCESS, TaskState.SKIPPED)


class PastVerdict(StrEnum):
    RUN = "run"
    WAIT = "wait"
    BLOCKED = "blocked"


class PastGate:
    """Answers, for the depends_on_past tasks of one run, whether the previous run allows them.

    Args:
        store: the state store.
        pipeline: the pipeline.
        run: the run being driven.
        clock: time source (for the previous driver's liveness).
        stale: heartbeat age after which a running previous run counts as dead.
    """

    def __init__(
        self, store: StateStore, pipeline: Pipeline, run: RunRecord, clock: Clock, stale: timedelta
    ) -> None:
        self.store, self.pipeline, self.run, self.clock, self.stale = (
            store,
            pipeline,
            run,
            clock,
            stale,
        )
        self.task_ids = frozenset(tid for tid, t in pipeline.tasks.items() if t.depends_on_past)
        self._previous: RunRecord | None = None
        self._looked = False

    def verdict(self, task_id: str) -> tuple[PastVerdict, str | None]:
        """Whether ``task_id`` may run now, must wait, or is blocked (with the reason)."""
        if task_id not in self.task_ids:
            return PastVerdict.RUN, None
        if not self._looked:
            self._previous = self.store.previous_run(self.pipeline.name, self.run.logical_date)
            self._looked = True
        if self._previous is None:
            return PastVerdict.RUN, None
        previous = self.store.get_run(self._previous.run_id)
        ti = next(
            (
                t
                for t in self.store.get_task_instances(previous.run_id)
                if t.task_id == task_id and t.map_index < 0
            ),
            None,
        )
        if ti is None or ti.state in _GOOD:
            return PastVerdict.RUN, None
        state = RunState(previous.state)
        if state == RunState.QUEUED or (
            state == RunState.RUNNING and driver_alive(previous, self.clock.now(), self.stale)
        ):
            return PastVerdict.WAIT, None
        return PastVerdict.BLOCKED, (
            f"depends_on_past: task {task_id!r} is {ti.state} in the previous run {previous.run_id} "
            f"({previous.logical_date:%Y-%m-%d %H:%M} UTC) of pipeline {self.pipeline.name!r}; finish that run "
            f"first (headrace resume {previous.run_id}), then headrace resume {self.run.run_id}"
        )
