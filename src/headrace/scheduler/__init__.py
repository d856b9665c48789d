"""Scheduling: the scheduler loop, backfills, SLA misses and how runs are launched.

Example:
    >>> from headrace.scheduler import Scheduler, SubprocessLauncher
    >>> scheduler = Scheduler(load_pipelines("etl.py").values(), store,
    ...                       launcher=SubprocessLauncher(settings))
    >>> scheduler.serve(poll_interval=5)
"""

from __future__ import annotations

from headrace.scheduler.backfill import Backfill, BackfillReport, Plan, plan_backfill
from headrace.scheduler.launch import (
    InlineLauncher,
    Launcher,
    SubprocessLauncher,
    ThreadLauncher,
    drive_run,
)
from headrace.scheduler.loop import Scheduler, TickReport, last_automated_run, timetable_of
from headrace.scheduler.sla import SlaLedger, SlaMiss, find_sla_misses

__all__ = [
    "Backfill",
    "BackfillReport",
    "InlineLauncher",
    "Launcher",
    "Plan",
    "Scheduler",
    "SlaLedger",
    "SlaMiss",
    "SubprocessLauncher",
    "ThreadLauncher",
    "TickReport",
    "drive_run",
    "find_sla_misses",
    "last_automated_run",
    "plan_backfill",
    "timetable_of",
]
