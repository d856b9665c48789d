"""Declarative sync: one declaration, and the framework owns exactly-once loading.

A sync names a source, an incremental strategy, an optional transform, checks and a
destination. The framework turns it into extract → transform → check → load and owns
what a hand-wired pipeline gets wrong:

- **checkpoint**: read from the destination (cursor strategy), written back in the
  load's transaction, never moved backwards;
- **fencing**: the load commits only if the destination still holds the checkpoint the
  extract started from (compare-and-set in the load's transaction); otherwise nothing
  is applied and the sync re-extracts from the new checkpoint (``max_reextracts``
  times, logged). A resumed old run, a retry after another run, or two runs at once
  never put older rows back; in merge a stored row with a greater cursor value is
  never replaced by an incoming one;
- **load identity**: from pipeline, source, what the extract covers (start checkpoint
  or data interval) and a digest of the rows; a replay is a no-op, a rerun of an
  interval whose source changed is applied;
- **quarantine**: rows failing ``severity="quarantine"`` checks go with their reasons to
  ``<table>_quarantine`` in the same transaction;
- **reconciliation before commit**: rows in = loaded + quarantined + superseded;
- **metadata and lineage**: ``_hr_load_id``/``_hr_loaded_at`` columns; the ledger
  ``_hr_loads`` records pipeline, source dataset and destination table of each load;
  the task's result holds ``source`` and ``destination`` datasets.

Connections are names looked up in ``ctx.settings`` (``"warehouse"`` falls back to the
embedded DuckDB). A sync streams (batches checked, digested and loaded without holding
the extract) when it has no transform and only row-level checks; otherwise it holds
the extract in memory for the transform and table-wide checks.

Modules: ``spec`` (the declaration parts: sources, strategies, destination),
``declaration`` (:class:`Sync`: a task or a one-task pipeline), ``execute`` (running
one sync). Building on it (streams, lakehouse tables): a new source kind is a spec
dataclass in ``spec`` plus its branch in ``execute._open_extract``; a new destination
kind meets the ``write(..., fence=, load_id=, quarantine=, checkpoint=, verify=)``
contract of ``SqlDestination``. A stream's position plays the checkpoint's role (the
fence) and the broker is acknowledged only after the load commits.

Example:
    >>> from headrace import sync, sql_source, destination, cursor
    >>> customers = sync(
    ...     "customers",
    ...     source=sql_source("crm", table="customers"),
    ...     incremental=cursor("updated_at", lookback=timedelta(minutes=10),
    ...                        primary_key="customer_id"),
    ...     transform=clean,                      # Polars/Arrow/pandas function or SQL
    ...     checks=[not_null("customer_id"),
    ...             matches_regex("email", EMAIL, severity="quarantine")],
    ...     destination=destination("warehouse", table="customers", mode="merge",
    ...                             keys=["customer_id"]),
    ... )
    >>> @pipeline(schedule="0 2 * * *")
    ... def crm():
    ...     customers()                           # a task; its result: the load's stats
    >>> customers_only = customers.pipeline(schedule="@hourly")   # or on its own
"""

from __future__ import annotations

from headrace.sync.declaration import Sync, sync
from headrace.sync.sync_spec import (
    CursorStrategy,
    DestinationSpec,
    FileSourceSpec,
    FullStrategy,
    IntervalStrategy,
    SqlSourceSpec,
    cursor,
    destination,
    file_source,
    full,
    interval,
    sql_source,
)

__all__ = [
    "CursorStrategy",
    "DestinationSpec",
    "FileSourceSpec",
    "FullStrategy",
    "IntervalStrategy",
    "SqlSourceSpec",
    "Sync",
    "cursor",
    "destination",
    "file_source",
    "full",
    "interval",
    "sql_source",
    "sync",
]
