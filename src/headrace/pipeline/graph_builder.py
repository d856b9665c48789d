"""Wiring tasks into a graph while a ``@pipeline`` function runs.

Calling a task inside a pipeline function does not run it: it records a node in the
:class:`GraphBuilder` of the pipeline being defined and returns a :class:`TaskRef`
standing for the task's future result. ``a >> b`` adds an ordering edge.
The builder lives in a ContextVar only for the duration of the definition, the way
a ``with DAG(...)`` block works in Airflow; nothing is registered globally.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from headrace.errors import DefinitionError

if TYPE_CHECKING:
    from headrace.pipeline.task import Task

P = ParamSpec("P")
R = TypeVar("R")
_GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
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
        return _link([self.task_id], other, self._builder, "right of >>", downstream=True)

    def __lshift__(self, other: Any) -> Any:
        return _link([self.task_id], other, self._builder, "right of <<", downstream=False)

    def __rrshift__(self, other: Any) -> TaskRef:
        _link([self.task_id], other, self._builder, "left of >>", downstream=False)
        return self

    def __rlshift__(self, other: Any) -> TaskRef:
        _link([self.task_id], other, self._builder, "left of <<", downstream=True)
        return self

    def _misuse(self, *_: Any, **__: Any) -> Any:
        raise DefinitionError(
            f"the result of task {self.task_id!r} is only known when the pipeline "
            "runs; pass it to another task instead of using it inside the pipeline function.",
            path=str(caller_site()),
        )

    __getitem__ = __iter__ = __bool__ = _misuse


def _link(
    ids: list[str], other: Any, builder: GraphBuilder, where: str, *, downstream: bool
) -> Any:
    """Add edges between the tasks ``ids`` and ``other`` (tasks, groups or a list of them).

    ``downstream`` says that ``other`` runs after ``ids``: a group then contributes its
    first tasks (roots), otherwise its last ones (leaves), as in Airflow.
    """
    site = caller_site()
    for other_id in _ids(other, builder, where, roots=downstream):
        for own in ids:
            if downstream:
                builder.add_edge(own, other_id, site)
            else:
                builder.add_edge(other_id, own, site)
    return other


def _ids(value: Any, builder: GraphBuilder, where: str, *, roots: bool) -> list[str]:
    """The task ids ``value`` stands for on one side of ``>>``: tasks, or a group's roots/leaves."""
    items = value if isinstance(value, list | tuple) else [value]
    ids: list[str] = []
    for item in items:
        if isinstance(item, TaskGroup):
            if item._builder is not builder:
                raise DefinitionError(
                    f"task group {item.path!r} belongs to another pipeline", path=str(caller_site())
                )
            ids.extend(item.roots() if roots else item.leaves())
            continue
        if not isinstance(item, TaskRef):
            raise DefinitionError(
                f"{where} must be a task call result or a task group (e.g. load() >> cleanup()), "
                f"got {type(item).__name__}; did you forget the parentheses?",
                path=str(caller_site()),
            )
        if item._builder is not builder:
            raise DefinitionError(
                f"task {item.task_id!r} belongs to another pipeline definition",
                path=str(caller_site()),
            )
        ids.append(item.task_id)
    return ids


class TaskGroup:
    """Tasks called inside ``with task_group("extract"):`` get ids ``extract.<task>``.

    ``group >> task`` makes ``task`` wait for the group's last tasks (those nothing in
    the group waits for); ``task >> group`` makes the group's first tasks wait for it.
    Groups nest: a task in ``extract`` inside ``etl`` is ``etl.extract.users``.

    Example:
        >>> @pipeline
        ... def etl():
        ...     with task_group("extract") as extract:
        ...         users(), orders()
        ...     extract >> report()
    """

    path: str

    def __init__(self, name: str) -> None:
        if not _GROUP_NAME.match(name or ""):
            raise DefinitionError(
                f"task group name {name!r} may only hold letters, digits, '_' and '-' "
                "(no dots: nested groups are joined with dots)",
                path=str(caller_site()),
            )
        builder = current_builder()
        if builder is None:
            raise DefinitionError(
                f"task_group({name!r}) only works inside a @pipeline function",
                path=str(caller_site()),
            )
        self.name = name
        self._builder = builder
        parent = builder.groups[-1].path if builder.groups else None
        self.path = f"{parent}.{name}" if parent else name
        self.task_ids: list[str] = []

    def __repr__(self) -> str:
        return f"<TaskGroup {self.path!r}: {len(self.task_ids)} tasks>"

    def __enter__(self) -> TaskGroup:
        if (
            any(g.path == self.path for g in self._builder.groups)
            or self.path in self._builder.group_paths
        ):
            raise DefinitionError(
                f"pipeline {self._builder.pipeline!r} already has a task group {self.path!r}",
                path=str(caller_site()),
            )
        self._builder.group_paths.add(self.path)
        self._builder.groups.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._builder.groups.pop()

    def _members(self) -> list[str]:
        if not self.task_ids:
            raise DefinitionError(
                f"task group {self.path!r} has no tasks to link", path=str(caller_site())
            )
        return self.task_ids

    def roots(self) -> list[str]:
        """Tasks of the group waiting for no other task of the group."""
        inside = set(self._members())
        waits = {down for (up, down) in self._builder.edges if up in inside and down in inside}
        return [t for t in self.task_ids if t not in waits]

    def leaves(self) -> list[str]:
        """Tasks of the group no other task of the group waits for."""
        inside = set(self._members())
        awaited = {up for (up, down) in self._builder.edges if up in inside and down in inside}
        return [t for t in self.task_ids if t not in awaited]

    def __rshift__(self, other: Any) -> Any:
        return _link(self.leaves(), other, self._builder, "right of >>", downstream=True)

    def __lshift__(self, other: Any) -> Any:
        return _link(self.roots(), other, self._builder, "right of <<", downstream=False)

    def __rrshift__(self, other: Any) -> TaskGroup:
        _link(self.roots(), other, self._builder, "left of >>", downstream=False)
        return self

    def __rlshift__(self, other: Any) -> TaskGroup:
        _link(self.leaves(), other, self._builder, "left of <<", downstream=True)
        return self


@overload
def task_group(name: str, /) -> TaskGroup: ...


@overload
def task_group(fn: Callable[P, R], /) -> Callable[P, Any]: ...


def task_group(name_or_fn: Any, /) -> Any:
    """Group tasks under a name: ``with task_group("extract"):`` or ``@task_group`` on a function.

    The decorated function, called inside a pipeline function, runs inside a group named
    after it (``extract``, then ``extract__2`` when called again) and returns what it
    returns, or the :class:`TaskGroup` when it returns nothing, ready for ``>>``.

    Example:
        >>> @task_group
        ... def extract():
        ...     users(), orders()
        >>> @pipeline
        ... def etl():
        ...     extract() >> report()
    """
    if isinstance(name_or_fn, str):
        return TaskGroup(name_or_fn)
    if not callable(name_or_fn):
        raise DefinitionError(
            f"task_group takes a name or decorates a function, got {type(name_or_fn).__name__}",
            path=str(caller_site()),
        )
    fn = name_or_fn

    @functools.wraps(fn)
    def grouped(*args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is None:
            raise DefinitionError(
                f"task group {fn.__name__!r} only works inside a @pipeline function",
                path=str(caller_site()),
            )
        parent = builder.groups[-1].path + "." if builder.groups else ""
        name, n = fn.__name__, 2
        while parent + name in builder.group_paths:
            name, n = f"{fn.__name__}__{n}", n + 1
        with TaskGroup(name) as group:
            returned = fn(*args, **kwargs)
        return group if returned is None else returned

    return grouped


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
        self.groups: list[
            TaskGroup
        ] = []  # the open ``with task_group(...)`` blocks, innermost last
        self.group_paths: set[str] = set()

    def unique_id(self, task: Task[Any, Any], site: Site) -> str:
        """The node id for a new call of ``task``: its id (prefixed by its group), ``id__2`` on reuse."""
        base = f"{self.groups[-1].path}.{task.task_id}" if self.groups else task.task_id
        known = self.origins.get(base)
        if known is None:
            return base
        if known is not task:
            raise DefinitionError(
                f"pipeline {self.pipeline!r} has two different tasks named {base!r} "
                f"(the other is defined at {known.source}); give one another task_id=...",
                path=str(site),
            )
        n = 2
        while f"{base}__{n}" in self.nodes:
            n += 1
        return f"{base}__{n}"

    def add_node(self, node: Task[Any, Any], origin: Task[Any, Any]) -> TaskRef:
        self.nodes[node.task_id] = node
        self.origins.setdefault(node.task_id, origin)
        for group in self.groups:
            group.task_ids.append(node.task_id)
        for ref_id in node.upstream_ids:
            self.edges.setdefault((ref_id, node.task_id), node.call_site or origin.source)
        return TaskRef(self, node.task_id)

    def add_edge(self, up: str, down: str, site: Site) -> None:
        if up == down:
            raise DefinitionError(
                f"task {up!r} cannot run after itself (cycle {up} >> {up})", path=str(site)
            )
        self.edges.setdefault((up, down), site)


def builder_group() -> str | None:
    """The path of the innermost open task group of the pipeline being defined, or None."""
    builder = _BUILDER.get()
    return builder.groups[-1].path if builder is not None and builder.groups else None


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
