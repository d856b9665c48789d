"""A run's quarantined rows, read from the warehouse's ``<table>_quarantine`` tables.

A sync's task result names its destination (``connection.table``) and its load id;
the quarantine table holds each set-aside row with its reason (``_hr_reason``) and the
load that set it aside (``_hr_load_id``). The page reads those rows a page at a time,
every value masked (:mod:`headrace.masking`) before it is served: with the warehouse's
own SQL on DuckDB and PostgreSQL, with DuckDB over the table on a lakehouse (Delta Lake,
Iceberg, files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.connectors.destinations import (
    DuckDBDestination,
    PostgresDestination,
    open_destination,
)
from headrace.connectors.destinations.destination_base import META_LOAD_ID
from headrace.connectors.destinations.lakebase import LakeDestination
from headrace.connectors.destinations.quarantine_query import (
    LEAD_COLUMNS,
    QuarantineQuery,
    quarantine_table,
)
from headrace.connectors.naming import default_warehouse
from headrace.errors import HeadraceError
from headrace.masking import MASKER
from headrace.state.store_base import TaskInstanceRecord

REASON = "_hr_reason"
_HIDDEN = (META_LOAD_ID,)  # the same for every row of a load: shown once, in the heading


@dataclass
class QuarantinedRows:
    """One page of one load's quarantined rows.

    Attributes:
        task_id: the sync task that loaded.
        destination: ``connection.table`` the rows were meant for.
        load_id: the load that set them aside.
        total: rows of that load in the quarantine table.
        columns / rows: the page (values masked).
        error: why the rows could not be read (connection missing, table gone), or None.
    """

    task_id: str
    destination: str
    load_id: str
    table: str
    total: int = 0
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None


def sync_loads(tasks: list[TaskInstanceRecord]) -> list[tuple[str, str, str]]:
    """(task id, destination, load id) of each task whose result is a sync load that quarantined rows."""
    found = []
    for ti in tasks:
        result = ti.result_json
        if not isinstance(result, dict) or not result.get("quarantined"):
            continue
        load_id, destination = result.get("load_id"), result.get("destination")
        if isinstance(load_id, str) and isinstance(destination, str) and "." in destination:
            found.append(
                (
                    ti.task_id if ti.map_index == -1 else f"{ti.task_id}[{ti.map_index}]",
                    destination,
                    load_id,
                )
            )
    return found


def read_quarantined(
    settings: Settings, task_id: str, destination: str, load_id: str, *, limit: int, offset: int
) -> QuarantinedRows:
    """Rows ``offset .. offset+limit`` of load ``load_id`` in the quarantine table of ``destination``."""
    connection, table = destination.split(".", 1)
    page = QuarantinedRows(task_id, destination, load_id, quarantine_table(table))
    try:
        url = (
            default_warehouse(settings)
            if connection == "warehouse" and not settings.has_connection(connection)
            else connection
        )
        dest = open_destination(url, settings)
    except HeadraceError as exc:
        page.error = MASKER.mask(str(exc))
        return page
    if not isinstance(dest, DuckDBDestination | PostgresDestination | LakeDestination):
        page.error = f"quarantined rows of a {type(dest).__name__} are not shown here"
        return page
    if (
        isinstance(dest, DuckDBDestination) and not Path(dest.path).exists()
    ):  # not created by a look
        page.error = f"the warehouse {dest.path} of connection {connection!r} does not exist"
        return page
    try:
        with dest.session():
            columns = dest.columns(page.table)
            if columns is None or META_LOAD_ID not in columns:
                page.error = (
                    f"table {page.table!r} of connection {connection!r} does not exist (dropped?)"
                )
                return page
            read = QuarantineQuery(dest.q(page.table), [load_id], dialect=dest.dialect)
            page.total = int(dest.query(*read.count()).column(0)[0].as_py())
            shown = [c for c in LEAD_COLUMNS if c in columns] + [
                c for c in columns if c not in LEAD_COLUMNS + _HIDDEN
            ]
            rows = dest.query(*read.rows(shown, limit, offset))
    except Exception as exc:  # a busy or unreachable warehouse is shown on the page, not a 500
        page.error = MASKER.mask(f"{type(exc).__name__}: {exc}")
        return page
    page.columns = shown
    page.rows = [[MASKER.mask_value(_shown(v)) for v in row.values()] for row in rows.to_pylist()]
    return page


def _shown(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
