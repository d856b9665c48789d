"""Where tasks run: in the driving process, in a local process pool, or on remote workers.

Example:
    >>> Runner(store, executor=ProcessExecutor(concurrency=4))
"""

from __future__ import annotations

from headrace.executors.executor_base import Event, Executor, Outcome, ResultRef, RunInfo, WorkItem
from headrace.executors.inprocess import InProcessExecutor
from headrace.executors.process import ProcessExecutor

__all__ = [
    "Event",
    "Executor",
    "InProcessExecutor",
    "Outcome",
    "ProcessExecutor",
    "ResultRef",
    "RunInfo",
    "WorkItem",
]
