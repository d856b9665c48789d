"""The in-memory DuckDB database that checks Arrow tables: one per process, a cursor per use.

``duckdb.connect()`` costs ~16 ms, more than checking a small batch, and ``apply_checks``
runs for every task output and every streamed batch, from several threads at once. So
each process opens one empty in-memory database on first use and every use takes its
own cursor (its own connection to that database: its own registered views, safe in its
thread). The database holds no data between uses and no user settings: it is a
compute engine, not a connection to anything, which is why it may live at module level.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

_LOCK = threading.Lock()
_ENGINE: dict[int, duckdb.DuckDBPyConnection] = {}  # by process id: never used across a fork


def _engine() -> duckdb.DuckDBPyConnection:
    pid = os.getpid()
    engine = _ENGINE.get(pid)
    if engine is None:
        _ENGINE.clear()  # a parent's database, inherited through fork, is not touched
        engine = duckdb.connect(":memory:")
        # Naive timestamps mean UTC in headrace's checks; the session zone must not move them.
        engine.execute("SET GLOBAL TimeZone = 'UTC'")
        _ENGINE[pid] = engine
    return engine


@contextmanager
def memory_cursor() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of its own to the process's in-memory DuckDB database, closed after use.

    Views registered on it are seen by it alone and go when it closes.

    Example:
        >>> with memory_cursor() as con:
        ...     con.execute("SELECT 42").fetchone()
        (42,)
    """
    with _LOCK:
        cursor = _engine().cursor()
    try:
        yield cursor
    finally:
        cursor.close()
