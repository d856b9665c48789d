"""headrace: define, run, schedule and check data pipelines in Python.

Example:
    >>> from headrace import pipeline, task, Context, Retry
"""

from __future__ import annotations

from headrace.pipeline import Context, Pipeline, Retry, Task, pipeline, task

__all__ = ["Context", "Pipeline", "Retry", "Task", "pipeline", "task"]
__version__ = "0.1.0"
