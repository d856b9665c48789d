"""Warehouse reads for the MCP tools: queries, quarantined rows, lineage and profiles.

Every read goes through :func:`headrace.mcp.sqlguard.run_read_only` (DuckDB opened
read-only, PostgreSQL in a read-only transaction); identifiers are quoted and values
bound, never pasted.
"""

from __future__ import annotations

from typing import Any

from headrace.config import Settings
from headrace.connectors.destinations.destination_base import LOADS_TABLE
from headrace.connectors.destinations.quarantine_query import QuarantineQuery, quarantine_table
from headrace.connectors.naming import ConnectionURL, default_warehouse, qualified, resolve
from headrace.errors import ConfigError, ConnectorError
from headrace.mcp.sqlguard import QueryResult, run_read_only

#: The name that means the embedded DuckDB warehouse when no connection of that name is set.
DEFAULT_WAREHOUSE = "warehouse"
#: Rows of a PostgreSQL table read into DuckDB for a profile.
PROFILE_SAMPLE_ROWS = 100_000


def warehouse_connection(settings: Settings, name: str) -> ConnectionURL:
    """The named warehouse connection (``warehouse`` defaults to the embedded DuckDB).

    Args:
        settings: where named connections live.
        name: a connection name, never a URL (an assistant does not choose hosts).
    """
    if "://" in name or "/" in name:
        raise ConfigError(
            "give the name of a configured connection, not a URL or path", connection=name
        )
    if not settings.has_connection(name) and name.lower() == DEFAULT_WAREHOUSE:
        conn = resolve(default_warehouse(settings))
    else:
        conn = resolve(name, settings)
    if conn.backend not in ("duckdb", "postgresql"):
        raise ConnectorError(
            f"is {conn.backend}; warehouse reads run on duckdb and postgresql connections",
            connection=name,
        )
    return conn


def table_sql(conn: ConnectionURL, table: str) -> str:
    """``table`` quoted (``schema.table`` splits once; the connection's schema otherwise)."""
    schema, dot, name = table.rpartition(".")
    if not dot:
        schema, name = conn.options.get("schema", ""), table
    dialect = "duckdb" if conn.backend == "duckdb" else "postgresql"
    return qualified(name, schema or None, dialect)


def _marks(conn: ConnectionURL, n: int, start: int = 1) -> list[str]:
    if conn.backend == "postgresql":
        return ["%s"] * n
    return [f"${i}" for i in range(start, start + n)]


def query(
    conn: ConnectionURL, sql: str, limit: int, timeout: float, params: list[Any] | None = None
) -> QueryResult:
    """A read-only query headrace built (quoted identifiers, bound values; see :func:`run_read_only`)."""
    return run_read_only(
        conn, sql, limit=limit, timeout_seconds=timeout, params=params, check=False
    )


def quarantined_rows(
    conn: ConnectionURL, table: str, run_id: str, load_ids: list[str], limit: int, timeout: float
) -> QueryResult:
    """Rows of ``<table>_quarantine`` loaded by a run: by its load ids, or ids starting with the run id.

    Args:
        conn: the warehouse.
        table: the destination table (its quarantine is ``<table>_quarantine``).
        run_id: the run.
        load_ids: load ids the run's tasks reported (``load_id`` in their results).
        limit: most rows.
        timeout: seconds.
    """
    read = QuarantineQuery(
        table_sql(conn, quarantine_table(table)), load_ids, run_id,
        percent_marks=conn.backend == "postgresql",
    )  # fmt: skip
    sql, params = read.rows()
    return query(conn, sql, limit, timeout, params)


def loads_of(conn: ConnectionURL, table: str, limit: int, timeout: float) -> QueryResult:
    """What fed ``table``: the ``_hr_loads`` ledger grouped by pipeline and source."""
    ledger = table_sql(conn, LOADS_TABLE)
    mark = _marks(conn, 1)[0]
    sql = (
        "SELECT pipeline, source, mode, count(*) AS loads, sum(rows_loaded) AS rows_loaded, "
        "sum(rows_quarantined) AS rows_quarantined, min(loaded_at) AS first_load, max(loaded_at) AS last_load "
        f"FROM {ledger} WHERE table_name = {mark} GROUP BY pipeline, source, mode ORDER BY last_load DESC"
    )
    return query(conn, sql, limit, timeout, [table])


def tables_fed_by(conn: ConnectionURL, pipeline: str, limit: int, timeout: float) -> QueryResult:
    """Tables a pipeline loaded, from the ``_hr_loads`` ledger."""
    ledger = table_sql(conn, LOADS_TABLE)
    mark = _marks(conn, 1)[0]
    sql = (
        "SELECT table_name, source, count(*) AS loads, max(loaded_at) AS last_load "
        f"FROM {ledger} WHERE pipeline = {mark} GROUP BY table_name, source ORDER BY table_name"
    )
    return query(conn, sql, limit, timeout, [pipeline])


def profile(conn: ConnectionURL, table: str, top: int, timeout: float) -> dict[str, Any]:
    """The analytics profile of a warehouse table (PostgreSQL: of its first rows, said in ``sample``).

    Args:
        conn: the warehouse.
        table: table name (``schema.table`` allowed).
        top: most frequent values kept per column.
        timeout: seconds for the PostgreSQL read.
    """
    from headrace.analytics.analyzer import Analyzer

    if conn.backend == "duckdb":
        schema, dot, name = table.rpartition(".")
        ref: Any = (schema, name) if dot else table
        with Analyzer(conn.path, read_only=True, threads=1) as analyzer:
            result = analyzer.profile(ref, top=top).to_dict()
        result["sample"] = None
        return result
    import pyarrow as pa

    rows = query(conn, f"SELECT * FROM {table_sql(conn, table)}", PROFILE_SAMPLE_ROWS, timeout)
    data = pa.Table.from_pylist([dict(zip(rows.columns, r, strict=True)) for r in rows.rows])
    if not rows.rows:
        data = pa.table({c: pa.array([], pa.null()) for c in rows.columns})
    with Analyzer(threads=1) as analyzer:
        analyzer.load_arrow(data, "profiled")
        result = analyzer.profile("profiled", top=top).to_dict()
    result["table"] = table
    result["sample"] = (
        f"first {PROFILE_SAMPLE_ROWS} rows (the table has more)" if rows.truncated else None
    )
    return result
