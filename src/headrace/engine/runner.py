"""The public engine API: :class:`Runner` triggers, runs and resumes pipeline runs."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from headrace.config import Settings
from headrace.engine.attempt import run_work_item
from headrace.engine.clock import Clock, SystemClock
from headrace.engine.drive import Drive, driver_identity
from headrace.engine.loader import load_pipelines, pick_pipeline
from headrace.engine.notify import TaskNotifier
from headrace.engine.past import PastGate
from headrace.engine.run_result import Heartbeat, RunResult, driver_alive
from headrace.engine.staging import staging_dir
from headrace.errors import EngineError, did_you_mean
from headrace.executors.executor_base import Event, Executor
from headrace.masking import register_settings
from headrace.observe.alerts import Alerter
from headrace.observe.observer import Observers, RunObserver, is_sync_task, sql_of
from headrace.pipeline import Pipeline
from headrace.pipeline.alerting import AlertRoutes
from headrace.state.store_base import RunRecord, RunState, StateStore, TaskState

log = logging.getLogger("headrace.engine")


class ExecutorName(StrEnum):
    """The executors a :class:`Runner` can build by name (a plain string works too)."""

    PROCESS = "process"  # a warm pool of worker processes on this machine (the default)
    INPROCESS = "inprocess"  # in the driving process, one task at a time: debugging, tests
    DISTRIBUTED = "distributed"  # `headrace worker` processes anywhere, through Redis


EXECUTORS = tuple(ExecutorName)
NO_ROUTES = AlertRoutes()
#: Side file of runs made before the store recorded ``source_file`` (read, never written).
MANIFEST = "_run.json"


class RunInterrupted(EngineError):
    """The run was stopped by Ctrl-C or SIGTERM; it is marked failed and can be resumed."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"interrupted by {reason}; finish it with `headrace resume {run_id}`", run_id=run_id
        )


class RunClaimedError(EngineError):
    """Another process claimed the run between reading it and starting it (see ``StateStore.claim_run``)."""

    def __init__(self, run_id: str, pipeline: str) -> None:
        super().__init__(
            "was just taken by another run, resume or retry (web, CLI or MCP); it is not run "
            f"twice (see `headrace show {run_id}`)",
            pipeline=pipeline,
            run_id=run_id,
        )


class _Terminated(BaseException):
    """SIGTERM turned into an exception in the driving thread (like KeyboardInterrupt)."""


class Runner:
    """Runs pipelines: creates the run, drives its tasks through an executor, records it all.

    Args:
        store: the state store (``headrace.state.open_store``).
        executor: ``"process"`` (local process pool, default), ``"inprocess"`` or an
            Executor instance.
        settings: the configuration read once at the edge (``Settings.load()``): home
            folder (staging lives under it), connections, pools, queue; handed to every
            task, in whatever process or machine it runs. Required.
        concurrency: workers of the process pool (default: number of cores).
        on_event: called with every :class:`Event` (state changes, progress, log lines).
        clock: time source; tests pass ``FakeClock`` so retries do not sleep.
        heartbeat_interval: seconds between heartbeats of a running run.
        rng: random source for retry jitter.
        alerter: the global alert channels (built at the edge from the settings); tasks'
            own e-mail/webhook routes and callbacks apply with or without it (see
            :mod:`headrace.engine.notify`).

    With the process executor the runner keeps one warm pool of worker processes for
    all its runs (started by the first task, stopped by :meth:`close` or at exit), so a
    run costs what its tasks cost, not a pool start and the imports.

    A script that runs pipelines with the process pool needs the usual
    ``if __name__ == "__main__":`` guard: pool workers start from a fork server and
    import the script's module again (the ``headrace`` CLI needs nothing of the kind).

    Example:
        >>> runner = Runner(open_store(settings.state_url), settings=settings)
        >>> result = runner.run(load_pipelines("etl.py")["customer_etl"], params={"full_refresh": True})
        >>> result.state, result.result_of("transform")
    """

    def __init__(
        self,
        store: StateStore,
        executor: ExecutorName | str | Executor = ExecutorName.PROCESS,
        settings: Settings | None = None,
        concurrency: int | None = None,
        on_event: Callable[[Event], None] | None = None,
        clock: Clock | None = None,
        heartbeat_interval: float = 5.0,
        rng: random.Random | None = None,
        alerter: Alerter | None = None,
    ) -> None:
        if isinstance(executor, str):
            if executor not in EXECUTORS:
                raise EngineError(
                    f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}."
                    + did_you_mean(executor, EXECUTORS)
                )
            executor = ExecutorName(executor)
        if concurrency is not None and concurrency < 1:
            raise EngineError(f"concurrency must be >= 1, got {concurrency}")
        self.store = store
        self.executor = executor
        if settings is None:
            raise EngineError(
                "Runner needs the settings read at your program's edge: "
                "Runner(store, settings=Settings.load()) (nothing below the edge reads the environment)."
            )
        self.settings = settings
        register_settings(self.settings)  # their passwords are masked in everything the run stores
        self.concurrency = concurrency
        self.on_event = on_event
        self.clock = clock or SystemClock()
        self.heartbeat_interval = heartbeat_interval
        self.rng = rng or random.Random()
        self.alerter = alerter
        self._pool: Executor | None = None  # the warm process pool, started by the first run
        self._observers: Observers | None = (
            None  # OpenLineage and StatsD emitters, built on first use
        )
        #: seconds between asks for a slot while max_active_runs is reached
        self.admission_poll = 0.5

    def close(self) -> None:
        """Stop the warm process pool this runner started (a no-op when it started none) and
        send the lineage events and metrics still queued (their senders are the process's,
        shared with its other Runners: they go on)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()  # type: ignore[attr-defined]
        observers, self._observers = self._observers, None
        if observers is not None:
            observers.close()

    def flush_observers(self, timeout: float = 5.0) -> bool:
        """Wait until the OpenLineage events and StatsD metrics queued so far are sent (True),
        at most ``timeout`` s."""
        return self._observers.flush(timeout) if self._observers is not None else True

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def run(
        self,
        pipeline: Pipeline,
        logical_date: datetime | None = None,
        params: Mapping[str, Any] | None = None,
        trigger: str = "manual",
        rerun: bool = False,
    ) -> RunResult:
        """Trigger a run of ``pipeline`` for ``logical_date`` and carry it out.

        A run is keyed by (pipeline, logical date): triggering it again returns the
        existing run without running anything when it has finished (``executed`` is
        False; a failed one is finished with :meth:`resume`), unless ``rerun``.

        Args:
            pipeline: the pipeline.
            logical_date: the date the run is for (naive = pipeline time zone), which
                keys the run; default: now, a new run covering the latest complete
                interval of the schedule.
            params: run parameters (strings are converted to the defaults' types).
            trigger: ``manual``, ``scheduled`` or ``backfill``.
            rerun: when the run of that date exists, clear all its task instances and run
                every task again (``headrace run --date D --rerun``); given ``params``
                replace the run's. Refused while the run's driver is alive.
        """
        resolved = pipeline.resolve_params(params)
        self.pool_sizes(pipeline)
        logical, start, end = self.interval_for(pipeline, logical_date)
        run, created = self._admit(pipeline, logical, start, end, resolved, trigger)
        if not created:
            state = RunState(run.state)
            if state == RunState.RUNNING:
                self._refuse_running(run)
            if rerun:
                run = self._clear(run, resolved if params else None)
            elif state.finished:
                return self._result(run.run_id, executed=False)
        return self._execute(pipeline, run)

    def _clear(self, run: RunRecord, params: dict[str, Any] | None) -> RunRecord:
        """Set every task instance of ``run`` back to queued (errors cleared) for a rerun."""
        updates = [
            (
                run.run_id,
                ti.task_id,
                ti.map_index,
                {
                    "state": TaskState.QUEUED,
                    "error": None,
                    "error_kind": None,
                    "next_try_at": None,
                    "ended_at": None,
                },
            )
            for ti in self.store.get_task_instances(run.run_id)
        ]
        if updates:
            self.store.update_task_instances(updates)
        fields: dict[str, Any] = {"state": RunState.QUEUED, "ended_at": None, "error": None}
        if params is not None:
            fields["params"] = params
        self.store.update_run(run.run_id, **fields)
        return self.store.get_run(run.run_id)

    def _admit(
        self,
        pipeline: Pipeline,
        logical: datetime,
        start: datetime,
        end: datetime,
        params: dict[str, Any],
        trigger: str,
    ) -> tuple[RunRecord, bool]:
        """Create the run once fewer than ``max_active_runs`` runs of the pipeline are active.

        Admission is atomic in the store, so a manual run counts against the same cap as
        the schedulers' and backfills' runs; while the cap is reached the call waits.
        """
        told = False
        while True:
            admission = self.store.admit_run(
                pipeline.name,
                logical,
                start,
                end,
                params,
                trigger,
                max_active=pipeline.max_active_runs,
            )
            if admission.run is not None:
                return admission.run, admission.created
            if not told:
                log.warning(
                    "pipeline %r: max_active_runs=%d reached (%d active); the run for %s waits for a slot",
                    pipeline.name,
                    pipeline.max_active_runs,
                    admission.active,
                    logical.isoformat(),
                )
                told = True
            time.sleep(
                self.admission_poll
            )  # real time: the runs holding the slots end in real time

    def resume(self, run_id: str, pipeline: Pipeline | None = None) -> RunResult:
        """Finish a failed, interrupted or dead run: rerun only tasks that did not succeed.

        Successful tasks keep their staged results, which downstream tasks read again.
        The run is claimed atomically first (``StateStore.claim_run``): of two resumes
        of the same run, one runs it and the other raises :class:`RunClaimedError`.

        Args:
            run_id: the run.
            pipeline: its pipeline; default: loaded from the file recorded when the run started.
        """
        run = self.store.get_run(run_id)
        state = RunState(run.state)
        if state == RunState.SUCCESS:
            return self._result(run_id, executed=False)
        if state == RunState.RUNNING:
            self._refuse_running(run)
        pipeline = self._pipeline_for(run, pipeline)
        self.pool_sizes(pipeline)
        self._claim(run)
        return self._execute(pipeline, self.store.get_run(run_id), claimed=True)

    def retry(
        self, run_id: str, task_id: str, downstream: bool = True, pipeline: Pipeline | None = None
    ) -> RunResult:
        """Run one task of a finished run again, with everything downstream of it (Airflow's clear).

        The run is claimed before its tasks are touched: of two retries, or a retry and a
        resume, started at once, one drives the run and the other raises
        :class:`RunClaimedError`. Like :meth:`resume`, other tasks that did not succeed run too.

        Args:
            run_id: the run.
            task_id: the task to run again (a mapped task: all its elements).
            downstream: also run again every task downstream of it.
            pipeline: its pipeline; default: loaded from the file recorded when the run started.
        """
        run = self.store.get_run(run_id)
        if RunState(run.state) == RunState.RUNNING:
            self._refuse_running(run)
        pipeline = self._pipeline_for(run, pipeline)
        if task_id not in pipeline.tasks:
            raise EngineError(
                "no such task in the pipeline." + did_you_mean(task_id, list(pipeline.tasks)),
                pipeline=pipeline.name,
                task=task_id,
            )
        targets = {task_id} | (self._descendants(pipeline, task_id) if downstream else set())
        self.pool_sizes(pipeline)
        self._claim(run)
        cleared = {
            "state": TaskState.QUEUED,
            "error": None,
            "error_kind": None,
            "next_try_at": None,
            "ended_at": None,
            "started_at": None,
        }
        updates = [
            (run_id, ti.task_id, ti.map_index, dict(cleared))
            for ti in self.store.get_task_instances(run_id)
            if ti.task_id in targets
        ]
        if updates:
            self.store.update_task_instances(updates)
        return self._execute(pipeline, self.store.get_run(run_id), claimed=True)

    def mark(self, run_id: str, task_id: str, state: TaskState) -> RunRecord:
        """Set a task of a finished run to SUCCESS or FAILED by hand; the run's state follows.

        The run becomes SUCCESS when every task then succeeded or was skipped, else FAILED;
        :meth:`resume` afterwards runs what is left (downstream of a task marked success
        reads no result from it).

        Returns:
            The run as stored afterwards.
        """
        if state not in (TaskState.SUCCESS, TaskState.FAILED):
            raise EngineError(f"a task can be marked success or failed, not {state}")
        run = self.store.get_run(run_id)
        if RunState(run.state) == RunState.RUNNING and driver_alive(run, self.clock.now()):
            raise EngineError(
                f"is running (pid {run.pid} on {run.hostname}); mark its tasks after it ends",
                pipeline=run.pipeline,
                run_id=run_id,
            )
        tis = self.store.get_task_instances(run_id)
        if not any(ti.task_id == task_id for ti in tis):
            raise EngineError(
                "no such task in the run." + did_you_mean(task_id, {ti.task_id for ti in tis}),
                pipeline=run.pipeline,
                run_id=run_id,
                task=task_id,
            )
        now = self.clock.now()
        fields: dict[str, Any] = {"state": state, "ended_at": now}
        if state == TaskState.SUCCESS:
            fields.update(error=None, error_kind=None)
        else:
            fields.update(
                error=f"marked failed by hand at {now:%Y-%m-%d %H:%M:%S} UTC", error_kind="marked"
            )
        self.store.update_task_instances(
            [
                (run_id, ti.task_id, ti.map_index, dict(fields))
                for ti in tis
                if ti.task_id == task_id
            ]
        )
        done = (TaskState.SUCCESS, TaskState.SKIPPED)
        states = [state if ti.task_id == task_id else ti.state for ti in tis if ti.map_index < 0]
        ok = all(TaskState(s) in done for s in states)
        self.store.update_run(
            run_id,
            state=RunState.SUCCESS if ok else RunState.FAILED,
            ended_at=now,
            error=None if ok else "task(s) did not succeed (marked by hand)",
        )
        return self.store.get_run(run_id)

    @staticmethod
    def _descendants(pipeline: Pipeline, task_id: str) -> set[str]:
        found: set[str] = set()
        todo = list(pipeline.downstream.get(task_id, ()))
        while todo:
            tid = todo.pop()
            if tid not in found:
                found.add(tid)
                todo.extend(pipeline.downstream.get(tid, ()))
        return found

    def _pipeline_for(self, run: RunRecord, pipeline: Pipeline | None) -> Pipeline:
        if pipeline is None:
            return self.pipeline_of(run)
        if pipeline.name != run.pipeline:
            raise EngineError(
                f"belongs to pipeline {run.pipeline!r}, not {pipeline.name!r}", run_id=run.run_id
            )
        return pipeline

    def _claim(self, run: RunRecord) -> None:
        """Take the run atomically for this process, or raise :class:`RunClaimedError`."""
        if not self.store.claim_run(run, **driver_identity()):
            raise RunClaimedError(run.run_id, run.pipeline)

    def interval_for(
        self, pipeline: Pipeline, logical_date: datetime | None
    ) -> tuple[datetime, datetime, datetime]:
        """(logical date, data interval start, end) of a manual run, all in UTC."""
        timetable = pipeline.timetable
        if logical_date is None:
            # Like a manual trigger in Airflow: every trigger is a new run at "now",
            # covering the latest complete interval. A given date is the idempotency key.
            now = self.clock.now().astimezone(UTC)
            interval = timetable.latest_complete_interval(now)
            return now, interval.start.astimezone(UTC), interval.end.astimezone(UTC)
        logical = logical_date
        if logical.tzinfo is None:
            logical = logical.replace(tzinfo=ZoneInfo(pipeline.timezone))
        logical = logical.astimezone(UTC)
        start, end = timetable.infer_manual_interval(logical)
        return logical, start.astimezone(UTC), end.astimezone(UTC)

    def pool_sizes(self, pipeline: Pipeline) -> dict[str, int]:
        """Size of every pool the pipeline's tasks use, from the settings.

        Raises:
            EngineError: a task names a pool the settings do not size (closest name suggested).
        """
        sizes: dict[str, int] = {}
        for tid in pipeline.order:
            pool = pipeline.tasks[tid].pool
            if pool is None:
                continue
            size = self.settings.pools.get(pool.lower())
            if size is None:
                raise EngineError(
                    f"pool {pool!r} has no size; set "
                    f"HEADRACE_POOL_{pool.upper()}=N or add `{pool.lower()} = N` under [pools] in headrace.toml."
                    + did_you_mean(pool.lower(), self.settings.pools),
                    pipeline=pipeline.name,
                    task=tid,
                )
            sizes[pool.lower()] = size
        return sizes

    # ------------------------------------------------------------------ internals

    def _refuse_running(self, run: RunRecord) -> None:
        """Refuse a run whose driving process is alive; a dead one may be taken over."""
        stale = timedelta(seconds=max(60.0, 6 * self.heartbeat_interval))
        if driver_alive(run, self.clock.now(), stale):
            raise EngineError(
                f"is already running (pid {run.pid} on {run.hostname}); wait for it or stop that process first",
                pipeline=run.pipeline,
                run_id=run.run_id,
            )

    def pipeline_of(self, run: RunRecord) -> Pipeline:
        """The pipeline of ``run``, loaded from the file recorded when it started.

        Runs started before the store kept ``source_file`` have it in the staging
        folder's ``_run.json``, which is read instead.
        """
        file = run.source_file
        if file is None:
            manifest = staging_dir(self.settings.home, run.pipeline, run.run_id) / MANIFEST
            try:
                file = json.loads(manifest.read_text())["file"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise EngineError(
                    f"cannot tell which file defines the pipeline (the run records none and {manifest} "
                    f"is missing); pass the pipeline (headrace resume {run.run_id} --file FILE)",
                    pipeline=run.pipeline,
                    run_id=run.run_id,
                ) from exc
        return pick_pipeline(load_pipelines(file), run.pipeline, file)

    def _make_executor(self) -> Executor:
        if not isinstance(self.executor, str):
            return self.executor
        if self.executor is ExecutorName.INPROCESS:
            from headrace.executors.inprocess import InProcessExecutor

            return InProcessExecutor()
        if self.executor is ExecutorName.DISTRIBUTED:
            # Workers started with `headrace worker` on any machine that has the pipeline
            # file at the same path; Redis from the settings' queue section.
            from headrace.executors.distributed import DistributedExecutor
            from headrace.observe.statsd import StatsdClient
            from headrace.queue import QueueConnection

            return DistributedExecutor(
                QueueConnection.from_settings(self.settings),
                capacity=self.concurrency or 16,
                statsd=StatsdClient.from_settings(self.settings.metrics),
            )
        from headrace.executors.process import ProcessExecutor

        if self._pool is None:
            # One warm pool for every run of this runner: workers keep their imports.
            self._pool = ProcessExecutor(self.concurrency, keep_warm=True)
        return self._pool

    def _event(
        self,
        run_id: str,
        state: RunState,
        error: str | None = None,
        target: Callable[[Event], None] | None = None,
    ) -> None:
        target = target or self.on_event
        if target is not None:
            with contextlib.suppress(Exception):  # a broken live view must not break the run
                target(Event("run", run_id, state=str(state), error=error))

    def _observer(
        self, pipeline: Pipeline, run: RunRecord, then: Callable[[Event], None] | None
    ) -> RunObserver | None:
        """Lineage and metrics of the run, when configured or when a sync task records its load."""
        settings = self.settings
        if not (
            settings.lineage.kind
            or settings.metrics.statsd
            or any(is_sync_task(pipeline, t) or sql_of(pipeline, t) for t in pipeline.tasks)
        ):
            return None
        if self._observers is None:
            self._observers = Observers(settings)
        return self._observers.for_run(self.store, pipeline, run, then)

    def _execute(self, pipeline: Pipeline, run: RunRecord, claimed: bool = False) -> RunResult:
        """Claim ``run`` (unless the caller did), then drive its tasks to the end."""
        run_id = run.run_id
        staging = staging_dir(self.settings.home, pipeline.name, run_id)
        staging.mkdir(parents=True, exist_ok=True)
        if not claimed:
            self._claim(run)  # a run, resume or scheduler launch racing another on the same run
        now = self.clock.now()
        self.store.update_run(
            run_id,
            started_at=run.started_at or now,
            heartbeat_at=now,
            source_file=pipeline.file,
        )
        on_event = self.on_event
        observer = self._observer(pipeline, run, on_event)
        run_events = observer or on_event
        self._event(run_id, RunState.RUNNING, target=run_events)
        executor = self._make_executor()
        executor.start(self.on_event or (lambda event: None), pipeline, run_work_item)
        stale = timedelta(seconds=max(60.0, 6 * self.heartbeat_interval))
        on_event = run_events
        notified = self.alerter is not None or any(
            t.alerts != NO_ROUTES for t in pipeline.tasks.values()
        )
        if notified:
            on_event = TaskNotifier(
                pipeline, run, self.store, self.settings, self.alerter, then=on_event
            )
        drive = Drive(
            self.store,
            pipeline,
            run,
            executor,
            self.clock,
            on_event,
            self.settings,
            self.rng,
            wait_slice=min(1.0, self.heartbeat_interval),
            pools=self.pool_sizes(pipeline),
            past=PastGate(self.store, pipeline, run, self.clock, stale),
            state_url=self.settings.state_url,
            element_events=notified or self.on_event is not None,
        )
        if observer is not None:
            observer.bind(drive.tis)
        heartbeat = Heartbeat(self.store, run_id, self.heartbeat_interval)
        clean = False
        try:
            with _sigterm_as_exception():
                drive.prepare()
                heartbeat.start()
                drive.execute()
            clean = True
        except (KeyboardInterrupt, _Terminated) as exc:
            reason = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT (Ctrl-C)"
            executor.shutdown(kill=True)
            self._fail(
                drive,
                run_id,
                "interrupted",
                f"interrupted by {reason}; resume with `headrace resume {run_id}`",
                run_events,
            )
            raise RunInterrupted(run_id, reason) from None  # the reason names the signal
        except BaseException as exc:
            executor.shutdown(kill=True)
            self._fail(
                drive,
                run_id,
                "engine_error",
                f"engine failed: {type(exc).__name__}: {exc}",
                run_events,
            )
            raise
        finally:
            heartbeat.stop()
            if clean:
                executor.shutdown()
        failed = drive.failed_tasks()
        state = RunState.FAILED if failed else RunState.SUCCESS
        error = f"task(s) did not succeed: {', '.join(failed)}" if failed else None
        self.store.update_run(run_id, state=state, ended_at=self.clock.now(), error=error)
        self._event(run_id, state, error, target=run_events)
        return self._result(run_id)

    def _fail(
        self,
        drive: Drive,
        run_id: str,
        kind: str,
        message: str,
        target: Callable[[Event], None] | None = None,
    ) -> None:
        """Best effort: record the abandoned attempts and the failed run."""
        try:
            drive.abandon(kind, message)
        finally:
            self.store.update_run(
                run_id, state=RunState.FAILED, ended_at=self.clock.now(), error=message
            )
            self._event(run_id, RunState.FAILED, message, target=target)

    def _result(self, run_id: str, executed: bool = True) -> RunResult:
        return RunResult(
            self.store.get_run(run_id), self.store.get_task_instances(run_id), executed
        )


@contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """While a run is driven from the main thread, SIGTERM stops it like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
