"""Wiring tasks into a graph while a ``@pipeline`` function runs.

Calling a task inside a pipeline function does not run it: it records a node in the
:class:`GraphBuilder` of the pipeline being defined and returns a :class:`TaskRef`
standing for the task's future result. ``a >> b`` adds an ordering edge.
The builder lives in a ContextVar only for the duration of the definition, the way
a ``with DAG(...)`` block works in Airflow; nothing is registered globally.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headrace.errors import DefinitionError

if TYPE_CHECKING:
    from headrace.pipeline.task import Task

_BUILDER: ContextVar[GraphBuilder | None] = ContextVar("headrace_graph_builder", default=None)


@dataclass(frozen=True)
class Site:
    """Where something was written in the user's file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def caller_site(depth: int = 2) -> Site:
    """The file and line of the user code that called into headrace (skipping our frames)."""
    frame = sys._getframe(depth)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("headrace.pipeline"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:  # pragma: no cover - only when called from headrace itself
        return Site("<unknown>", 0)
    return Site(frame.f_code.co_filename, frame.f_lineno)


class TaskRef:
    """The future result of one task call inside a pipeline definition.

    Pass it to another task to make a data dependency; use ``>>`` / ``<<`` to order
    tasks that exchange no data. Its value exists only when the pipeline runs.
    """

    __slots__ = ("_builder", "task_id")

    def __init__(self, builder: GraphBuilder, task_id: str) -> None:
        self._builder = builder
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"<result of task {self.task_id!r}>"

    def __rshift__(self, other: Any) -> Any:
        for ref in _refs(other, self._builder, "right of >>"):
            self._builder.add_edge(self.task_id, ref.task_id, caller_site())
        return other

    def __lshift__(self, other: Any) -> Any:
        for ref in _refs(other, self._builder, "right of <<"):
            self._builder.add_edge(ref.task_id, self.task_id, caller_site())
        return other

    def __rrshift__(self, other: Any) -> TaskRef:
        for ref in _refs(other, self._builder, "left of >>"):
            self._builder.add_edge(ref.task_id, self.task_id, caller_site())
        return self

    def __rlshift__(self, other: Any) -> TaskRef:
        for ref in _refs(other, self._builder, "left of <<"):
            self._builder.add_edge(self.task_id, ref.task_id, caller_site())
        return self

    def _misuse(self, *_: Any, **__: Any) -> Any:
        raise DefinitionError(
            f"{caller_site()}: the result of task {self.task_id!r} is only known when the pipeline "
            "runs; pass it to another task instead of using it inside the pipeline function."
        )

    __getitem__ = __iter__ = __bool__ = _misuse  # type: ignore[assignment]


def _refs(value: Any, builder: GraphBuilder, where: str) -> list[TaskRef]:
    items = value if isinstance(value, list | tuple) else [value]
    refs = []
    for item in items:
        if not isinstance(item, TaskRef):
            raise DefinitionError(
                f"{caller_site(3)}: {where} must be a task call result (e.g. load() >> cleanup()), "
                f"got {type(item).__name__}; did you forget the parentheses?"
            )
        if item._builder is not builder:
            raise DefinitionError(
                f"{caller_site(3)}: task {item.task_id!r} belongs to another pipeline definition"
            )
        refs.append(item)
    return refs


def find_refs(value: Any) -> Iterator[TaskRef]:
    """Every TaskRef inside a task call's argument (lists, tuples and dict values included)."""
    if isinstance(value, TaskRef):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from find_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from find_refs(item)


class GraphBuilder:
    """Collects the task nodes and edges of one pipeline while its function runs."""

    def __init__(self, pipeline: str, file: str) -> None:
        self.pipeline = pipeline
        self.file = file
        self.nodes: dict[str, Task[Any, Any]] = {}
        self.origins: dict[str, Task[Any, Any]] = {}  # task_id -> the decorated Task it came from
        self.edges: dict[tuple[str, str], Site] = {}

    def unique_id(self, task: Task[Any, Any], site: Site) -> str:
        """The node id for a new call of ``task``: its id, or ``id__2``, ``id__3`` on reuse."""
        base = task.task_id
        known = self.origins.get(base)
        if known is None:
            return base
        if known is not task:
            raise DefinitionError(
                f"{site}: pipeline {self.pipeline!r} has two different tasks named {base!r} "
                f"(the other is defined at {known.source}); give one another task_id=..."
            )
        n = 2
        while f"{base}__{n}" in self.nodes:
            n += 1
        return f"{base}__{n}"

    def add_node(self, node: Task[Any, Any], origin: Task[Any, Any]) -> TaskRef:
        self.nodes[node.task_id] = node
        self.origins.setdefault(node.task_id, origin)
        for ref_id in node.upstream_ids:
            self.edges.setdefault((ref_id, node.task_id), node.call_site or origin.source)
        return TaskRef(self, node.task_id)

    def add_edge(self, up: str, down: str, site: Site) -> None:
        if up == down:
            raise DefinitionError(f"{site}: task {up!r} cannot run after itself (cycle {up} >> {up})")
        self.edges.setdefault((up, down), site)


def current_builder() -> GraphBuilder | None:
    """The builder of the pipeline being defined, or None outside a definition."""
    return _BUILDER.get()


@contextmanager
def building(builder: GraphBuilder) -> Iterator[GraphBuilder]:
    """Make ``builder`` current while a pipeline function runs."""
    token = _BUILDER.set(builder)
    try:
        yield builder
    finally:
        _BUILDER.reset(token)
