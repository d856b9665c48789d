"""Dataset names by the OpenLineage naming convention, shared by lineage events, the
state store's ``lineage`` table, ``headrace lineage`` and the catalog.

A dataset is (namespace, name): the namespace names the data source, the name the
dataset inside it (https://openlineage.io/docs/spec/naming):

====================  ==============================  ===========================
source                namespace                       name
====================  ==============================  ===========================
PostgreSQL            ``postgres://host:5432``        ``db.schema.table``
MySQL / MariaDB       ``mysql://host:3306``           ``db.table``
SQLite                ``sqlite://<absolute file>``    ``table``
DuckDB                ``duckdb://<absolute file>``    ``db.schema.table``
local files           ``file``                        ``<absolute path or glob>``
Redis queue           ``redis://host:6379``           ``<prefix>:<queue>``
====================  ==============================  ===========================

Passwords and users never appear: a name is built from host, port and path only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from headrace.config import Settings
from headrace.connectors.naming import ConnectionURL, resolve

_PORTS = {"postgresql": 5432, "mysql": 3306, "redis": 6379}


@dataclass(frozen=True)
class DatasetName:
    """One dataset: ``namespace`` (the data source) and ``name`` (inside it)."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        """``namespace/name`` as one string (``postgres://h:5432/db.public.customers``)."""
        if self.namespace == "file":
            return f"file://{self.name}"
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name}


def table_dataset(conn: ConnectionURL, table: str, schema: str | None = None) -> DatasetName:
    """The dataset of ``table`` (optionally ``schema.table``) in the database of ``conn``.

    Args:
        conn: the parsed connection URL.
        table: the table, possibly qualified (``staging.orders``).
        schema: the schema when ``table`` is not qualified (default: the URL's
            ``?schema=``, else ``public`` on PostgreSQL, ``main`` on DuckDB).

    Example:
        >>> table_dataset(ConnectionURL.parse("postgresql://u:pw@db:5432/crm"), "customers").uri
        'postgres://db:5432/crm.public.customers'
    """
    if "." in table and conn.backend != "sqlite":
        schema, table = table.rsplit(".", 1)
    schema = schema or conn.options.get("schema")
    if conn.backend in ("postgresql", "mysql"):
        parts = urlsplit(conn.url)
        host = parts.hostname or "localhost"
        port = parts.port or _PORTS[conn.backend]
        db = parts.path.lstrip("/") or ("postgres" if conn.backend == "postgresql" else "")
        if conn.backend == "mysql":
            return DatasetName(f"mysql://{host}:{port}", f"{schema or db}.{table}")
        return DatasetName(f"postgres://{host}:{port}", f"{db}.{schema or 'public'}.{table}")
    path = conn.path if conn.path == ":memory:" else os.path.abspath(conn.path)
    if conn.backend == "sqlite":
        return DatasetName(f"sqlite://{path}", table)
    db = Path(path).stem if path != ":memory:" else "memory"
    return DatasetName(f"duckdb://{path}", f"{db}.{schema or 'main'}.{table}")


def connection_dataset(
    url_or_name: str, table: str, settings: Settings | None, schema: str | None = None
) -> DatasetName:
    """:func:`table_dataset` of a connection name or URL (names looked up in ``settings``)."""
    return table_dataset(resolve(url_or_name, settings), table, schema)


def file_dataset(path: str | Path) -> DatasetName:
    """Local files (a file, folder or glob): namespace ``file``, the absolute path."""
    text = str(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:  # object storage: s3://bucket/key -> namespace s3://bucket, name key
        parts = urlsplit(text)
        return DatasetName(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))
    return DatasetName("file", os.path.abspath(text))


def queue_dataset(redis_url: str, queue: str, prefix: str = "bull") -> DatasetName:
    """A Redis (BullMQ) queue: namespace ``redis://host:port``, name ``prefix:queue``."""
    parts = urlsplit(redis_url)
    return DatasetName(
        f"redis://{parts.hostname or 'localhost'}:{parts.port or 6379}", f"{prefix}:{queue}"
    )


def matches(dataset: DatasetName, query: str) -> bool:
    """Whether ``query`` names ``dataset``: its URI, its name, or the name's last parts
    (``customers``, ``main.customers``)."""
    if query in (dataset.uri, dataset.name, f"{dataset.namespace}/{dataset.name}"):
        return True
    return dataset.name.endswith("." + query) or dataset.name.endswith("/" + query)
