"""Built-in task factories: shell commands, SQL statements, dbt and sensors.

Each factory returns an ordinary :class:`~headrace.pipeline.Task`. Define them at
module level of the pipeline file (workers find tasks by importing that file) and
call them inside the ``@pipeline`` function like any task.

Example:
    >>> from headrace.tasks import shell_task
    >>> cleanup = shell_task("rm -rf /tmp/staging/customers_{{ ds }}*", task_id="cleanup_temp_files")
"""

from __future__ import annotations

from headrace.tasks.dbt import DbtNotInstalled, dbt_task
from headrace.tasks.sensors import (
    SensorMode,
    SensorNotReady,
    SensorTimeout,
    UpstreamRunFailed,
    file_sensor,
    pipeline_sensor,
    sensor_task,
    sql_sensor,
)
from headrace.tasks.shell import CommandError, shell_task
from headrace.tasks.sql_statement import SqlTaskError, sql_task
from headrace.tasks.template import CONTEXT_NAMES, context_values, render

__all__ = [
    "CONTEXT_NAMES",
    "CommandError",
    "SensorMode",
    "DbtNotInstalled",
    "SensorNotReady",
    "SensorTimeout",
    "SqlTaskError",
    "UpstreamRunFailed",
    "context_values",
    "dbt_task",
    "file_sensor",
    "pipeline_sensor",
    "render",
    "sensor_task",
    "shell_task",
    "sql_sensor",
    "sql_task",
]
