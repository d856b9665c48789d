"""The run-state store: runs, task instances, logs and check results.

Example:
    >>> from headrace.state import open_store
    >>> store = open_store("sqlite:///.headrace/state.db")
    >>> run, created = store.create_run("etl", day, day, day + timedelta(days=1))
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.state.ids import new_run_id
from headrace.state.store_base import (
    CheckResultRecord,
    LogRecord,
    RunRecord,
    RunState,
    SlaMissRecord,
    StateStore,
    StoreUnavailableError,
    TaskInstanceRecord,
    TaskState,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from headrace.state.migrations import SCHEMA_VERSION
    from headrace.state.sql_store import SqlStateStore

# SQLAlchemy is imported when a store is opened, not with the records: a task process
# that only reads RunState (every worker of the process pool) starts without it.
_LAZY = {"SCHEMA_VERSION": "headrace.state.migrations", "SqlStateStore": "headrace.state.sql_store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "SCHEMA_VERSION",
    "CheckResultRecord",
    "LogRecord",
    "RunRecord",
    "RunState",
    "SlaMissRecord",
    "SqlStateStore",
    "StateStore",
    "StoreUnavailableError",
    "TaskInstanceRecord",
    "TaskState",
    "new_run_id",
    "open_store",
]


def open_store(url: str | URL | Path, schema: str | None = None) -> SqlStateStore:
    """Open the state store at ``url``, creating or migrating its schema.

    Safe when several processes open the same store at once: the schema is created
    or migrated exactly once, under a lock.

    Args:
        url: ``sqlite:///path/state.db`` (the parent folder is created),
            ``postgresql://user@host/db`` (psycopg 3; a schema can be chosen with
            ``?options=-csearch_path%3Dmyschema``), any SQLAlchemy URL of those two
            backends, or a path to a SQLite file.
        schema: PostgreSQL only: keep the tables in this schema (created if missing).

    Returns:
        The store; close it with ``close()`` or use it as a context manager.

    Example:
        >>> with open_store("sqlite:///.headrace/state.db") as store:
        ...     runs = store.list_runs(limit=10)
    """
    from headrace.state.connect import make_engine, normalize_url  # SQLAlchemy: see _LAZY
    from headrace.state.sql_store import SqlStateStore

    normalized = normalize_url(url)
    engine = make_engine(normalized, schema)
    store = SqlStateStore(engine, normalized)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
