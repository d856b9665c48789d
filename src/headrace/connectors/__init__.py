"""Connectors: sources (SQL databases, files) and destinations (DuckDB, PostgreSQL).

Connectors know nothing of the engine: they take URLs or :class:`~headrace.config.Settings`
and Arrow data. The incremental pieces (:class:`Cursor`, :class:`Interval`,
:class:`Checkpoint`) tie a source to a destination: the checkpoint is read from the
destination and written back in the same transaction as the load.

Example:
    >>> src = SqlSource.from_url("crm", settings, table="customers")
    >>> dest = open_destination("warehouse", settings)
    >>> cursor = Cursor("updated_at", lookback=timedelta(minutes=5), primary_key="customer_id")
    >>> extract = src.read(cursor=cursor, checkpoint=dest.checkpoint("etl", "crm.customers"))
    >>> table = extract.to_table()
    >>> dest.write(table, "customers", mode="merge", keys=["customer_id"],
    ...            dedupe_order_by="updated_at", quarantine=extract.rejects.table(),
    ...            checkpoint=Checkpoint("etl", "crm.customers", extract.cursor_max))

Values with no faithful type (±infinity timestamps, zero dates, NaN in numeric) are set
aside by the source (``extract.rejects``) and text a destination cannot store the same
way everywhere by the destination, both under a :class:`Fidelity` policy. Writing an
:class:`Extract` itself quarantines its rejects in the same load; once materialised
(``to_table()``), pass ``quarantine=extract.rejects.table()`` as above.
"""

from __future__ import annotations

from headrace.connectors.destinations import (
    Destination,
    DuckDBDestination,
    LoadResult,
    PostgresDestination,
    WriteMode,
    open_destination,
)
from headrace.connectors.fidelity import Fidelity, UnrepresentableValueError, ValuePolicy
from headrace.connectors.incremental import Checkpoint, Cursor, Interval
from headrace.connectors.naming import ConnectionFailedError, ConnectionURL, quote_ident, resolve
from headrace.connectors.sources import Extract, FileSource, MalformedRow, Source, SqlSource

__all__ = [
    "Checkpoint",
    "ConnectionFailedError",
    "ConnectionURL",
    "Cursor",
    "Destination",
    "DuckDBDestination",
    "Extract",
    "Fidelity",
    "FileSource",
    "Interval",
    "LoadResult",
    "MalformedRow",
    "PostgresDestination",
    "Source",
    "UnrepresentableValueError",
    "ValuePolicy",
    "SqlSource",
    "WriteMode",
    "open_destination",
    "quote_ident",
    "resolve",
]
