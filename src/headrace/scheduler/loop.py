"""The scheduler: a loop that creates due runs from each pipeline's timetable and launches them.

Every decision is derived from the state store, never from memory, so a restarted
scheduler neither misses nor repeats an interval, and two schedulers can share one
PostgreSQL store:

- the next interval follows the newest automated (scheduled or backfill) run's data
  interval end (Airflow's rule), filtered by start/end dates and catchup;
- a run is claimed with ``store.create_run``, whose unique (pipeline, logical date)
  key lets exactly one scheduler create it; only the creator launches it;
- ``max_active_runs`` is enforced by the store: a run is created with
  ``store.admit_run``, which counts the pipeline's active runs and inserts the new
  one in a single transaction serialised per pipeline, so the cap holds for any
  number of schedulers, backfills and hosts.

Each tick also fails runs whose driving process died (so they stop holding a slot,
with an alert telling how to resume), relaunches scheduled runs left QUEUED by a
scheduler that died between creating and launching them, and records and alerts
SLA misses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from headrace.config import Settings
from headrace.engine import Clock, SystemClock, driver_alive
from headrace.engine.notify import notify_sla_miss
from headrace.observe.alerts import Alert, Alerter, AlertKind
from headrace.observe.statsd import StatsdClient
from headrace.pipeline import Pipeline
from headrace.pipeline.timetable import Interval, Timetable, timetable_from
from headrace.scheduler.launch import Launcher
from headrace.scheduler.sla import SlaLedger, SlaMiss, find_sla_misses
from headrace.state.admission import Admission
from headrace.state.history import AUTOMATED_TRIGGERS, last_automated_run
from headrace.state.store_base import RunRecord, RunState, StateStore

__all__ = ["AUTOMATED_TRIGGERS", "Scheduler", "TickReport", "last_automated_run", "timetable_of"]

log = logging.getLogger("headrace.scheduler")

_ACTIVE = (RunState.QUEUED, RunState.RUNNING)


@dataclass
class TickReport:
    """What one pass of the scheduler did."""

    started: list[RunRecord] = field(default_factory=list)
    relaunched: list[RunRecord] = field(default_factory=list)
    failed_dead: list[RunRecord] = field(default_factory=list)
    sla_misses: list[SlaMiss] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # pipeline -> why nothing started


def timetable_of(pipeline: Pipeline) -> Timetable:
    """The pipeline's timetable with the scheduling API (its ``.timetable`` when it has one)."""
    timetable = pipeline.timetable
    if isinstance(timetable, Timetable):
        return timetable
    return timetable_from(pipeline.schedule, pipeline.timezone)


class Scheduler:
    """Creates and launches the due runs of ``pipelines``.

    Args:
        pipelines: the pipelines to schedule (manual-only ones are ignored).
        store: the state store.
        launcher: drives the runs (:class:`~headrace.scheduler.launch.SubprocessLauncher`
            by default in the CLI).
        alerter: sends SLA-miss alerts (and failure alerts for dead drivers).
        statsd: counts SLA misses (``sla.misses``) on a StatsD agent.
        clock: time source; tests inject one.
        orphan_grace: a scheduled run still QUEUED without a driver after this long
            was left behind by a dead scheduler and is launched again.
        dead_after: a RUNNING run on another host without heartbeat for this long is dead.
        on_start: called with each run started (the CLI prints it).
        settings: what ``on_sla_miss`` callbacks see as ``ctx.settings`` (their state
            store, connections, home); by default the launcher's, which the runs use.

    Example:
        >>> scheduler = Scheduler(load_pipelines("etl.py").values(), store, launcher=launcher)
        >>> scheduler.serve(poll_interval=5)
    """

    def __init__(
        self,
        pipelines: Iterable[Pipeline],
        store: StateStore,
        *,
        launcher: Launcher,
        alerter: Alerter | None = None,
        clock: Clock | None = None,
        orphan_grace: timedelta = timedelta(minutes=2),
        dead_after: timedelta = timedelta(minutes=2),
        on_start: Callable[[RunRecord], None] | None = None,
        sla_ledger: SlaLedger | None = None,
        statsd: StatsdClient | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.pipelines: Sequence[Pipeline] = [p for p in pipelines if timetable_of(p).periodic]
        self.store = store
        self.launcher = launcher
        self.alerter = alerter
        self.clock = clock or SystemClock()
        self.orphan_grace = orphan_grace
        self.dead_after = dead_after
        self.on_start = on_start
        self.statsd = statsd
        # What on_sla_miss callbacks see as ctx.settings: the launcher's (the runs') by default.
        self.settings: Settings | None = settings or getattr(launcher, "settings", None)
        has_sla = any(t.sla is not None for p in self.pipelines for t in p.tasks.values())
        self.sla_ledger = sla_ledger or (SlaLedger.for_store(store) if has_sla else None)
        self._stop = threading.Event()

    # ------------------------------------------------------------------ one pass

    def tick(self) -> TickReport:
        """Look at every pipeline once: reap dead runs, start due ones, check SLAs."""
        report = TickReport()
        for pipeline in self.pipelines:
            try:
                self._tick_pipeline(pipeline, report)
            except Exception as exc:  # one broken pipeline must not stop the others
                log.exception("scheduling pipeline %r failed", pipeline.name)
                report.waiting[pipeline.name] = f"error: {type(exc).__name__}: {exc}"
        return report

    def _tick_pipeline(self, pipeline: Pipeline, report: TickReport) -> None:
        now = self.clock.now()
        active = self._live_active_runs(pipeline, now, report)
        if self.store.is_paused(pipeline.name):  # paused from the web UI / API: no new runs
            report.waiting[pipeline.name] = "paused"
            return
        slots = pipeline.max_active_runs - len(active)
        last = last_automated_run(self.store, pipeline.name)
        after_end = last.data_interval_end if last is not None else None
        while True:
            interval = timetable_of(pipeline).next_interval(
                after_end,
                start_date=pipeline.start_date,
                end_date=pipeline.end_date,
                catchup=pipeline.catchup,
                now=now,
            )
            if interval is None:
                report.waiting[pipeline.name] = "schedule ended (end_date)"
                break
            if not interval.due(now):
                report.waiting[pipeline.name] = f"next run due at {interval.end.isoformat()}"
                break
            if slots <= 0:
                report.waiting[pipeline.name] = (
                    f"max_active_runs={pipeline.max_active_runs} reached; "
                    f"{interval.start.isoformat()} waits"
                )
                break
            admission = self._claim(pipeline, interval, now)
            if admission.refused:  # another process took the last slot since we counted
                report.waiting[pipeline.name] = (
                    f"max_active_runs={pipeline.max_active_runs} reached; "
                    f"{interval.start.isoformat()} waits"
                )
                break
            after_end = interval.end
            run = admission.run
            if not admission.created or run is None:
                continue  # another scheduler (or a backfill) has this interval
            self._launch(pipeline, run)
            report.started.append(run)
            if not RunState(self.store.get_run(run.run_id).state).finished:
                slots -= 1  # an inline launcher has already finished it: no slot taken
            if interval.end == interval.start:
                break  # @once: a single run
        if self.sla_ledger is not None:
            report.sla_misses += self._check_slas(pipeline, now)

    def _claim(self, pipeline: Pipeline, interval: Interval, now: datetime) -> Admission:
        """Create the interval's run if a slot is free (atomic in the store)."""
        return self.store.admit_run(
            pipeline.name,
            interval.start,
            interval.start,
            interval.end,
            pipeline.resolve_params(None),
            "scheduled",
            max_active=pipeline.max_active_runs,
            queued_grace=self.orphan_grace,
            stale_after=self.dead_after,
            now=now,
        )

    def _launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        log.info("starting run %s of %r for %s", run.run_id, pipeline.name, run.logical_date)
        if self.on_start is not None:
            self.on_start(run)
        self.launcher.launch(pipeline, run)

    def _live_active_runs(
        self, pipeline: Pipeline, now: datetime, report: TickReport
    ) -> list[RunRecord]:
        """QUEUED/RUNNING runs that hold a slot, after failing dead ones and relaunching orphans."""
        active = self.store.list_runs(pipeline.name, states=_ACTIVE, limit=10_000)
        mine = self.launcher.running()
        live: list[RunRecord] = []
        for run in active:
            if run.run_id in mine:
                live.append(run)
            elif run.state == RunState.RUNNING and not driver_alive(run, now, self.dead_after):
                self._fail_dead(pipeline, run, now)
                report.failed_dead.append(run)
            elif (
                run.state == RunState.QUEUED
                and run.pid is None
                and run.created_at is not None
                and now - run.created_at > self.orphan_grace
            ):
                if run.trigger == "scheduled":
                    log.warning(
                        "run %s of %r was left queued; launching it again",
                        run.run_id,
                        pipeline.name,
                    )
                    self.launcher.launch(pipeline, run)
                    report.relaunched.append(run)
                    live.append(run)
                # A manual or backfill run left queued by a dead process holds no slot:
                # `headrace resume` or the same backfill finishes it.
            else:
                live.append(run)
        return live

    def _fail_dead(self, pipeline: Pipeline, run: RunRecord, now: datetime) -> None:
        message = (
            f"the process driving this run (pid {run.pid} on {run.hostname}) died; "
            f"finish it with `headrace resume {run.run_id}`"
        )
        log.warning("run %s of %r: %s", run.run_id, pipeline.name, message)
        self.store.update_run(run.run_id, state=RunState.FAILED, ended_at=now, error=message)
        if self.alerter is not None:
            self.alerter.notify(
                Alert(AlertKind.FAILURE, pipeline.name, run.run_id, run.logical_date, error=message)
            )

    def _check_slas(self, pipeline: Pipeline, now: datetime) -> list[SlaMiss]:
        assert self.sla_ledger is not None
        runs = [
            r for r in self.store.list_runs(pipeline.name, limit=20) if r.trigger == "scheduled"
        ]
        found = find_sla_misses(
            pipeline, self.store, now, runs=runs, skip=self.sla_ledger.known(r.run_id for r in runs)
        )
        recorded = [miss for miss in found if self.sla_ledger.record(miss)]
        for miss in recorded:
            log.warning(
                "SLA miss: %s.%s of run %s not done by %s",
                miss.pipeline,
                miss.task_id,
                miss.run_id,
                miss.deadline,
            )
            if self.statsd is not None:
                self.statsd.count(
                    "sla.misses", 1, {"pipeline": miss.pipeline, "task": miss.task_id}
                )
            if self.alerter is not None:
                self.alerter.notify(
                    Alert(
                        AlertKind.SLA_MISS,
                        miss.pipeline,
                        miss.run_id,
                        miss.logical_date,
                        task_id=miss.task_id,
                        sla=miss.sla,
                        detail=f"Deadline was {miss.deadline.isoformat()} (data interval end + SLA).",
                    )
                )
            # The task's own routes and on_sla_miss callback (headrace.engine.notify).
            notify_sla_miss(
                pipeline, miss, self.store.get_run(miss.run_id), self.alerter, self.settings
            )
        return recorded

    # ------------------------------------------------------------------ the loop

    def serve(
        self,
        poll_interval: float = 5.0,
        *,
        max_ticks: int | None = None,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        """Tick every ``poll_interval`` seconds until :meth:`stop` (or ``max_ticks``)."""
        ticks = 0
        while not self._stop.is_set():
            report = self.tick()
            ticks += 1
            if on_tick is not None:
                on_tick(report)
            if max_ticks is not None and ticks >= max_ticks:
                break
            self._stop.wait(poll_interval)

    def stop(self) -> None:
        """Make :meth:`serve` return after the current tick."""
        self._stop.set()
