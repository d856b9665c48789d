"""headrace: define, run, schedule and check data pipelines in Python.

The public names are imported on first use (PEP 562), so ``import headrace`` and the
``headrace`` command start without loading the definition API.

Example:
    >>> from headrace import pipeline, task, task_group, Context, Retry
    >>> outcome = run_pipeline(my_pipeline, params={"n": 3})   # in-process, e.g. in a notebook
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers and IDEs
    from headrace.engine.testing import run_pipeline  # noqa: F401
    from headrace.pipeline import (  # noqa: F401
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
_WHERE = {name: "headrace.pipeline" for name in __all__ if name != "pipeline"}
_WHERE["run_pipeline"] = "headrace.engine.testing"


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``headrace.pipeline`` is the ``@pipeline`` decorator, as it always was.

    The subpackage of the same name would replace it when first imported (the import
    system sets the parent's attribute); this property keeps the decorator there.
    """

    @property
    def pipeline(self) -> Any:
        from headrace.pipeline.definition import pipeline

        return pipeline

    @pipeline.setter
    def pipeline(self, value: Any) -> None:
        """Ignored: the import system setting the subpackage ``headrace.pipeline``."""


sys.modules[__name__].__class__ = _Package
