"""Where the scheduler and backfills carry out the runs they trigger.

:class:`SubprocessLauncher` (the default) drives each run in its own process
(``python -m headrace.scheduler.worker``), so a crashing task or pipeline file never
takes the scheduler down, runs proceed side by side, and the engine's dead-driver
detection (pid + heartbeat) applies. :class:`InlineLauncher` drives runs one at a
time inside the calling process: for tests with an injected clock, debugging, and
backfills with one active run.

Failure and retry alerts are sent by whichever process drives the run, from the
engine's task events.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from headrace.config import Settings
from headrace.engine import Event, Runner
from headrace.observe.alerts import Alert, Alerter, AlertKind
from headrace.pipeline import Pipeline
from headrace.state.base import RunRecord, RunState, StateStore, TaskState

__all__ = ["InlineLauncher", "Launcher", "SubprocessLauncher", "alerting_events", "drive_run"]


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
    executor: str = "process",
    alerter: Alerter | None = None,
    on_event: Callable[[Event], None] | None = None,
    runner_options: Mapping[str, Any] | None = None,
) -> RunState:
    """Carry out an already created run with the engine; return its final state.

    A run that already finished is left alone (two drivers never both execute it:
    the engine refuses a run whose driver is alive).
    """
    runner = Runner(
        store, executor=executor, settings=settings, on_event=on_event, alerter=alerter, **(runner_options or {})
    )
    result = runner.resume(run.run_id, pipeline)
    return result.state


@dataclass
class InlineLauncher:
    """Drive each run to its end before ``launch`` returns, in this process.

    Args:
        store: the state store.
        settings: passed to the engine.
        executor: the engine's executor (``inprocess`` or ``process``).
        alerter: sends failure/retry alerts.
        runner_options: more Runner arguments (e.g. ``clock`` in tests).
    """

    store: StateStore
    settings: Settings
    executor: str = "inprocess"
    alerter: Alerter | None = None
    runner_options: Mapping[str, Any] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    finished: dict[str, RunState] = field(default_factory=dict)

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        self.finished[run.run_id] = drive_run(
            pipeline,
            run,
            self.store,
            self.settings,
            executor=self.executor,
            alerter=self.alerter,
            on_event=self.on_event,
            runner_options=self.runner_options,
        )

    def running(self) -> set[str]:
        return set()

    def shutdown(self, wait: bool = True) -> None:
        return None


@dataclass
class SubprocessLauncher:
    """Drive each run in a child process: ``python -m headrace.scheduler.worker``.

    Args:
        state_url: the store the children open (the scheduler's own).
        executor: the engine's executor in the children.
        env: environment for the children (default: this process's, which carries
            connections and alert settings).
        log_dir: where each child's output goes (``<run_id>.log``); default: inherited.
    """

    state_url: str
    executor: str = "process"
    env: Mapping[str, str] | None = None
    log_dir: str | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def launch(self, pipeline: Pipeline, run: RunRecord) -> None:
        argv = [
            sys.executable,
            "-m",
            "headrace.scheduler.worker",
            pipeline.file,
            pipeline.name,
            run.run_id,
            "--executor",
            self.executor,
        ]
        env = dict(self.env if self.env is not None else os.environ)
        env["HEADRACE_STATE_URL"] = self.state_url
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
