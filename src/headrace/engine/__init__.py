"""The run engine: triggering, executing and resuming pipeline runs.

Example:
    >>> from headrace.engine import Runner, load_pipelines
    >>> from headrace.state import open_store
    >>> runner = Runner(open_store(settings.state_url), settings=settings)
    >>> result = runner.run(load_pipelines("examples/hello_pipeline.py")["hello"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers and IDEs
    from headrace.engine.clock import Clock, FakeClock, SystemClock  # noqa: F401
    from headrace.engine.loader import load_pipelines, pick_pipeline  # noqa: F401
    from headrace.engine.run_result import RunResult, driver_alive  # noqa: F401
    from headrace.engine.runner import (  # noqa: F401
        EXECUTORS,
        ExecutorName,
        RunClaimedError,
        RunInterrupted,
        Runner,
    )
    from headrace.engine.staging import ResultTypeError  # noqa: F401
    from headrace.engine.testing import PipelineRun, run_pipeline  # noqa: F401
    from headrace.executors.executor_base import Event  # noqa: F401

#: Public name -> the module that defines it. Imported on first use (PEP 562), so
#: ``from headrace.engine.loader import load_pipelines`` (``headrace list``) does not
#: pay for the runner, executors, staging and pyarrow.
_WHERE = {
    "Clock": "headrace.engine.clock",
    "FakeClock": "headrace.engine.clock",
    "SystemClock": "headrace.engine.clock",
    "load_pipelines": "headrace.engine.loader",
    "pick_pipeline": "headrace.engine.loader",
    "RunResult": "headrace.engine.run_result",
    "driver_alive": "headrace.engine.run_result",
    "EXECUTORS": "headrace.engine.runner",
    "ExecutorName": "headrace.engine.runner",
    "RunInterrupted": "headrace.engine.runner",
    "RunClaimedError": "headrace.engine.runner",
    "Runner": "headrace.engine.runner",
    "ResultTypeError": "headrace.engine.staging",
    "Event": "headrace.executors.executor_base",
    "PipelineRun": "headrace.engine.testing",
    "run_pipeline": "headrace.engine.testing",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
