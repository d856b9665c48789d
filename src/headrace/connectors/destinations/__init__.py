"""Destinations: DuckDB (embedded default), PostgreSQL, Delta Lake and Iceberg tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from headrace.config import Settings
from headrace.connectors.destinations.destination_base import Destination, LoadResult, WriteMode
from headrace.connectors.destinations.duckdb import DuckDBDestination
from headrace.connectors.destinations.lakebase import LakeDestination
from headrace.connectors.destinations.postgres_destination import PostgresDestination
from headrace.connectors.destinations.sqlbase import SqlDestination
from headrace.connectors.naming import resolve

if TYPE_CHECKING:
    from headrace.connectors.destinations.snowflake import SnowflakeDestination

#: What :func:`open_destination` returns: a SQL database, a lake, or Snowflake. They share
#: the :class:`Destination` contract plus ``session``, ``q``, ``row_count`` and ``where``.
AnyDestination: TypeAlias = "SqlDestination | LakeDestination | SnowflakeDestination"


def open_destination(url_or_name: str, settings: Settings | None = None) -> AnyDestination:
    """The destination a URL or connection name points at (DuckDB, PostgreSQL, or a lake:
    ``delta:///path``, ``iceberg+sqlite:///catalog.db?warehouse=/path``)."""
    conn = resolve(url_or_name, settings)
    if conn.backend == "snowflake":
        from headrace.connectors.destinations.snowflake import SnowflakeDestination

        url = url_or_name if "://" in url_or_name else settings.connection(url_or_name)  # type: ignore[union-attr]
        return SnowflakeDestination.from_url(url)
    if conn.backend in ("delta", "iceberg", "files"):
        return open_lake(url_or_name if "://" in url_or_name else settings.connection(url_or_name))  # type: ignore[union-attr]
    if conn.backend == "duckdb":
        return DuckDBDestination.from_url(conn)
    if conn.backend == "postgresql":
        return PostgresDestination(conn)
    from headrace.errors import ConnectorError

    raise ConnectorError(
        f"{conn.masked} is a {conn.backend} database; destinations are duckdb, postgresql, "
        "delta, iceberg, files and snowflake."
    )


def open_lake(url: str) -> LakeDestination:
    """A Delta Lake, Iceberg or file-folder destination from its URL (see each class)."""
    from headrace.config import mask_url

    if url.split("://", 1)[0].lower().startswith("files"):
        from headrace.connectors.destinations.filesink import FileDestination

        return FileDestination.from_url(url)
    if url.split("://", 1)[0].lower().startswith("delta"):
        from headrace.connectors.destinations.delta import DeltaDestination

        return DeltaDestination.from_url(url)
    from headrace.connectors.destinations.iceberg import IcebergDestination

    return IcebergDestination.from_url(url, mask_url(url))


__all__ = [
    "AnyDestination",
    "Destination",
    "DuckDBDestination",
    "LakeDestination",
    "LoadResult",
    "PostgresDestination",
    "SqlDestination",
    "WriteMode",
    "open_destination",
    "open_lake",
]
