"""The write tools (``--allow-write``): trigger a run, resume a run, retry a task.

Each drives the :class:`~headrace.engine.Runner` in a thread of the server with a
store of its own. The Runner claims the run atomically before any task runs
(``StateStore.claim_run``), so two calls — or a call and ``headrace resume`` — never
run the same tasks twice: the loser gets :class:`~headrace.engine.RunClaimedError`
(or "already running") as the tool's error. The tool waits up to ``wait_seconds``
for the run and otherwise answers with its id while it goes on; a run still going when
the server stops is left with a dead driver, which ``resume_run`` or ``headrace resume``
takes over later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from headrace.engine import Event, Runner, RunResult
from headrace.errors import EngineError
from headrace.mcp.mcp_context import McpContext
from headrace.mcp.read_tools import find_pipeline, resolve_run
from headrace.state import open_store


class RunThread:
    """One run driven in a background thread; tells when it has claimed the run or stopped."""

    def __init__(self, ctx: McpContext, action: Callable[[Runner], RunResult]) -> None:
        self.ctx = ctx
        self.action = action
        self.run_id: str | None = None
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.claimed = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._main, name="headrace-mcp-run", daemon=True)

    def _on_event(self, event: Event) -> None:
        if event.kind == "run" and self.run_id is None:
            self.run_id = event.run_id
            self.claimed.set()

    def _main(self) -> None:
        try:
            # the runner is closed after the action: its queued lineage and metrics are sent
            with (
                open_store(self.ctx.settings.state_url) as store,
                Runner(
                    store,
                    executor=self.ctx.executor,
                    settings=self.ctx.settings,
                    on_event=self._on_event,
                ) as runner,
            ):
                self.result = self.action(runner)
        except BaseException as exc:  # reported to the caller of the tool
            self.error = exc
        finally:
            self.claimed.set()
            self.done.set()

    def start_and_wait(self, wait_seconds: float) -> dict[str, Any]:
        """Start, wait up to ``wait_seconds`` for the end, and describe what happened.

        Raises:
            EngineError: the run could not be started (claimed by another, unknown task ...).
        """
        self.thread.start()
        self.done.wait(timeout=wait_seconds)
        if self.error is not None:
            if isinstance(self.error, Exception):
                raise self.error
            raise EngineError(f"run stopped: {type(self.error).__name__}")
        if self.result is None:
            return {
                "run_id": self.run_id,
                "state": "running",
                "note": f"still running after {wait_seconds:g} s; follow it with get_run",
            }
        run = self.result.run
        failed = [
            t.task_id for t in self.result.tasks if str(t.state) == "failed" and t.map_index < 0
        ]
        return {
            "run_id": run.run_id,
            "pipeline": run.pipeline,
            "state": str(run.state),
            "executed": self.result.executed,
            "failed_tasks": failed,
            "error": self.ctx.mask(run.error) or None,
        }


def trigger_run(
    ctx: McpContext,
    pipeline: str,
    params: dict[str, Any],
    logical_date: datetime | None,
    wait_seconds: float,
) -> dict[str, Any]:
    """Trigger a run of a pipeline of the pipelines folder (a given logical date runs at most once)."""
    p = find_pipeline(ctx, pipeline)
    p.resolve_params(params)  # refuse unknown or badly typed parameters before starting a thread
    return RunThread(ctx, lambda runner: runner.run(p, logical_date, params)).start_and_wait(
        wait_seconds
    )


def resume_run(ctx: McpContext, run_id: str, wait_seconds: float) -> dict[str, Any]:
    """Finish a failed or dead run: only the tasks that did not succeed run again."""
    run = resolve_run(ctx, run_id)
    return RunThread(ctx, lambda runner: runner.resume(run.run_id)).start_and_wait(wait_seconds)


def retry_task(ctx: McpContext, run_id: str, task: str, wait_seconds: float) -> dict[str, Any]:
    """Run one task of a run again, with every task downstream of it."""
    run = resolve_run(ctx, run_id)
    known = {ti.task_id for ti in ctx.store.get_task_instances(run.run_id)}
    if task not in known:
        from headrace.errors import StateError, did_you_mean

        raise StateError(
            "no such task in the run." + did_you_mean(task, known), run_id=run.run_id, task=task
        )
    return RunThread(ctx, lambda runner: runner.retry(run.run_id, task)).start_and_wait(
        wait_seconds
    )
