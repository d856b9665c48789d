"""Destinations: DuckDB (embedded default) and PostgreSQL."""

from __future__ import annotations

from headrace.config import Settings
from headrace.connectors.destinations.base import Destination, LoadResult, WriteMode
from headrace.connectors.destinations.duckdb import DuckDBDestination
from headrace.connectors.destinations.postgres import PostgresDestination
from headrace.connectors.destinations.sqlbase import SqlDestination
from headrace.connectors.naming import resolve


def open_destination(url_or_name: str, settings: Settings | None = None) -> SqlDestination:
    """The destination a URL or connection name points at (DuckDB or PostgreSQL)."""
    conn = resolve(url_or_name, settings)
    if conn.backend == "duckdb":
        return DuckDBDestination.from_url(conn)
    if conn.backend == "postgresql":
        return PostgresDestination(conn)
    from headrace.errors import ConnectorError

    raise ConnectorError(
        f"{conn.masked} is a {conn.backend} database; destinations are duckdb and postgresql."
    )


__all__ = [
    "Destination",
    "DuckDBDestination",
    "LoadResult",
    "PostgresDestination",
    "SqlDestination",
    "WriteMode",
    "open_destination",
]
