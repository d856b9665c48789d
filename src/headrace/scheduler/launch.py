"""Where the scheduler and backfills carry out the runs they trigger.

:class:`SubprocessLauncher` (the default) drives each run in its own process
(``python -m headrace.scheduler.run_one``), so a crashing task or pipeline file never
takes the scheduler down, runs proceed side by side, and the engine's dead-driver
detection (pid + heartbeat) applies. :class:`InlineLauncher` drives runs one at a
time inside the calling process: for tests with an injected clock, debugging, and
backfills with one active run. :class:`ThreadLauncher` drives runs side by side in
threads of the calling process (backfills with several active runs, ``headrace
scheduler --threads``). The last two keep warm process pools across the runs they
drive, so a run costs what its tasks cost.

Failure and retry alerts are sent by whichever process drives the run, from the
engine's task events.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from headrace.config import Settings
from headrace.engine import Event, ExecutorName, Runner
from headrace.executors.executor_base import Executor
from headrace.executors.process import ProcessExecutor
from headrace.observe.alerts import Alert, Alerter, AlertKind
from headrace.pipeline import Pipeline
from headrace.state.store_base import RunRecord, RunState, StateStore, TaskState

#: The variable a driving child process finds its parent's settings in (JSON).
SETTINGS_ENV = "HEADRACE_SETTINGS_JSON"

__all__ = [
    "SETTINGS_ENV",
    "InlineLauncher",
    "Launcher",
    "SubprocessLauncher",
    "ThreadLauncher",
    "alerting_events",
    "drive_run",
]

log = logging.getLogger("headrace.scheduler")


class Launcher(Protocol):
    """Starts the driving of runs the scheduler created, and tells when they end."""

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        """Drive ``run`` (already created in the store) to its end."""
        ...

    def running(self) -> set[str]:
        """Ids of the runs launched here whose driver has not finished yet."""
        ...

    def shutdown(self, wait: bool = True) -> None: ...


def alerting_events(
    alerter: Alerter | None,
    pipeline: Pipeline,
    run: RunRecord | None,
    then: Callable[[Event], None] | None = None,
) -> Callable[[Event], None] | None:
    """An engine ``on_event`` callback sending failure/retry alerts for a run's tasks.

    Args:
        alerter: decides and sends (None: only ``then`` is called).
        pipeline: the pipeline being run.
        run: the run record when known (adds its logical date); None when the
            callback is made before the run exists, as ``headrace run`` does — the
            run id then comes from the events.
        then: another callback to chain (a live view).
    """
    if alerter is None and then is None:
        return None

    def on_event(event: Event) -> None:
        if then is not None:
            then(event)
        if alerter is None or event.kind != "task" or event.state is None:
            return
        kind = {
            TaskState.FAILED.value: AlertKind.FAILURE,
            TaskState.UP_FOR_RETRY.value: AlertKind.RETRY,
        }.get(event.state)
        if kind is None or not alerter.wants(kind):
            return
        if kind == AlertKind.FAILURE and event.map_index >= 0:
            return  # the mapped task's own failure follows, naming how many elements failed
        task_id = event.task_id if event.map_index < 0 else f"{event.task_id}[{event.map_index}]"
        run_id = run.run_id if run is not None else event.run_id
        alerter.notify(
            Alert(
                kind=kind,
                pipeline=pipeline.name,
                run_id=run_id,
                logical_date=run.logical_date if run is not None else None,
                task_id=task_id,
                error=event.error,
                attempt=event.attempt,
                detail=(
                    f"Resume with: headrace resume {run_id}"
                    if kind == AlertKind.FAILURE
                    else "The task will be retried by its retry policy."
                ),
            )
        )

    return on_event


def drive_run(
    pipeline: Pipeline,
    run: RunRecord,
    store: StateStore,
    settings: Settings,
    *,
    executor: ExecutorName | str | Executor = ExecutorName.PROCESS,
    alerter: Alerter | None = None,
    on_event: Callable[[Event], None] | None = None,
    runner_options: Mapping[str, Any] | None = None,
) -> RunState:
    """Carry out an already created run with the engine; return its final state.

    A run that already finished is left alone (two drivers never both execute it:
    the engine refuses a run whose driver is alive).

    Args:
        executor: a name, or an executor shared across runs (a warm process pool).
    """
    runner = Runner(
        store,
        executor=executor,
        settings=settings,
        on_event=on_event,
        alerter=alerter,
        **(runner_options or {}),
    )
    try:
        return runner.resume(run.run_id, pipeline).state
    finally:
        runner.close()


def _release(store: StateStore, run_id: str, exc: Exception) -> None:
    """A run this process claimed but could not drive is failed, not left RUNNING under a
    live pid (where a scheduler or backfill would wait for it forever)."""
    try:
        now = store.get_run(run_id)
        if RunState(now.state) == RunState.RUNNING and now.pid == os.getpid():
            store.update_run(
                run_id,
                state=RunState.FAILED,
                ended_at=datetime.now(UTC),
                error=f"driving the run failed: {type(exc).__name__}: {exc}",
            )
    except Exception:  # noqa: BLE001 - the store itself may be what failed; the log has the cause
        log.exception("run %s: could not mark it failed", run_id)


@dataclass
class InlineLauncher:
    """Drive each run to its end before ``launch`` returns, in this process.

    Args:
        store: the state store.
        settings: passed to the engine.
        executor: the engine's executor (``inprocess`` or ``process``: one warm process
            pool shared by every run launched here, stopped by :meth:`shutdown`).
        concurrency: workers of that pool (default: cores).
        alerter: sends failure/retry alerts.
        runner_options: more Runner arguments (e.g. ``clock`` in tests).
    """

    store: StateStore
    settings: Settings
    executor: ExecutorName | str = ExecutorName.INPROCESS
    alerter: Alerter | None = None
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    finished: dict[str, RunState] = field(default_factory=dict)
    concurrency: int | None = None
    _pool: ProcessExecutor | None = None

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        executor: str | Executor = self.executor
        if self.executor == ExecutorName.PROCESS:
            if self._pool is None:  # one warm pool for all the runs this launcher drives
                self._pool = ProcessExecutor(self.concurrency, keep_warm=True)
            executor = self._pool
        self.finished[run.run_id] = drive_run(
            pipeline,
            run,
            self.store,
            self.settings,
            executor=executor,
            alerter=self.alerter,
            on_event=self.on_event,
            runner_options=self.runner_options,
        )

    def running(self) -> set[str]:
        return set()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the warm process pool, if the runs used one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


@dataclass
class SubprocessLauncher:
    """Drive each run in a child process: ``python -m headrace.scheduler.run_one``.

    Args:
        settings: handed to the children whole (as JSON in ``HEADRACE_SETTINGS_JSON``),
            so they open the scheduler's store and use its connections, pools, queue and
            alert settings without reading any configuration themselves.
        executor: the engine's executor in the children.
        env: environment for the children (default: this process's).
        log_dir: where each child's output goes (``<run_id>.log``); default: inherited.
    """

    settings: Settings
    executor: ExecutorName | str = ExecutorName.PROCESS
    env: Mapping[str, str] | None = None
    log_dir: str | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        argv = [
            sys.executable,
            "-m",
            "headrace.scheduler.run_one",
            pipeline.file,
            pipeline.name,
            run.run_id,
            "--executor",
            self.executor,
        ]
        env = dict(self.env if self.env is not None else os.environ)
        env[SETTINGS_ENV] = self.settings.to_json()
        out = None
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{run.run_id}.log"), "ab")  # noqa: SIM115 (child owns it)
        try:
            self.procs[run.run_id] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own descriptor

    def running(self) -> set[str]:
        for run_id, proc in list(self.procs.items()):
            if proc.poll() is not None:
                del self.procs[run_id]
        return set(self.procs)

    def shutdown(self, wait: bool = True) -> None:
        """Wait for the children (``wait``), or leave them running: they finish on their own."""
        if wait:
            for proc in self.procs.values():
                proc.wait()
        self.procs.clear()


@dataclass
class ThreadLauncher:
    """Drive runs side by side in threads of this process, each on a warm process pool.

    The task code runs in the pools' worker processes, so a crashing task cannot take
    this process down; what is saved against :class:`SubprocessLauncher` is a Python
    start, the imports and a pool start per run. A pool is taken from a free list when
    a run starts and given back when it ends, so at most as many pools exist as runs
    were active at once, and each keeps its workers (and their imports) across runs.

    Args:
        store: the state store (shared by the threads; it is thread-safe).
        settings: passed to the engine.
        executor: ``process`` (warm pools) or ``distributed``; ``inprocess`` runs tasks
            in the threads, where timeouts cannot be enforced.
        alerter: sends failure/retry alerts.
        concurrency: workers of each pool (default: cores).
    """

    store: StateStore
    settings: Settings
    executor: ExecutorName | str = ExecutorName.PROCESS
    alerter: Alerter | None = None
    concurrency: int | None = None
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    finished: dict[str, RunState] = field(default_factory=dict)
    _threads: dict[str, threading.Thread] = field(default_factory=dict)
    _idle: list[ProcessExecutor] = field(default_factory=list)
    _pools: list[ProcessExecutor] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        thread = threading.Thread(
            target=self._drive, args=(pipeline, run), name=f"headrace-run-{run.run_id}", daemon=True
        )
        with self._lock:
            self._threads[run.run_id] = thread
        thread.start()

    def _drive(self, pipeline: Pipeline, run: RunRecord) -> None:
        pool = self._take() if self.executor == ExecutorName.PROCESS else None
        try:
            self.finished[run.run_id] = drive_run(
                pipeline, run, self.store, self.settings, executor=pool or self.executor,
                alerter=self.alerter, runner_options=self.runner_options,
            )  # fmt: skip
        except Exception as exc:  # the engine marks the runs it drives; keep the thread quiet
            log.exception("run %s of %r: driving it failed", run.run_id, pipeline.name)
            self.finished[run.run_id] = RunState.FAILED
            _release(self.store, run.run_id, exc)
        finally:
            if pool is not None:
                with self._lock:
                    self._idle.append(pool)

    def _take(self) -> ProcessExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            pool = ProcessExecutor(self.concurrency, keep_warm=True)
            self._pools.append(pool)
            return pool

    def running(self) -> set[str]:
        with self._lock:
            for run_id, thread in list(self._threads.items()):
                if not thread.is_alive():
                    del self._threads[run_id]
            return set(self._threads)

    def shutdown(self, wait: bool = True) -> None:
        """Wait for the runs (``wait``), then stop the pools; without waiting, runs die with the process."""
        if wait:
            for thread in list(self._threads.values()):
                thread.join()
        with self._lock:
            pools, self._pools, self._idle = self._pools, [], []
        for pool in pools:
            pool.close(kill=not wait)
