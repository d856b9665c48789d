"""The :class:`Sync` a ``sync(...)`` declaration makes: a task, or a one-task pipeline.

This module imports only the pipeline API and the declaration parts (``spec``), so
``import headrace`` stays quick; the code that runs a sync (connectors, checks,
Polars) is ``headrace.sync.execute``, imported when a sync task first runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from headrace.errors import DefinitionError
from headrace.pipeline import Context, Pipeline, Task
from headrace.pipeline.graph_builder import Site, caller_site
from headrace.sync.sync_spec import (
    CursorStrategy,
    DestinationSpec,
    FileSourceSpec,
    FullStrategy,
    IntervalStrategy,
    SqlSourceSpec,
    Strategy,
)


class Sync:
    """A declared incremental sync: a task in any pipeline, or a pipeline on its own.

    Calling it inside a ``@pipeline`` body adds its task (its result: the load's
    stats as a dict); :meth:`pipeline` makes a one-task pipeline of it.
    """

    def __init__(
        self,
        name: str,
        *,
        source: SqlSourceSpec | FileSourceSpec,
        incremental: Strategy,
        destination: DestinationSpec,
        transform: Callable[..., Any] | str | None = None,
        checks: Sequence[Any] = (),
        max_reextracts: int = 3,
        sql_tests: str | Path | None = None,
        site: Site,
        **task_options: Any,
    ) -> None:
        self.name = name
        self.source = source
        self.incremental = incremental
        self.destination = destination
        self.transform = transform
        self.checks = list(checks)
        self.max_reextracts = max_reextracts
        self.sql_tests = sql_tests
        self.site = site
        self._check(site)

        def run(ctx: Context) -> dict[str, Any]:
            # imported on first run, not with the declaration: defining pipelines (the CLI,
            # the scheduler) then never loads Arrow, Polars or the drivers
            from headrace.sync.execute import run_sync

            return run_sync(self, ctx)

        run.__name__ = run.__qualname__ = name
        run.__headrace_sync__ = self  # type: ignore[attr-defined]  # the catalog finds the declaration
        run.__doc__ = f"Sync {source.dataset} into {destination.connection}.{destination.table}."
        self.task: Task[Any, dict[str, Any]] = Task(run, task_id=name, **task_options)
        self.task.source = site

    def _check(self, site: Site) -> None:
        strategy, dest = self.incremental, self.destination
        if isinstance(strategy, CursorStrategy) and strategy.lookback and dest.mode != "merge":
            raise DefinitionError(
                f"sync {self.name!r} reads a lookback window again; load it with "
                "mode='merge' (keys=the primary key) or the re-read rows are duplicated.",
                path=str(site),
            )
        if isinstance(strategy, IntervalStrategy) and dest.mode == "append":
            raise DefinitionError(
                f"sync {self.name!r} loads a data interval with mode='append'; a rerun "
                "of the interval would duplicate it. Use 'replace_partition' or 'merge'.",
                path=str(site),
            )
        if not (
            isinstance(self.transform, str) or self.transform is None or callable(self.transform)
        ):
            raise DefinitionError(
                f"sync {self.name!r}: transform must be a function or SQL", path=str(site)
            )

    def __repr__(self) -> str:
        return f"<Sync {self.name!r}: {self.source.dataset} -> {self.destination.table}>"

    def __call__(self) -> Any:
        """Inside a ``@pipeline`` body: add the sync's task (returns its reference)."""
        return self.task()

    def pipeline(self, *, name: str | None = None, **options: Any) -> Pipeline:
        """A pipeline with this sync as its only task; options as ``@pipeline`` takes them.

        Assign it at module level so ``headrace run file.py`` (and workers) find it.

        Example:
            >>> customers_daily = customers.pipeline(schedule="0 2 * * *")
        """
        # The pipeline is defined where .pipeline() is called: workers re-import that file.
        return Pipeline.from_call(self, name or self.name, sys._getframe(1), **options)


def sync(
    name: str,
    *,
    source: SqlSourceSpec | FileSourceSpec,
    incremental: Strategy | None = None,
    destination: DestinationSpec,
    transform: Callable[..., Any] | str | None = None,
    checks: Sequence[Any] = (),
    max_reextracts: int = 3,
    sql_tests: str | Path | None = None,
    **task_options: Any,
) -> Sync:
    """Declare a sync; the framework owns checkpoint, fencing, identity, quarantine, reconcile.

    Args:
        name: the task id (and the default pipeline name of :meth:`Sync.pipeline`).
        source: :func:`sql_source` or :func:`file_source`.
        incremental: :func:`cursor`, :func:`interval` or :func:`full` (default full).
        destination: :func:`destination`.
        transform: a function of the rows (Polars DataFrame by default; annotate the
            parameter ``pa.Table`` or ``pd.DataFrame`` for those), optionally taking
            ``ctx`` first; or a DuckDB SQL string reading the relation ``rows``.
        checks: expectations of ``headrace.quality``; ``severity="quarantine"`` rows go
            to ``<table>_quarantine`` with their reasons, in the load's transaction.
        max_reextracts: how many times a load overtaken by another (the checkpoint
            moved) re-extracts before the task fails.
        sql_tests: a folder or file of SQL tests (queries returning the bad rows) run
            against the destination after the load commits; a failure fails the task.
            On a lake (Delta, Iceberg, files) they run in DuckDB over the tables' latest
            versions; Snowflake does not run them.
        task_options: retries, timeout, sla, pool, owner, tags, ... as ``@task`` takes.

    Returns:
        A :class:`Sync`.
    """
    return Sync(
        name,
        source=source,
        incremental=incremental or FullStrategy(),
        destination=destination,
        transform=transform,
        checks=checks,
        max_reextracts=max_reextracts,
        sql_tests=sql_tests,
        site=caller_site(),
        **task_options,
    )
