"""Backfills: one run per data interval between two dates, oldest first.

A backfill is idempotent and resumable because it decides from the store what each
interval needs: a succeeded run is skipped (unless ``rerun``), a failed, interrupted
or never-started run is resumed (only its unfinished tasks run again), a missing one
is created with trigger ``backfill``. Interrupt it at any point and run the same
command again: it picks up where it stopped.

At most ``max_active`` runs of the pipeline are active at once, counting runs that
something else (the scheduler) is driving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from headrace.engine import driver_alive
from headrace.errors import ScheduleError
from headrace.pipeline import Pipeline
from headrace.pipeline.timetable import Interval
from headrace.scheduler.launch import Launcher
from headrace.scheduler.loop import timetable_of
from headrace.state.store_base import RunRecord, RunState, StateStore, TaskState

__all__ = ["Backfill", "BackfillReport", "Plan", "plan_backfill"]

#: a QUEUED run without a driver for longer than this was abandoned by a dead process
ORPHAN_GRACE = timedelta(minutes=2)


#: Task error kinds that no retry and no other interval can fix (the backfill stops).
CONFIG_ERROR_KINDS = frozenset({"ConfigError", "UsageError", "DefinitionError", "ParamError"})


def config_error_of(store: StateStore, run_id: str) -> str | None:
    """One line naming the run, task and configuration error it failed on, or None.

    A task that failed with a ConfigError (e.g. ``Unknown connection 'crm'``) fails the
    same way in every interval and every tick: backfill and scheduler stop on it.
    """
    for ti in store.get_task_instances(run_id):
        if ti.state == TaskState.FAILED and ti.error_kind in CONFIG_ERROR_KINDS:
            return f"run {run_id}, task {ti.task_id!r}: {(ti.error or '').strip().rstrip('.')}"
    return None


class Plan(StrEnum):
    """What a backfill does with one interval."""

    CREATE = "create"  # no run yet
    RESUME = "resume"  # failed, interrupted or never started
    RERUN = "rerun"  # succeeded, and --rerun asked to run it again
    SKIP = "skip"  # succeeded
    WAIT = "wait"  # being run right now by another live process


@dataclass
class BackfillReport:
    """Per-interval outcome of a backfill, oldest first."""

    pipeline: str
    outcomes: list[tuple[Interval, Plan, RunState | None, str | None]] = field(default_factory=list)
    #: Why the backfill stopped early: a run failed on a configuration error (a missing
    #: connection, a bad setting) that every later interval would hit too.
    stopped: str | None = None
    #: Intervals not started because of ``stopped``.
    not_started: int = 0

    @property
    def succeeded(self) -> int:
        return sum(
            1
            for _, plan, state, _ in self.outcomes
            if plan != Plan.SKIP and state == RunState.SUCCESS
        )

    @property
    def skipped(self) -> int:
        return sum(1 for _, plan, _, _ in self.outcomes if plan == Plan.SKIP)

    @property
    def failed(self) -> list[str]:
        """Run ids that did not succeed."""
        return [
            run_id or "?"
            for _, plan, state, run_id in self.outcomes
            if plan != Plan.SKIP and state != RunState.SUCCESS
        ]


def plan_backfill(
    pipeline: Pipeline, store: StateStore, start: datetime, end: datetime, *, rerun: bool = False
) -> list[tuple[Interval, Plan, RunRecord | None]]:
    """What to do for each interval whose logical date is in ``[start, end]``.

    Args:
        pipeline: the pipeline (must have a schedule).
        store: the state store.
        start, end: first and last logical dates (naive = pipeline time zone).
        rerun: run succeeded intervals again.
    """
    timetable = timetable_of(pipeline)
    intervals = list(timetable.intervals(start, end, anchor=pipeline.start_date))
    if not intervals:
        raise ScheduleError(
            f"backfill: no interval of schedule {timetable.summary!r} starts between "
            f"{start.isoformat()} and {end.isoformat()}; widen --start/--end.",
            pipeline=pipeline.name,
        )
    plans: list[tuple[Interval, Plan, RunRecord | None]] = []
    for interval in intervals:
        run = store.find_run(pipeline.name, interval.start)
        if run is None:
            plans.append((interval, Plan.CREATE, None))
        elif run.state == RunState.SUCCESS:
            plans.append((interval, Plan.RERUN if rerun else Plan.SKIP, run))
        elif run.state == RunState.RUNNING and driver_alive(run):
            plans.append((interval, Plan.WAIT, run))
        else:
            plans.append((interval, Plan.RESUME, run))
    return plans


def _recent(created_at: datetime | None, now: datetime) -> bool:
    return created_at is not None and now - created_at < ORPHAN_GRACE


class Backfill:
    """Runs a pipeline over past intervals.

    Args:
        pipeline: the pipeline.
        store: the state store.
        launcher: drives runs (inline for one at a time, subprocesses for several).
        max_active: runs active at once (default: the pipeline's max_active_runs).
        console: where the progress bar goes (None: no progress output).
        poll_interval: seconds between checks of running runs.

    Example:
        >>> report = Backfill(pipeline, store, launcher=launcher).run(datetime(2024, 1, 1), datetime(2024, 1, 31))
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: StateStore,
        *,
        launcher: Launcher,
        max_active: int | None = None,
        console: Console | None = None,
        poll_interval: float = 0.5,
        on_progress: Callable[[Interval, Plan], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.launcher = launcher
        self.max_active = max_active or pipeline.max_active_runs
        if self.max_active < 1:
            raise ScheduleError("backfill: max_active must be >= 1", pipeline=pipeline.name)
        self.console = console
        self.poll_interval = poll_interval
        self.on_progress = on_progress
        self._planned: set[str] = set()
        self._checked: set[str] = set()

    def run(self, start: datetime, end: datetime, *, rerun: bool = False) -> BackfillReport:
        """Run every interval in ``[start, end]`` that needs it, oldest first."""
        plans = plan_backfill(self.pipeline, self.store, start, end, rerun=rerun)
        self._planned = {run.run_id for _, _, run in plans if run is not None}
        report = BackfillReport(self.pipeline.name)
        progress = self._progress()
        with progress:
            bar = progress.add_task(f"backfill {self.pipeline.name}", total=len(plans))
            launched: dict[str, tuple[Interval, Plan]] = {}
            for index, (interval, plan, run) in enumerate(plans):
                if plan == Plan.SKIP:
                    report.outcomes.append(
                        (interval, plan, RunState.SUCCESS, run.run_id if run else None)
                    )
                    progress.advance(bar)
                    continue
                self._wait_for_slot(launched, report, progress, bar)
                report.stopped = report.stopped or self._config_error(report)
                if report.stopped is not None:
                    report.not_started = sum(p != Plan.SKIP for _, p, _ in plans[index:])
                    break
                record = self._prepare(interval, plan, run)
                if plan == Plan.WAIT:
                    launched[record.run_id] = (interval, plan)  # someone else drives it: just wait
                    continue
                if self.on_progress is not None:
                    self.on_progress(interval, plan)
                progress.update(
                    bar,
                    description=f"backfill {self.pipeline.name} {interval.start:%Y-%m-%d %H:%M}",
                )
                self.launcher.launch(self.pipeline, record)
                launched[record.run_id] = (interval, plan)
            while launched:
                self._collect(launched, report, progress, bar)
                if launched:
                    time.sleep(self.poll_interval)
        if report.stopped is None and not report.not_started:
            report.stopped = self._config_error(report)
        report.outcomes.sort(key=lambda o: o[0].start)
        return report

    def _config_error(self, report: BackfillReport) -> str | None:
        """The first configuration error among the failed runs so far (see :func:`config_error_of`)."""
        for run_id in report.failed:
            if run_id == "?" or run_id in self._checked:
                continue
            self._checked.add(run_id)
            found = config_error_of(self.store, run_id)
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------------ internals

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console or Console(quiet=True),
            transient=False,
        )

    def _prepare(self, interval: Interval, plan: Plan, run: RunRecord | None) -> RunRecord:
        if plan == Plan.CREATE:
            # Admitted by the store: the cap holds against schedulers and other backfills too.
            while True:
                admission = self.store.admit_run(
                    self.pipeline.name,
                    interval.start,
                    interval.start,
                    interval.end,
                    self.pipeline.resolve_params(None),
                    "backfill",
                    max_active=self.max_active,
                )
                if admission.run is not None:
                    return admission.run
                time.sleep(self.poll_interval)
        assert run is not None
        if plan == Plan.RERUN:
            # Clear every task so the engine runs them all again (resume keeps successes).
            updates = [
                (
                    run.run_id,
                    ti.task_id,
                    ti.map_index,
                    {"state": TaskState.QUEUED, "error": None, "error_kind": None},
                )
                for ti in self.store.get_task_instances(run.run_id)
            ]
            if updates:
                self.store.update_task_instances(updates)
            self.store.update_run(run.run_id, state=RunState.QUEUED, ended_at=None, error=None)
        return self.store.get_run(run.run_id)

    def _active_elsewhere(self, launched: dict[str, tuple[Interval, Plan]]) -> int:
        """Runs of the pipeline that another live process drives (or is about to)."""
        active = self.store.list_runs(
            self.pipeline.name, states=(RunState.QUEUED, RunState.RUNNING), limit=10_000
        )
        now = datetime.now(UTC)
        return sum(
            1
            for r in active
            if r.run_id not in launched
            and (
                driver_alive(r)
                # just created by a scheduler whose worker is starting; an older
                # driverless QUEUED run (or one this backfill will resume) holds no slot
                or (
                    r.run_id not in self._planned
                    and r.state == RunState.QUEUED
                    and r.pid is None
                    and _recent(r.created_at, now)
                )
            )
        )

    def _wait_for_slot(
        self,
        launched: dict[str, tuple[Interval, Plan]],
        report: BackfillReport,
        progress: Progress,
        bar: TaskID,
    ) -> None:
        while True:
            self._collect(launched, report, progress, bar)
            if len(launched) + self._active_elsewhere(launched) < self.max_active:
                return
            time.sleep(self.poll_interval)

    def _collect(
        self,
        launched: dict[str, tuple[Interval, Plan]],
        report: BackfillReport,
        progress: Progress,
        bar: TaskID,
    ) -> None:
        """Record runs that ended since the last look."""
        still = self.launcher.running()
        for run_id in list(launched):
            if run_id in still:
                continue
            run = self.store.get_run(run_id)
            interval, plan = launched[run_id]
            if plan == Plan.WAIT and run.state == RunState.RUNNING and driver_alive(run):
                continue
            if run.state in (RunState.QUEUED, RunState.RUNNING) and plan != Plan.WAIT:
                # The driver ended without finishing the run (crashed): report it as failed.
                run_state = RunState.FAILED
            else:
                run_state = RunState(run.state)
            del launched[run_id]
            report.outcomes.append((interval, plan, run_state, run_id))
            progress.advance(bar)
