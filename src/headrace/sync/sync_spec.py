"""The parts of a sync declaration: source, incremental strategy, destination.

Plain frozen dataclasses and the functions that build them; no I/O, nothing imported
beyond the pipeline API, so declaring a sync is as cheap as declaring a task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from headrace.errors import DefinitionError, one_of
from headrace.pipeline import Context

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
    doc: str | None = None
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    """A file source: a file, folder or glob (``"landing/*.csv"``); options of ``FileSource``.

    ``connection="landing"`` reads from object storage: ``path`` is under the bucket and
    prefix of that connection (``s3://key:secret@bucket/prefix``), whose credentials
    stay out of the pipeline code.

    Example:
        >>> file_source("orders/*.csv", connection="landing")
    """
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
            "the cursor has a lookback but no primary_key: rows read again would be "
            "loaded twice. Pass primary_key=... and load with mode='merge'.",
            column=column,
        )
    return CursorStrategy(column, lookback, keys, initial)


def interval(column: str) -> IntervalStrategy:
    """Incremental on the run's data interval: rows with ``start <= column < end``."""
    return IntervalStrategy(column)


def full() -> FullStrategy:
    """No increment: every row on every run (usually with ``mode='replace'``)."""
    return FullStrategy()


#: The values of :class:`headrace.connectors.WriteMode` (not imported: it brings pyarrow,
#: and a spec is built when a pipeline file loads; tests/sync checks they agree).
WRITE_MODES = ("append", "replace", "replace_partition", "merge")


def destination(
    connection: str,
    *,
    table: str,
    mode: str = "append",
    keys: str | Sequence[str] = (),
    metadata: bool = True,
    exclude: Sequence[str] = (),
    doc: str | None = None,
    columns: dict[str, str | dict[str, Any]] | None = None,
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
        doc: what the table holds (the catalog, lineage events).
        columns: column -> its description, or ``{"doc": ..., "from": [source columns]}``
            (``from`` declares column lineage a Python transform cannot show).

    Example:
        >>> destination("warehouse", table="customers", doc="One row per customer",
        ...             columns={"full_name": {"doc": "first + last", "from": ["first_name", "last_name"]}})
    """
    described: dict[str, dict[str, Any]] = {}
    for column, about in (columns or {}).items():
        if isinstance(about, str):
            about = {"doc": about}
        unknown = set(about) - {"doc", "from"}
        if unknown:
            raise DefinitionError(
                f"unknown keys {sorted(unknown)} in the column's description; use doc and from.",
                table=table,
                column=column,
            )
        frm = about.get("from") or ()
        described[column] = {**about, "from": [frm] if isinstance(frm, str) else list(frm)}
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if mode not in WRITE_MODES:
        raise DefinitionError(
            f"unknown mode {mode!r}; {one_of(mode, WRITE_MODES)}",
            table=table,
        )
    mode = str(mode)  # a WriteMode member is kept as its plain value in the frozen spec
    if mode == "merge" and not keys:
        raise DefinitionError("mode='merge' needs keys=[...]", table=table)
    return DestinationSpec(connection, table, mode, keys, metadata, tuple(exclude), doc, described)
