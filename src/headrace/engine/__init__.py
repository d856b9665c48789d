"""The run engine: triggering, executing and resuming pipeline runs.

Example:
    >>> from headrace.engine import Runner, load_pipelines
    >>> from headrace.state import open_store
    >>> runner = Runner(open_store(settings.state_url), settings=settings)
    >>> result = runner.run(load_pipelines("examples/hello_pipeline.py")["hello"])
"""

from __future__ import annotations

from headrace.engine.clock import Clock, FakeClock, SystemClock
from headrace.engine.loader import load_pipelines, pick_pipeline
from headrace.engine.result import RunResult, driver_alive
from headrace.engine.runner import EXECUTORS, RunClaimedError, RunInterrupted, Runner
from headrace.engine.staging import ResultTypeError
from headrace.executors.base import Event

__all__ = [
    "EXECUTORS",
    "Clock",
    "Event",
    "FakeClock",
    "ResultTypeError",
    "RunClaimedError",
    "RunInterrupted",
    "RunResult",
    "Runner",
    "SystemClock",
    "driver_alive",
    "load_pipelines",
    "pick_pipeline",
]
