"""The in-memory DuckDB database that checks Arrow tables: one per process, a cursor per use.

``duckdb.connect()`` costs ~16 ms, more than checking a small batch, and ``apply_checks``
runs for every task output and every streamed batch, from several threads at once. So
each process opens an empty in-memory database on first use (two: a single-threaded one
for small tables, where threads only hand work back and forth, and one with DuckDB's
threads for large ones) and every use takes its own cursor (its own connection to that
database: its own registered views, safe in its thread). The database holds no data between uses and no user settings: it is a
compute engine, not a connection to anything, which is why it may live at module level.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

_LOCK = threading.Lock()
#: by process id (never used across a fork), then single-threaded or not
_ENGINES: dict[int, dict[bool, duckdb.DuckDBPyConnection]] = {}
#: DuckDB's row group: a smaller Arrow table is one scan task, so a second thread has
#: nothing to scan and only adds hand-offs (~1 ms of waiting per query on a busy machine)
SINGLE_THREAD_ROWS = 122_880
_SMALL_TABLE_SKIPS = (
    "expression_rewriter",
    "join_order",
    "statistics_propagation",
    "common_subexpressions",
    "filter_pushdown",
    "projection_placement",
    "common_subplan",
    "unused_columns",  # apply_checks registers only the columns its checks read
    "column_lifetime",
)


def _engine(single_threaded: bool) -> duckdb.DuckDBPyConnection:
    pid = os.getpid()
    engines = _ENGINES.get(pid)
    if engines is None:
        _ENGINES.clear()  # a parent's databases, inherited through fork, are not touched
        engines = _ENGINES[pid] = {}
    engine = engines.get(single_threaded)
    if engine is None:
        engine = duckdb.connect(":memory:")
        # Naive timestamps mean UTC in headrace's checks; the session zone must not move them.
        engine.execute("SET GLOBAL TimeZone = 'UTC'")
        if single_threaded:
            engine.execute("SET GLOBAL threads = 1")
            # On a small table, planning is most of a query's cost: these passes take
            # ~0.5 ms of the ~2.5 ms a check query costs on 1,000 rows and win nothing
            # back on 100,000 (measured). They rewrite plans, never results.
            engine.execute(f"SET GLOBAL disabled_optimizers = '{','.join(_SMALL_TABLE_SKIPS)}'")
        engines[single_threaded] = engine
    return engine


@contextmanager
def memory_cursor(rows: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of its own to the process's in-memory DuckDB database, closed after use.

    Views registered on it are seen by it alone and go when it closes.

    Args:
        rows: the rows the queries will read, if known: below ``SINGLE_THREAD_ROWS`` the
            cursor belongs to a single-threaded database (``SET threads`` is per database).

    Example:
        >>> with memory_cursor() as con:
        ...     con.execute("SELECT 42").fetchone()
        (42,)
    """
    single_threaded = rows is None or rows < SINGLE_THREAD_ROWS
    with _LOCK:
        cursor = _engine(single_threaded).cursor()
    try:
        yield cursor
    finally:
        cursor.close()
