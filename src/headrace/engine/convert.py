"""Upstream tables handed over as the table type a task's parameter is annotated with.

A task annotated ``def load(rows: pa.Table)`` receives Arrow even when the upstream task
returned a Polars or pandas frame: the staged Parquet file is opened as the annotated
type (no conversion in memory). Parameters without a table annotation receive the kind
the upstream returned (see :mod:`headrace.engine.staging`).

==========================================  ===============
annotation                                  receives
==========================================  ===============
``pa.Table`` / ``pyarrow.Table``            ``arrow``
``pa.RecordBatchReader``                    ``arrow_stream``
``pl.DataFrame`` / ``polars.DataFrame``     ``polars``
``pl.LazyFrame`` / ``polars.LazyFrame``     ``polars_lazy``
``pd.DataFrame`` / ``pandas.DataFrame``     ``pandas``
``pyspark.sql.DataFrame`` / ``SparkDataFrame``  ``spark`` (read by Spark from the Parquet;
                                            ``from pyspark.sql import DataFrame as SparkDataFrame``)
==========================================  ===============

``X | None`` and ``Optional[X]`` count as ``X``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from headrace.engine.staging import load_result
from headrace.executors.executor_base import ResultRef
from headrace.pipeline import Task

__all__ = ["annotated_format", "load_as", "wanted_formats"]

_FORMATS = {
    "SparkDataFrame": "spark",
    "Table": "arrow",
    "RecordBatchReader": "arrow_stream",
    "LazyFrame": "polars_lazy",
}
_MODULES = {
    "arrow": ("pa", "pyarrow", "pyarrow.lib"),
    "arrow_stream": ("pa", "pyarrow", "pyarrow.lib"),
    "polars": ("pl", "polars", "polars.dataframe.frame"),
    "polars_lazy": ("pl", "polars", "polars.lazyframe.frame"),
    "pandas": ("pd", "pandas", "pandas.core.frame"),
    "spark": ("pyspark.sql", "pyspark.sql.dataframe", "pyspark.sql.classic.dataframe"),
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_CONTAINER = re.compile(r"(?i)\b(list|tuple|sequence|iterable|iterator|dict|mapping)\[")
_CACHE: dict[int, tuple[Task[Any, Any], dict[str, str]]] = {}


def annotated_format(annotation: Any) -> str | None:
    """The staged table format a parameter annotation asks for, or None (no single table type)."""
    text = annotation if isinstance(annotation, str) else _spell(annotation)
    if _CONTAINER.search(text):  # a list of tables (a mapped task's results): left as returned
        return None
    found = {fmt for name in _NAME.findall(text) if (fmt := _format_of(name)) is not None}
    return found.pop() if len(found) == 1 else None


def _spell(annotation: Any) -> str:
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)


def _format_of(dotted: str) -> str | None:
    module, _, name = dotted.rpartition(".")
    fmt = _FORMATS.get(name)
    if name == "DataFrame":
        fmt = next((f for f in ("polars", "pandas", "spark") if module in _MODULES[f]), None)
    if fmt == "spark" and name == "SparkDataFrame":  # the alias names Spark whatever the module
        return fmt
    if fmt is None or module not in _MODULES[fmt]:
        return None
    return fmt


def wanted_formats(task: Task[Any, Any]) -> dict[str, str]:
    """Parameter name -> the table format its annotation asks for (only annotated table parameters)."""
    cached = _CACHE.get(id(task))
    if cached is not None and cached[0] is task:
        return cached[1]
    wanted = {
        name: fmt
        for name, param in task.signature.parameters.items()
        if (fmt := annotated_format(param.annotation)) is not None
    }
    _CACHE[id(task)] = (task, wanted)
    return wanted


def load_as(ref: ResultRef, fmt: str | None) -> Any:
    """The value of ``ref`` for a parameter wanting table format ``fmt`` (None: as returned)."""
    if fmt is None or ref.kind != "table" or ref.format == fmt:
        return load_result(ref)
    return load_result(replace(ref, format=fmt))
