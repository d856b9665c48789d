"""The ``@task`` decorator and the :class:`Task` it makes.

A Task wraps a plain function. Called inside a ``@pipeline`` function it records a
node of the graph and returns a :class:`TaskRef`; called anywhere else it simply calls
the function, so tasks stay easy to unit-test.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from headrace.errors import DefinitionError, did_you_mean
from headrace.pipeline.alerting import AlertRoutes
from headrace.pipeline.context import Context
from headrace.pipeline.graph_builder import (
    Site,
    TaskRef,
    builder_group,
    caller_site,
    current_builder,
    find_refs,
)
from headrace.pipeline.policy import Retry, TriggerRule, as_timedelta, check_trigger_rule

P = ParamSpec("P")
R = TypeVar("R")

_TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
POLICY_KEYS = (
    "retries",
    "timeout",
    "sla",
    "owner",
    "pool",
    "trigger_rule",
    "tags",
    "depends_on_past",
    "email",
    "email_on_failure",
    "email_on_retry",
    "webhooks",
    "on_failure",
    "on_retry",
    "on_success",
    "on_sla_miss",
)
#: Options naming who hears about a task (see :class:`headrace.pipeline.alerting.AlertRoutes`).
ALERT_KEYS = POLICY_KEYS[8:]
CONTEXT_NAMES = ("ctx", "context")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


class Task(Generic[P, R]):
    """A unit of work of a pipeline: a function plus its policies.

    Attributes of a task inside ``Pipeline.tasks`` are resolved: pipeline defaults
    fill what the task did not set. ``upstream_ids`` lists the tasks it waits for.

    Args:
        fn: the function; a parameter annotated ``Context`` (or named ctx/context)
            receives the run context. Put it first for type checkers: mypy then
            checks ``extract(n=5)`` in a pipeline body and ``extract(ctx, n=5)`` in a
            unit test (a ParamSpec can only drop a leading parameter).
        task_id: name in the pipeline (default: the function name). Calling the same
            task again in one pipeline makes another instance, ``<task_id>__2`` (then
            ``__3``, ...); name it yourself with ``task.override(task_id="...")(...)``. A
            branch choosing (or skipping) a task does the same to all its instances.
        retries: a :class:`Retry`, or an int: the number of tries after the first
            (``retries=3`` means up to 4 tries).
        attempts: the total number of tries, the first included (``attempts=4`` is
            ``retries=3``); give ``attempts`` or ``retries``, not both.
        timeout: longest time one try may take (timedelta or seconds).
        sla: time after the run's data interval end by which the task should be done.
        tags, owner, doc: descriptive metadata.
        checks: expectation objects of ``headrace.quality`` applied to the returned table.
        pool: name of a resource pool capping how many of its tasks run at once,
            across runs and processes (sizes from ``Settings.pools``).
        trigger_rule: when the task may start given its upstream states.
        branch: the task chooses which of its direct downstream tasks run: it returns
            a task id, a list of them, or None; the others are SKIPPED.
        depends_on_past: run only if this task succeeded or was skipped in the previous
            run of the pipeline (by logical date), as in Airflow; the first run always may.
        email, email_on_failure, email_on_retry, webhooks: where alerts about this task
            go besides the global channels (see :class:`headrace.pipeline.alerting.AlertRoutes`).
        on_failure, on_retry, on_success, on_sla_miss: callbacks receiving the task's
            :class:`Context` (``ctx.error`` holds the error of a failure or retry).
        description: one line saying what the task does (shown in listings).
    """

    __name__: str  # the function's, as functools.update_wrapper copies it

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        task_id: str | None = None,
        retries: Retry | int | None = UNSET,
        attempts: int = UNSET,
        timeout: timedelta | float | None = UNSET,
        sla: timedelta | float | None = UNSET,
        tags: list[str] | None = UNSET,
        owner: str | None = UNSET,
        checks: list[Any] | None = None,
        pool: str | None = UNSET,
        trigger_rule: TriggerRule | str = UNSET,
        doc: str | None = None,
        branch: bool = False,
        depends_on_past: bool = UNSET,
        email: str | list[str] | None = UNSET,
        email_on_failure: bool = UNSET,
        email_on_retry: bool = UNSET,
        webhooks: str | list[str] | None = UNSET,
        on_failure: Callable[[Context], Any] | None = UNSET,
        on_retry: Callable[[Context], Any] | None = UNSET,
        on_success: Callable[[Context], Any] | None = UNSET,
        on_sla_miss: Callable[[Context], Any] | None = UNSET,
        description: str | None = None,
    ) -> None:
        if attempts is not UNSET:
            if retries is not UNSET:
                raise DefinitionError(
                    f"task {getattr(fn, '__name__', fn)!r} has retries={retries!r} and "
                    f"attempts={attempts!r}; give one: attempts counts every try, retries the tries after the first",
                    path=str(_source_of(fn)),
                )
            retries = Retry(attempts=attempts)
        if not callable(fn):
            raise DefinitionError(f"@task needs a function, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            raise DefinitionError(
                f"task {fn.__name__!r} is async; headrace tasks are plain functions",
                path=str(_source_of(fn)),
            )
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.source = _source_of(fn)
        self.task_id = task_id or fn.__name__
        if not _TASK_ID.match(self.task_id):
            raise DefinitionError(
                f"task_id {self.task_id!r} may only hold letters, digits, '_', '.', '-'",
                path=str(self.source),
            )
        given = dict(
            retries=retries,
            timeout=timeout,
            sla=sla,
            tags=tags,
            owner=owner,
            pool=pool,
            trigger_rule=trigger_rule,
            depends_on_past=depends_on_past,
            email=email,
            email_on_failure=email_on_failure,
            email_on_retry=email_on_retry,
            webhooks=webhooks,
            on_failure=on_failure,
            on_retry=on_retry,
            on_success=on_success,
            on_sla_miss=on_sla_miss,
        )
        self._given = {k: v for k, v in given.items() if v is not UNSET}
        self.retries: Retry = Retry()
        self.timeout: timedelta | None = None
        self.sla: timedelta | None = None
        self.tags: list[str] = []
        self.owner: str | None = None
        self.pool: str | None = None
        self.trigger_rule = TriggerRule.ALL_SUCCESS
        self.depends_on_past = False
        self.alerts = AlertRoutes()
        self._set_policies(self._given)
        self.checks: list[Any] = list(checks or [])
        self.branch = bool(branch)
        if self.branch and self.checks:
            raise DefinitionError(
                f"branch task {self.task_id!r} returns task ids; it cannot have checks",
                path=str(self.source),
            )
        self.doc = doc or inspect.getdoc(fn)
        self.description = description
        signature = inspect.signature(fn)
        self.context_param = _context_param(signature)
        # Where the context goes in a call: its position if it can be passed positionally.
        self.context_position: int | None = None
        if self.context_param is not None:
            names = list(signature.parameters)
            kind = signature.parameters[self.context_param].kind
            if kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                self.context_position = names.index(self.context_param)
        self.signature = signature.replace(
            parameters=[p for n, p in signature.parameters.items() if n != self.context_param]
        )
        # Graph fields: set on the copy that a pipeline keeps (see _node).
        self.pipeline: str | None = None
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.upstream_ids: tuple[str, ...] = ()
        self.map_param: str | None = None
        self.map_source: Any = None
        self.call_site: Site | None = None
        self.group: str | None = None  # the task_group it was called in ("etl.extract" when nested)
        # Wait before running again after the task raised Reschedule (set by reschedule-mode sensors).
        self.reschedule_delay: timedelta | None = None

    def _set_policies(self, values: Mapping[str, Any]) -> None:
        loc: dict[str, Any] = {"path": str(self.source), "task": self.task_id}
        if "retries" in values:
            self.retries = Retry.coerce(values["retries"], "retries", **loc)
        if "timeout" in values:
            self.timeout = as_timedelta(values["timeout"], "timeout", **loc)
            if self.timeout is not None and self.timeout <= timedelta(0):
                raise DefinitionError(f"timeout must be positive, got {self.timeout}", **loc)
        if "sla" in values:
            self.sla = as_timedelta(values["sla"], "sla", **loc)
        if "tags" in values:
            self.tags = list(values["tags"] or [])
        if "owner" in values:
            self.owner = values["owner"]
        if "pool" in values:
            self.pool = values["pool"]
        if "trigger_rule" in values:
            self.trigger_rule = check_trigger_rule(values["trigger_rule"], **loc)
        if "depends_on_past" in values:
            self.depends_on_past = bool(values["depends_on_past"])
        routes = {k: v for k, v in values.items() if k in ALERT_KEYS}
        if routes:
            self.alerts = self.alerts.updated(routes, **loc)

    def __repr__(self) -> str:
        return f"<Task {self.task_id!r} of {self.pipeline or 'no pipeline'}>"

    @property
    def is_mapped(self) -> bool:
        """True when the task fans out over a list (``task.map(...)``)."""
        return self.map_param is not None

    # For a task whose first parameter is its Context, P leaves the context out: inside a
    # pipeline body headrace injects it, and a unit test passes one first.
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self, ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]  # mypy and P.args
        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        site = caller_site()
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            # inspect's TypeError is quoted whole; its traceback (inside inspect) says nothing more
            raise DefinitionError(
                f"called with wrong arguments: {exc}", path=str(site), task=self.task_id
            ) from None
        node = self._node(builder.unique_id(self, site), args, kwargs, None, None, site)
        return cast(R, builder.add_node(node, self))

    def map(self, **mapped: Any) -> list[R]:
        """Fan out: one task instance per element of a list, results gathered as a list.

        Args:
            mapped: exactly one ``parameter=values``, where values is a list or the
                result of an upstream task that returns a list.

        Example:
            >>> squares = square.map(x=[1, 2, 3])   # inside a @pipeline function
        """
        return self.partial().map(**mapped)

    def partial(self, **fixed: Any) -> _PartialTask[R]:
        """Fix arguments shared by every element before ``.map(...)``."""
        return _PartialTask(self, fixed)

    def override(self, **changes: Any) -> Task[P, R]:
        """A copy with other settings, e.g. ``extract.override(task_id="extract_eu")``."""
        settings: dict[str, Any] = dict(
            self._given,
            task_id=self.task_id,
            checks=self.checks,
            doc=self.doc,
            branch=self.branch,
            description=self.description,
        )
        settings.update(changes)
        return Task(self.fn, **settings)

    def _node(
        self,
        node_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        map_param: str | None,
        map_source: Any,
        site: Site,
    ) -> Task[P, R]:
        node = copy.copy(self)
        node.task_id = node_id
        node.args, node.kwargs = tuple(args), dict(kwargs)
        node.map_param, node.map_source, node.call_site = map_param, map_source, site
        node.group = builder_group()
        ups: dict[str, None] = {}
        for value in (*args, *kwargs.values(), map_source):
            for ref in find_refs(value):
                ups[ref.task_id] = None
        node.upstream_ids = tuple(ups)
        node.tags = list(self.tags)
        return node

    def _with_defaults(self, defaults: Mapping[str, Any], pipeline: str) -> Task[P, R]:
        """This node with pipeline defaults filling the policies the task did not set."""
        node = copy.copy(self)
        node.pipeline = pipeline
        node._set_policies({k: v for k, v in defaults.items() if k not in self._given})
        return node


class _PartialTask(Generic[R]):
    """A task with some arguments fixed, waiting for ``.map(...)``."""

    def __init__(self, task: Task[Any, R], fixed: dict[str, Any]) -> None:
        self.task, self.fixed = task, fixed

    def map(self, **mapped: Any) -> list[R]:
        task = self.task
        site = caller_site()
        builder = current_builder()
        if builder is None:
            raise DefinitionError(
                f"{task.task_id}.map(...) only works inside a @pipeline function", path=str(site)
            )
        if task.branch:
            raise DefinitionError(
                f"branch task {task.task_id!r} cannot be mapped: one branch task chooses the paths",
                path=str(site),
            )
        if len(mapped) != 1:
            raise DefinitionError(
                f"{task.task_id}.map(...) takes exactly one parameter=list to fan out over, "
                f"got {len(mapped)}; fix the others with .partial(...).map(...)",
                path=str(site),
            )
        ((param, source),) = mapped.items()
        names = list(task.signature.parameters)
        if param not in names:
            raise DefinitionError(
                f"task {task.task_id!r} has no parameter {param!r} to map over."
                + did_you_mean(param, names),
                path=str(site),
            )
        if not isinstance(source, list | tuple | TaskRef):
            raise DefinitionError(
                f"{task.task_id}.map({param}=...) needs a list or an upstream task result, "
                f"got {type(source).__name__}",
                path=str(site),
            )
        try:
            task.signature.bind(**self.fixed, **{param: None})
        except TypeError as exc:
            # inspect's TypeError is quoted whole; its traceback (inside inspect) says nothing more
            raise DefinitionError(
                f"mapped with wrong arguments: {exc}", path=str(site), task=task.task_id
            ) from None
        source = list(source) if isinstance(source, tuple) else source
        node = task._node(builder.unique_id(task, site), (), dict(self.fixed), param, source, site)
        return cast(list[R], builder.add_node(node, task))


def _source_of(fn: Callable[..., Any]) -> Site:
    code = getattr(fn, "__code__", None)
    if code is None:
        return Site(getattr(fn, "__module__", "<unknown>") or "<unknown>", 0)
    return Site(code.co_filename, code.co_firstlineno)


def _context_param(signature: inspect.Signature) -> str | None:
    for name, param in signature.parameters.items():
        ann = param.annotation
        if ann is Context or (isinstance(ann, str) and ann.rsplit(".", 1)[-1] == "Context"):
            return name
    for name in CONTEXT_NAMES:
        if name in signature.parameters:
            return name
    return None


class _MakeTask(Protocol):
    """What ``@task(...)`` with options returns: the decorator proper."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class _TaskDecorator:
    """``@task`` / ``@task(...)`` make a :class:`Task`; ``@task.branch`` makes a branch task.

    Example:
        >>> @task(retries=Retry(attempts=3, delay=60, backoff=2.0), timeout=3600)
        ... def extract(ctx: Context) -> pa.Table: ...
        >>> @task.branch
        ... def full_or_incremental(ctx: Context) -> str:
        ...     return "full_load" if ctx.params["full_refresh"] else "incremental_load"
    """

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def __call__(
        self,
        *,
        task_id: str | None = None,
        retries: Retry | int | None = UNSET,
        attempts: int = UNSET,
        timeout: timedelta | float | None = UNSET,
        sla: timedelta | float | None = UNSET,
        tags: list[str] | None = UNSET,
        owner: str | None = UNSET,
        checks: list[Any] | None = None,
        pool: str | None = UNSET,
        trigger_rule: TriggerRule | str = UNSET,
        doc: str | None = None,
        branch: bool = False,
        depends_on_past: bool = UNSET,
        email: str | list[str] | None = UNSET,
        email_on_failure: bool = UNSET,
        email_on_retry: bool = UNSET,
        webhooks: str | list[str] | None = UNSET,
        on_failure: Callable[[Context], Any] | None = UNSET,
        on_retry: Callable[[Context], Any] | None = UNSET,
        on_success: Callable[[Context], Any] | None = UNSET,
        on_sla_miss: Callable[[Context], Any] | None = UNSET,
        description: str | None = None,
    ) -> _MakeTask: ...

    def __call__(  # type: ignore[misc]  # mypy: the overloads above are what callers see
        self,
        fn: Any = None,
        /,
        *,
        task_id: str | None = None,
        retries: Retry | int | None = UNSET,
        attempts: int = UNSET,
        timeout: timedelta | float | None = UNSET,
        sla: timedelta | float | None = UNSET,
        tags: list[str] | None = UNSET,
        owner: str | None = UNSET,
        checks: list[Any] | None = None,
        pool: str | None = UNSET,
        trigger_rule: TriggerRule | str = UNSET,
        doc: str | None = None,
        branch: bool = False,
        depends_on_past: bool = UNSET,
        email: str | list[str] | None = UNSET,
        email_on_failure: bool = UNSET,
        email_on_retry: bool = UNSET,
        webhooks: str | list[str] | None = UNSET,
        on_failure: Callable[[Context], Any] | None = UNSET,
        on_retry: Callable[[Context], Any] | None = UNSET,
        on_success: Callable[[Context], Any] | None = UNSET,
        on_sla_miss: Callable[[Context], Any] | None = UNSET,
        description: str | None = None,
    ) -> Any:
        """Make a :class:`Task` of ``fn`` (``@task``) or a decorator (``@task(...)``).

        Args:
            fn: the function (when used as ``@task`` without parentheses).
            task_id: name in the pipeline (default: the function name).
            retries: a :class:`Retry`, or an int number of tries after the first.
            attempts: total number of tries, the first included (instead of retries).
            timeout: longest time one try may take (timedelta or seconds).
            sla: time after the run's data interval end by which the task should be done.
            tags, owner, doc: descriptive metadata.
            checks: expectations (``headrace.quality``) applied to the returned table.
            pool: resource pool capping how many of its tasks run at once.
            trigger_rule: when the task may start given its upstream states.
            branch: the task returns the ids of the downstream tasks to run.
            depends_on_past: run only if this task succeeded (or was skipped) in the
                previous run by logical date, as in Airflow.
            email, email_on_failure, email_on_retry, webhooks: this task's alert routes.
            on_failure, on_retry, on_success, on_sla_miss: callbacks given the Context.
            description: one line, shown in listings and the web UI.
        """
        options: dict[str, Any] = {
            "task_id": task_id,
            "retries": retries,
            "attempts": attempts,
            "timeout": timeout,
            "sla": sla,
            "tags": tags,
            "owner": owner,
            "checks": checks,
            "pool": pool,
            "trigger_rule": trigger_rule,
            "doc": doc,
            "branch": branch,
            "depends_on_past": depends_on_past,
            "email": email,
            "email_on_failure": email_on_failure,
            "email_on_retry": email_on_retry,
            "webhooks": webhooks,
            "on_failure": on_failure,
            "on_retry": on_retry,
            "on_success": on_success,
            "on_sla_miss": on_sla_miss,
            "description": description,
        }
        if fn is not None:
            return Task(fn, **options)
        return lambda f: Task(f, **options)

    @overload
    def branch(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def branch(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def branch(self, **options: Any) -> _MakeTask: ...

    def branch(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """A task choosing which of its direct downstream tasks run (it returns their ids).

        The direct downstream tasks it does not return are SKIPPED; the skip flows on
        per trigger rules (``none_failed`` joins the paths again). The choice is stored
        with the task's result, so resuming a run keeps it.
        """
        options["branch"] = True
        return self(fn, **options)


task = _TaskDecorator()
