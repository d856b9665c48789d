"""headrace: define, run, schedule and check data pipelines in Python.

Example:
    >>> from headrace import pipeline, task, task_group, Context, Retry
    >>> outcome = run_pipeline(my_pipeline, params={"n": 3})   # in-process, e.g. in a notebook
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.pipeline import (
    Context,
    Pipeline,
    Reschedule,
    Retry,
    Task,
    TaskGroup,
    pipeline,
    task,
    task_group,
)

__all__ = [
    "Context",
    "Pipeline",
    "Reschedule",
    "Retry",
    "Task",
    "TaskGroup",
    "pipeline",
    "run_pipeline",
    "task",
    "task_group",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from headrace.engine.testing import run_pipeline


def __getattr__(name: str) -> Any:
    """``run_pipeline``, imported on first use (it needs the engine; ``import headrace`` does not)."""
    if name == "run_pipeline":
        from headrace.engine.testing import run_pipeline

        return run_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
