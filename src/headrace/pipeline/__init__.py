"""The definition API: pipelines, tasks, policies and the run context.

Example:
    >>> from headrace import pipeline, task, Context, Retry
    >>> @task(retries=Retry(attempts=3, delay=60, backoff=2.0))
    ... def extract(ctx: Context) -> list[int]:
    ...     return [1, 2, 3]
    >>> @task
    ... def total(values: list[int]) -> int:
    ...     return sum(values)
    >>> @pipeline(schedule="@daily")
    ... def numbers():
    ...     total(extract())
"""

from __future__ import annotations

from headrace.pipeline.context import Context
from headrace.pipeline.definition import Pipeline, pipeline
from headrace.pipeline.graph_builder import TaskGroup, TaskRef, task_group
from headrace.pipeline.params import ParamError
from headrace.pipeline.policy import TRIGGER_RULES, Retry, TriggerRule
from headrace.pipeline.signals import Reschedule
from headrace.pipeline.task import Task, task

__all__ = [
    "TRIGGER_RULES",
    "Context",
    "ParamError",
    "Pipeline",
    "Reschedule",
    "Retry",
    "Task",
    "TaskGroup",
    "TaskRef",
    "TriggerRule",
    "pipeline",
    "task",
    "task_group",
]
