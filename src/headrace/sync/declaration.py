"""What a sync declaration is made of: source, incremental strategy, destination, the Sync.

This module imports only the pipeline API, so ``import headrace`` stays quick; the
code that runs a sync (connectors, checks, Polars) lives in ``headrace.sync.execute``
and is imported when a sync task first runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from headrace.errors import DefinitionError
from headrace.pipeline import Context, Pipeline, Task
from headrace.pipeline.graph import Site, caller_site

#: A connection name or URL, or a function of the run context returning one.
ConnectionRef = str | Callable[[Context], str]


@dataclass(frozen=True)
class SqlSourceSpec:
    """A table or query of a SQL database reached through a named connection."""

    connection: ConnectionRef
    table: str | None = None
    query: str | None = None
    schema: str | None = None
    types: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """The source's name in checkpoints, the load ledger and lineage."""
        conn = self.connection if isinstance(self.connection, str) else self.connection.__name__
        conn = re.sub(r"//[^@/]*@", "//", conn)  # a URL's user and password stay out of it
        return f"{conn}.{self.table or 'query'}"


@dataclass(frozen=True)
class FileSourceSpec:
    """Files (a path, folder or glob) of one format; options as ``FileSource`` takes them."""

    path: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """The source's name in checkpoints, the load ledger and lineage."""
        return f"files:{self.path}"


@dataclass(frozen=True)
class CursorStrategy:
    """Rows past the stored checkpoint of ``column`` (minus ``lookback``)."""

    column: str
    lookback: Any = None
    primary_key: tuple[str, ...] = ()
    initial: Any = None


@dataclass(frozen=True)
class IntervalStrategy:
    """Rows whose ``column`` lies in the run's data interval."""

    column: str


@dataclass(frozen=True)
class FullStrategy:
    """Every row, every run."""


Strategy = CursorStrategy | IntervalStrategy | FullStrategy


@dataclass(frozen=True)
class DestinationSpec:
    """A table of a warehouse reached through a named connection.

    ``"warehouse"`` falls back to the embedded DuckDB under the headrace home when no
    such connection is configured.
    """

    connection: str
    table: str
    mode: str = "append"
    keys: tuple[str, ...] = ()
    metadata: bool = True
    exclude: tuple[str, ...] = ()


def sql_source(
    connection: ConnectionRef,
    *,
    table: str | None = None,
    query: str | None = None,
    schema: str | None = None,
    types: dict[str, Any] | None = None,
) -> SqlSourceSpec:
    """A SQL source: ``table`` or ``query`` of connection ``connection``.

    Args:
        connection: a connection name (``HEADRACE_CONN_<NAME>``/headrace.toml), a URL,
            or a function ``(ctx) -> name or URL`` called when the sync runs.
        table: the table to read; or ``query``, a SELECT.
        schema: the table's schema (default: the connection's ``?schema=``).
        types: column -> Arrow type overrides (e.g. SQLite text timestamps).

    Example:
        >>> sql_source("crm", table="customers")
    """
    if (table is None) == (query is None):
        raise DefinitionError("sql_source needs exactly one of table=... or query=...")
    return SqlSourceSpec(connection, table, query, schema, dict(types or {}))


def file_source(path: str, **options: Any) -> FileSourceSpec:
    """A file source: a file, folder or glob (``"landing/*.csv"``); options of ``FileSource``."""
    return FileSourceSpec(str(path), options)


def cursor(
    column: str,
    *,
    lookback: timedelta | float | None = None,
    primary_key: str | Sequence[str] = (),
    initial: Any = None,
) -> CursorStrategy:
    """Incremental on a cursor column: rows changed since the last load.

    Args:
        column: the cursor (``updated_at`` or an increasing id).
        lookback: how far behind the checkpoint to read again (late commits).
        primary_key: the key columns; needed with a lookback (re-read rows merge).
        initial: where to start when nothing was loaded yet (None: every row).
    """
    keys = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)
    if lookback and not keys:
        raise DefinitionError(
            f"cursor({column!r}) has a lookback but no primary_key: rows read again would be "
            "loaded twice. Pass primary_key=... and load with mode='merge'."
        )
    return CursorStrategy(column, lookback, keys, initial)


def interval(column: str) -> IntervalStrategy:
    """Incremental on the run's data interval: rows with ``start <= column < end``."""
    return IntervalStrategy(column)


def full() -> FullStrategy:
    """No increment: every row on every run (usually with ``mode='replace'``)."""
    return FullStrategy()


def destination(
    connection: str,
    *,
    table: str,
    mode: str = "append",
    keys: str | Sequence[str] = (),
    metadata: bool = True,
    exclude: Sequence[str] = (),
) -> DestinationSpec:
    """Where a sync loads: ``table`` of connection ``connection``.

    Args:
        connection: a connection name or URL (``"warehouse"``: the embedded DuckDB
            unless configured).
        table: the destination table.
        mode: append, replace, replace_partition or merge.
        keys: the merge keys.
        metadata: add ``_hr_load_id`` and ``_hr_loaded_at`` columns.
        exclude: columns the checks need but the table should not get (e.g. a rank
            computed to quarantine duplicates); the quarantine table keeps them.
    """
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if mode == "merge" and not keys:
        raise DefinitionError(f"destination table {table!r}: mode='merge' needs keys=[...]")
    return DestinationSpec(connection, table, mode, keys, metadata, tuple(exclude))


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
            # imported here so that defining pipelines never imports Arrow, Polars, drivers
            from headrace.sync.execute import run_sync

            return run_sync(self, ctx)

        run.__name__ = run.__qualname__ = name
        run.__doc__ = f"Sync {source.dataset} into {destination.connection}.{destination.table}."
        self.task: Task[Any, dict[str, Any]] = Task(run, task_id=name, **task_options)
        self.task.source = site

    def _check(self, site: Site) -> None:
        strategy, dest = self.incremental, self.destination
        if isinstance(strategy, CursorStrategy) and strategy.lookback and dest.mode != "merge":
            raise DefinitionError(
                f"{site}: sync {self.name!r} reads a lookback window again; load it with "
                "mode='merge' (keys=the primary key) or the re-read rows are duplicated."
            )
        if isinstance(strategy, IntervalStrategy) and dest.mode == "append":
            raise DefinitionError(
                f"{site}: sync {self.name!r} loads a data interval with mode='append'; a rerun "
                "of the interval would duplicate it. Use 'replace_partition' or 'merge'."
            )
        if not (
            isinstance(self.transform, str) or self.transform is None or callable(self.transform)
        ):
            raise DefinitionError(
                f"{site}: sync {self.name!r}: transform must be a function or SQL"
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
        site = caller_site()
        module = inspect.currentframe().f_back.f_globals.get("__name__", "__main__")  # type: ignore[union-attr]

        def body() -> None:
            self()

        # The pipeline is defined where .pipeline() is called: workers re-import that file.
        body.__code__ = body.__code__.replace(co_filename=site.file, co_firstlineno=site.line)
        body.__module__ = module
        body.__name__ = body.__qualname__ = name or self.name
        return Pipeline(body, name=name or self.name, **options)


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
