"""The ``@pipeline`` decorator and the :class:`Pipeline` it builds.

The decorated function runs once, when the file is loaded: its task calls record the
graph. Definition mistakes (cycles, duplicate tasks, bad policy values) are raised
here as :class:`DefinitionError` naming the file and line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headrace.errors import DefinitionError, did_you_mean
from headrace.pipeline.graph_builder import GraphBuilder, Site, building
from headrace.pipeline.params import resolve_params
from headrace.pipeline.task import POLICY_KEYS, Task
from headrace.pipeline.timetable import Timetable, timetable_from


class Pipeline:
    """A named graph of tasks with its schedule, defaults and parameters.

    Attributes:
        name: unique name (default: the function name).
        tasks: task_id -> :class:`Task` (policies resolved with the pipeline defaults).
        upstream / downstream: task_id -> task ids it waits for / that wait for it.
        groups: task group path -> its task ids (see ``task_group``).
        instances: task_id -> ids of every call of the same task in this pipeline, in call
            order: the first call keeps the task's id, the next ones get ``<id>__2``,
            ``<id>__3``, ... (``task.override(task_id=...)`` names a call yourself).
        order: task ids in a topological order (definition order where free).
        description: one line saying what the pipeline does (default: the first line of ``doc``).
        doc: the long documentation (default: the function's docstring).
        file, line: where the pipeline function is defined.
    """

    def __init__(
        self,
        fn: Callable[[], Any],
        *,
        name: str | None = None,
        schedule: str | timedelta | None = None,
        timezone: str = "UTC",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        defaults: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        owner: str | None = None,
        doc: str | None = None,
        description: str | None = None,
        manual_interval: str = "containing",
    ) -> None:
        code = fn.__code__
        self.fn = fn
        self.file = code.co_filename
        self.line = code.co_firstlineno
        self.name = name or fn.__name__
        self.module = fn.__module__
        loc: dict[str, Any] = {"path": str(Site(self.file, self.line)), "pipeline": self.name}
        self.schedule = schedule
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise DefinitionError(
                f"unknown timezone {timezone!r} (use an IANA name like 'Europe/Paris')", **loc
            ) from None
        self.timezone = timezone
        try:  # a bad cron expression is a definition mistake, reported when the file loads
            self.timetable: Timetable = timetable_from(
                schedule, timezone, manual_interval=manual_interval
            )
        except DefinitionError as exc:
            raise DefinitionError(str(exc), **loc) from exc
        self.start_date = _aware(start_date, timezone, "start_date", loc)
        self.end_date = _aware(end_date, timezone, "end_date", loc)
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DefinitionError(
                f"end_date {self.end_date} is before start_date {self.start_date}", **loc
            )
        self.catchup = bool(catchup)
        if (
            isinstance(max_active_runs, bool)
            or not isinstance(max_active_runs, int)
            or max_active_runs < 1
        ):
            raise DefinitionError(
                f"max_active_runs must be an integer >= 1, got {max_active_runs!r}", **loc
            )
        self.max_active_runs = max_active_runs
        self.defaults = dict(defaults or {})
        for key in self.defaults:
            if key not in POLICY_KEYS:
                raise DefinitionError(
                    f"unknown key {key!r} in defaults; known: {', '.join(POLICY_KEYS)}."
                    + did_you_mean(key, POLICY_KEYS),
                    **loc,
                )
        self.params = dict(params or {})
        self.tags = list(tags or [])
        self.owner = owner
        if owner is not None and "owner" not in self.defaults:
            self.defaults["owner"] = owner
        self.doc = doc or inspect.getdoc(fn)
        # One line (Airflow's ``description``); ``doc`` is the long text (``doc_md``).
        self.description = description or (self.doc.strip().splitlines()[0] if self.doc else None)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.upstream: dict[str, tuple[str, ...]] = {}
        self.downstream: dict[str, tuple[str, ...]] = {}
        self.order: list[str] = []
        self._build()

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}: {len(self.tasks)} tasks>"

    def _build(self) -> None:
        builder = GraphBuilder(self.name, self.file)
        with building(builder):
            returned = self.fn()
        if returned is not None and not _is_ref_like(returned):
            raise DefinitionError(
                f"pipeline {self.name!r} function should return nothing, "
                f"got {type(returned).__name__}",
                path=str(Site(self.file, self.line)),
            )
        if not builder.nodes:
            raise DefinitionError(
                f"pipeline {self.name!r} has no tasks; call @task functions inside it",
                path=str(Site(self.file, self.line)),
            )
        self.tasks = {
            tid: node._with_defaults(self.defaults, self.name)
            for tid, node in builder.nodes.items()
        }
        self.instances = _instances(builder)
        edges = dict(builder.edges)
        _branch_instance_edges(self.tasks, self.instances, edges)
        ups: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        downs: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for up, down in edges:
            if up not in ups[down]:
                ups[down].append(up)
                downs[up].append(down)
        self.upstream = {k: tuple(v) for k, v in ups.items()}
        self.downstream = {k: tuple(v) for k, v in downs.items()}
        self.order = _topological(self.name, list(self.tasks), self.upstream, edges)
        for tid, node in self.tasks.items():
            if node.branch and not self.downstream[tid]:
                raise DefinitionError(
                    f"branch task {tid!r} of pipeline {self.name!r} has no "
                    "downstream task to choose; link the paths after it (choose() >> [path_a(), path_b()])",
                    path=str(node.call_site or node.source),
                )

    @classmethod
    def from_call(
        cls, call: Callable[[], Any], name: str, caller: FrameType, **options: Any
    ) -> Pipeline:
        """A pipeline whose body is ``call()`` (a sync or a stream as its only task),
        defined at the line of ``caller`` and in its module: the frame of the user's
        ``.pipeline()`` call, where workers re-import the pipeline.

        Args:
            call: adds the task when the pipeline body runs.
            name: the pipeline's name.
            caller: the user's frame (``sys._getframe(1)`` in the ``.pipeline()`` method).
            options: as ``@pipeline`` takes them (schedule, params ...).

        Example:
            >>> Pipeline.from_call(self, self.name, sys._getframe(1), schedule="@daily")
        """

        def body() -> None:
            call()

        body.__code__ = body.__code__.replace(
            co_filename=caller.f_code.co_filename, co_firstlineno=caller.f_lineno
        )
        body.__module__ = caller.f_globals.get("__name__", "__main__")
        body.__name__ = body.__qualname__ = name
        return cls(body, name=name, **options)

    @property
    def schedule_text(self) -> str | None:
        """The schedule as listings show it: the cron expression or preset, a timedelta as
        ``6:00:00``; None for manual runs only."""
        return None if self.schedule is None else str(self.schedule)

    @property
    def groups(self) -> dict[str | None, list[str]]:
        """Task ids by task group (innermost group path; None for tasks outside any group), in order."""
        found: dict[str | None, list[str]] = {}
        for tid in self.order:
            found.setdefault(self.tasks[tid].group, []).append(tid)
        return found

    def task(self, task_id: str) -> Task[Any, Any]:
        """The task named ``task_id``; an unknown name suggests the closest."""
        try:
            return self.tasks[task_id]
        except KeyError:
            raise DefinitionError(  # the KeyError says nothing more
                "no such task." + did_you_mean(task_id, self.tasks),
                pipeline=self.name,
                task=task_id,
            ) from None

    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The pipeline's param defaults overlaid with ``given`` (strings converted to the default's type)."""
        return resolve_params(self.name, self.params, given)


def _is_ref_like(value: Any) -> bool:
    from headrace.pipeline.graph_builder import TaskRef

    return isinstance(value, TaskRef) or (
        isinstance(value, list | tuple) and all(isinstance(v, TaskRef) for v in value)
    )


def _instances(builder: GraphBuilder) -> dict[str, tuple[str, ...]]:
    """Every task id -> the ids of all calls of the same decorated task (itself included)."""
    by_origin: dict[int, list[str]] = {}
    for tid in builder.nodes:
        by_origin.setdefault(id(builder.origins[tid]), []).append(tid)
    return {tid: tuple(ids) for ids in by_origin.values() for tid in ids}


def _branch_instance_edges(
    tasks: Mapping[str, Task[Any, Any]],
    instances: Mapping[str, tuple[str, ...]],
    edges: dict[tuple[str, str], Site],
) -> None:
    """Make a branch decide every call of the tasks it chooses between, not only the one it links to.

    ``choose() >> [big(), small()]`` followed elsewhere by ``small()`` (id ``small__2``):
    when the branch skips ``small`` it skips ``small__2`` too, so ``small__2`` waits for
    the branch (an added edge). Calls that run before the branch are left alone.
    """
    downstream: dict[str, set[str]] = {}
    for up, down in edges:
        downstream.setdefault(up, set()).add(down)
    for tid, node in tasks.items():
        if not node.branch:
            continue
        ancestors = _ancestors(tid, edges)
        for down in sorted(downstream.get(tid, ())):
            for other in instances[down]:
                if other != tid and other not in ancestors and (tid, other) not in edges:
                    edges[(tid, other)] = node.call_site or node.source


def _ancestors(tid: str, edges: Mapping[tuple[str, str], Site]) -> set[str]:
    ups: dict[str, list[str]] = {}
    for up, down in edges:
        ups.setdefault(down, []).append(up)
    seen: set[str] = set()
    todo = [tid]
    while todo:
        for up in ups.get(todo.pop(), ()):
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return seen


def _aware(value: datetime | None, tz: str, what: str, location: dict[str, Any]) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise DefinitionError(
            f"{what} must be a datetime, got {type(value).__name__} {value!r}", **location
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))


def _topological(
    pipeline: str,
    ids: list[str],
    upstream: Mapping[str, tuple[str, ...]],
    edges: Mapping[tuple[str, str], Site],
) -> list[str]:
    """Kahn's algorithm keeping definition order; a cycle is a DefinitionError naming its edges."""
    position = {tid: i for i, tid in enumerate(ids)}
    waiting = {tid: len(upstream[tid]) for tid in ids}
    downstream: dict[str, list[str]] = {tid: [] for tid in ids}
    for tid in ids:
        for up in upstream[tid]:
            downstream[up].append(tid)
    ready = sorted((tid for tid in ids if waiting[tid] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        tid = ready.pop(0)
        order.append(tid)
        freed = []
        for down in downstream[tid]:
            waiting[down] -= 1
            if waiting[down] == 0:
                freed.append(down)
        ready = sorted(ready + freed, key=position.__getitem__)
    if len(order) < len(ids):
        cycle = _find_cycle([t for t in ids if waiting[t] > 0], upstream)
        links = " >> ".join(cycle)
        sites = ", ".join(
            f"{a} >> {b} at {edges[(a, b)]}"
            for a, b in zip(cycle, cycle[1:], strict=False)
            if (a, b) in edges
        )
        raise DefinitionError(
            f"has a cycle: {links} ({sites}); remove one of these edges", pipeline=pipeline
        )
    return order


def _find_cycle(candidates: list[str], upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One cycle among the tasks left over by Kahn's algorithm, as a closed path."""
    inside = set(candidates)
    start = candidates[0]
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        # Every leftover node has an upstream that is also left over, so this walk must loop.
        node = next(u for u in upstream[node] if u in inside)
        if node in seen:
            loop = path[seen[node] :] + [node]
            return list(reversed(loop))
        seen[node] = len(path)
        path.append(node)


def pipeline(
    fn: Callable[[], Any] | None = None,
    /,
    *,
    name: str | None = None,
    schedule: str | timedelta | None = None,
    timezone: str = "UTC",
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    catchup: bool = False,
    max_active_runs: int = 1,
    defaults: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: list[str] | None = None,
    owner: str | None = None,
    doc: str | None = None,
    description: str | None = None,
    manual_interval: str = "containing",
) -> Any:
    """Define a pipeline from a function whose body calls tasks.

    Args:
        fn: the function (when used as ``@pipeline`` without parentheses).
        name: unique name (default: the function name).
        schedule: cron expression, preset (``@daily``, ``@hourly``, ...) or timedelta; None:
            manual only.
        timezone: time zone the schedule is read in (DST aware).
        start_date, end_date: first and last logical dates the scheduler runs.
        catchup: run every missed interval since start_date (default: only the latest).
        max_active_runs: runs of this pipeline active at once.
        defaults: task options for every task that does not set its own, like Airflow's
            ``default_args``: retries, timeout, sla, owner, pool, trigger_rule, tags,
            depends_on_past, email, email_on_failure, email_on_retry, webhooks,
            on_failure, on_retry, on_success, on_sla_miss.
        params: parameter name -> default value (its type types ``--param`` values).
        tags, owner, doc: descriptive metadata (doc: long text).
        description: one line, shown in listings and the web UI.
        manual_interval: what a manual run with a date covers: ``"containing"`` (the
            default) or ``"ending"`` (Airflow's meaning); see
            :class:`~headrace.pipeline.timetable.ManualInterval`.

    Example:
        >>> @pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1), params={"full_refresh": False})
        ... def customer_etl():
        ...     load(transform(extract())) >> cleanup()
    """
    options: dict[str, Any] = {
        "name": name,
        "schedule": schedule,
        "timezone": timezone,
        "start_date": start_date,
        "end_date": end_date,
        "catchup": catchup,
        "max_active_runs": max_active_runs,
        "defaults": defaults,
        "params": params,
        "tags": tags,
        "owner": owner,
        "doc": doc,
        "description": description,
        "manual_interval": manual_interval,
    }
    if fn is not None:
        return Pipeline(fn, **options)
    return lambda f: Pipeline(f, **options)
