"""Run a pipeline in one call, in this process: for notebooks, scripts and unit tests.

:func:`run_pipeline` needs no Runner, store or settings: it runs every task in the
calling process (so it works from ``__main__``, a notebook or a pytest test), with a
SQLite state store and staging in a temporary folder unless a home is given, and
returns the results of the tasks.

Example:
    >>> from headrace import run_pipeline
    >>> outcome = run_pipeline(hello, params={"name": "Ada"})
    >>> outcome.ok, outcome.results["greet"]
    (True, 'Hello, Ada!')
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.engine.runner import Runner
from headrace.engine.staging import load_result
from headrace.executors.executor_base import ResultRef
from headrace.pipeline import Pipeline
from headrace.state import open_store
from headrace.state.store_base import LogRecord, RunRecord, RunState, TaskInstanceRecord, TaskState


@dataclass
class PipelineRun:
    """What :func:`run_pipeline` returns.

    Attributes:
        run: the run's record (state, dates, error).
        tasks: task id -> its task instance (mapped elements under ``task[i]``).
        results: task id -> the value the task returned, as a downstream task would get
            it (tables read back from staging in the format the task returned; a mapped
            task's results as a list). Only tasks that succeeded are present.
        logs: every captured log chunk, in order.
        home: the folder holding the state store and staging.
    """

    run: RunRecord
    tasks: dict[str, TaskInstanceRecord]
    results: dict[str, Any] = field(default_factory=dict)
    logs: list[LogRecord] = field(default_factory=list)
    home: Path | None = None

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.run.state == RunState.SUCCESS

    @property
    def errors(self) -> dict[str, str]:
        """task id -> error text of the tasks that failed."""
        return {
            tid: ti.error or "" for tid, ti in self.tasks.items() if ti.state == TaskState.FAILED
        }

    def log_text(self, task_id: str | None = None) -> str:
        """The captured log of one task (or of all), as one text."""
        return "\n".join(log.text for log in self.logs if task_id is None or log.task_id == task_id)


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    logical_date: datetime | None = None,
    connections: Mapping[str, str] | None = None,
    home: str | Path | None = None,
    settings: Settings | None = None,
) -> PipelineRun:
    """Run ``pipeline`` now, every task in this process, and return its results.

    Args:
        pipeline: the pipeline (``@pipeline`` function).
        params: run parameters (typed by the pipeline's defaults).
        logical_date: the run's date (default: now, like ``headrace run``).
        connections: connection name -> URL for ``ctx.connection``.
        home: folder for the state store and staging (default: a new temporary folder).
        settings: full settings instead of ``home``/``connections``.

    Returns:
        A :class:`PipelineRun`; a failed run is returned too (``ok`` False, ``errors``),
        not raised, so a test can assert on it.
    """
    if settings is None:
        folder = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="headrace-run-"))
        settings = Settings(
            home=folder,
            state_url=f"sqlite:///{folder / 'state.db'}",
            connections={k.lower(): v for k, v in (connections or {}).items()},
        )
    with (
        open_store(settings.state_url) as store,
        Runner(store, executor="inprocess", settings=settings) as runner,
    ):
        result = runner.run(pipeline, logical_date, dict(params or {}))
        tasks = {_label(ti): ti for ti in result.tasks}
        logs = store.get_logs(result.run.run_id)
    results = {
        ti.task_id: _value(ti, result.tasks)
        for ti in result.tasks
        if ti.map_index == -1 and ti.state == TaskState.SUCCESS
    }
    return PipelineRun(result.run, tasks, results, logs, settings.home)


def _label(ti: TaskInstanceRecord) -> str:
    return ti.task_id if ti.map_index == -1 else f"{ti.task_id}[{ti.map_index}]"


def _value(ti: TaskInstanceRecord, every: list[TaskInstanceRecord]) -> Any:
    """The stored result of a task instance, loaded as a downstream task would receive it."""
    if ti.result_kind == "mapped":
        elements = sorted(
            (t for t in every if t.task_id == ti.task_id and t.map_index >= 0),
            key=lambda t: t.map_index,
        )
        return [_value(t, every) for t in elements]
    if ti.result_kind == "table" and ti.result_path:
        fmt = (ti.result_json or {}).get("format") if isinstance(ti.result_json, dict) else None
        return load_result(ResultRef("table", path=ti.result_path, format=fmt))
    if ti.result_kind == "json":
        return ti.result_json
    return None
