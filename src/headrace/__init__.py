"""headrace: define, run, schedule and check data pipelines in Python.

Example:
    >>> from headrace import pipeline, task, task_group, Context, Retry
"""

from __future__ import annotations

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
from headrace.sync import (
    Sync,
    cursor,
    destination,
    file_source,
    full,
    interval,
    sql_source,
    sync,
)

__all__ = [
    "Context",
    "Sync",
    "cursor",
    "destination",
    "file_source",
    "full",
    "interval",
    "sql_source",
    "sync",
    "Pipeline",
    "Reschedule",
    "Retry",
    "Task",
    "TaskGroup",
    "pipeline",
    "task",
    "task_group",
]
__version__ = "0.1.0"
