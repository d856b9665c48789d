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
    from headrace.sync import (  # noqa: F401
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
    "Pipeline",
    "Reschedule",
    "Retry",
    "Task",
    "TaskGroup",
    "pipeline",
    "run_pipeline",
    "task",
    "task_group",
    # the declarative sync
    "Sync",
    "cursor",
    "destination",
    "file_source",
    "full",
    "interval",
    "sql_source",
    "sync",
]
__version__ = "0.1.0"
_SYNC = ("Sync", "cursor", "destination", "file_source", "full", "interval", "sql_source")
_WHERE = {name: "headrace.pipeline" for name in __all__[:10] if name != "pipeline"}
_WHERE["run_pipeline"] = "headrace.engine.testing"
_WHERE.update({name: "headrace.sync" for name in _SYNC})


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``headrace.pipeline`` is the ``@pipeline`` decorator and ``headrace.sync`` the
    ``sync(...)`` declaration, as users write them.

    The subpackages of the same names would replace them when first imported (the
    import system sets the parent's attribute); these properties keep the functions.
    """

    @property
    def pipeline(self) -> Any:
        from headrace.pipeline.definition import pipeline

        return pipeline

    @pipeline.setter
    def pipeline(self, value: Any) -> None:
        """Ignored: the import system setting the subpackage ``headrace.pipeline``."""

    @property
    def sync(self) -> Any:
        from headrace.sync.declaration import sync

        return sync

    @sync.setter
    def sync(self, value: Any) -> None:
        """Ignored: the import system setting the subpackage ``headrace.sync``."""


sys.modules[__name__].__class__ = _Package
