"""Runs started from the web: the CLI's :class:`~headrace.engine.Runner` in background threads.

A request starting a run waits only until the run is created and claimed (the runner's
first ``run`` event), then answers with its id; the run goes on in the thread. A
refusal that happens before (the run was just claimed by another resume, a task id
that does not exist) is raised to the request, so the person who clicked sees it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headrace.config import Settings
from headrace.engine import Event, Runner
from headrace.errors import EngineError
from headrace.pipeline import Pipeline
from headrace.scheduler import Backfill, InlineLauncher
from headrace.state.store_base import StateStore

log = logging.getLogger("headrace.web")

#: Seconds a request waits for its run to be claimed before answering "started".
CLAIM_WAIT = 60.0


@dataclass
class Jobs:
    """Background drivers of runs started from the web.

    Args:
        store: the state store (shared; it is thread-safe).
        settings: passed to every Runner.
        executor: the Runner's executor (``process`` as the CLI, or ``inprocess``).
        workers: runs driven at once by this server.
    """

    store: StateStore
    settings: Settings
    executor: str = "process"
    workers: int = 4
    _pool: ThreadPoolExecutor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="headrace-web-run"
        )

    def runner(self, on_event: Callable[[Event], None] | None = None) -> Runner:
        return Runner(self.store, executor=self.executor, settings=self.settings, on_event=on_event)

    def start(self, action: Callable[[Runner], Any], what: str) -> str:
        """Run ``action(runner)`` in the background; return the run id once the run is claimed.

        Raises:
            EngineError: the action was refused before its run started (with the engine's reason).
        """
        started = threading.Event()
        box: dict[str, Any] = {}

        def on_event(event: Event) -> None:
            if event.kind == "run" and "run_id" not in box:
                box["run_id"] = event.run_id
                started.set()

        def job() -> None:
            try:
                with self.runner(
                    on_event
                ) as runner:  # closed after: its queued lineage/metrics are sent
                    action(runner)
            except (
                EngineError
            ) as exc:  # a refusal (run taken, unknown task): the request reports it
                box.setdefault("error", exc)
                log.warning("%s refused: %s", what, exc)
            except BaseException as exc:  # noqa: BLE001 - reported to the request or logged
                box.setdefault("error", exc)
                log.exception("%s failed", what)
            finally:
                started.set()

        self._pool.submit(job)
        started.wait(CLAIM_WAIT)
        if "run_id" in box:
            return str(box["run_id"])
        error = box.get("error")
        if error is not None:
            raise EngineError(f"{what}: {error}") from error
        raise EngineError(f"{what}: not started after {CLAIM_WAIT:.0f}s")

    def background(self, action: Callable[[], Any], what: str) -> None:
        """Run ``action()`` in the background (a backfill), logging a failure."""

        def job() -> None:
            try:
                action()
            except BaseException:  # noqa: BLE001
                log.exception("%s failed", what)

        self._pool.submit(job)

    def backfill(self, pipeline: Pipeline, start: datetime, end: datetime) -> None:
        """The CLI's backfill (one run at a time, the same Runner) over ``[start, end]``, in the background."""
        launcher = InlineLauncher(self.store, self.settings, executor=self.executor)
        self.background(
            lambda: Backfill(pipeline, self.store, launcher=launcher, max_active=1).run(start, end),
            f"backfill of {pipeline.name!r} {start:%Y-%m-%d} → {end:%Y-%m-%d}",
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
