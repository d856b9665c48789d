"""Read-only SQL for assistants: a statement check, then a connection that cannot write.

Two independent layers refuse a write, so a gap in one is caught by the other:

1. :func:`check_read_only` parses the text with sqlglot: exactly one statement, a
   query (SELECT / set operation / VALUES) at the root, no data-changing or
   administrative node anywhere inside it (a ``DELETE`` in a CTE included), and no
   function that reads server files or changes settings (``pg_read_file``,
   ``read_csv``, ``set_config`` ...). Text sqlglot cannot parse is refused.
2. The database itself: DuckDB is opened ``read_only`` with external access off (no
   file reads, no ``ATTACH``, no ``COPY``); PostgreSQL runs the statement prepared
   (one command only) in a ``READ ONLY`` transaction with a ``statement_timeout``,
   on a session whose default is read-only, and a superuser session drops to
   ``pg_read_all_data`` (which may read tables but not server files).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from headrace.connectors.naming import ConnectionURL, driver_message
from headrace.errors import ConnectorError

#: Dialect sqlglot parses with, per backend.
DIALECTS = {"duckdb": "duckdb", "postgresql": "postgres"}

#: Nodes that change data or the session, wherever they appear in the tree.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "Copy",
        "Command",
        "Set",
        "Pragma",
        "Use",
        "Grant",
        "Revoke",
        "TruncateTable",
        "Attach",
        "Detach",
        "Install",
        "LoadData",
        "Transaction",
        "Commit",
        "Rollback",
        "Into",
        "Lock",
    )
    if hasattr(exp, name)
)

#: Functions refused by name (lower case); a prefix ends with ``*``.
FORBIDDEN_FUNCTIONS = (
    "pg_read_*",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "lo_*",
    "dblink*",
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_sleep*",
    "pg_advisory*",
    "pg_logical_*",
    "pg_replication_*",
    "pg_create_*",
    "pg_drop_*",
    "nextval",
    "setval",
    "txid_current",
    "query",
    "query_table",
    "read_*",
    "*_scan",
    "glob",
    "sniff_csv",
    "parquet_*",
    "iceberg_*",
    "delta_scan",
    "getenv",
    "current_setting",
    "duckdb_secrets",
    "which_secret",
    "load",
    "install",
)


class UnsafeQueryError(ConnectorError):
    """A query that is not a single read-only SELECT; ``reason`` says what was found."""

    def __init__(self, sql: str, reason: str) -> None:
        self.sql, self.reason = sql, reason
        super().__init__(f"refused: {reason}. Only one read-only SELECT is allowed.")


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _forbidden_function(name: str) -> bool:
    for pattern in FORBIDDEN_FUNCTIONS:
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and name.endswith(pattern[1:]):
            return True
        if name == pattern:
            return True
    return False


def check_read_only(sql: str, backend: str) -> exp.Query | exp.Values:
    """The parsed statement when ``sql`` is one read-only query; otherwise :class:`UnsafeQueryError`.

    Args:
        sql: the query text.
        backend: ``duckdb`` or ``postgresql`` (the parser's dialect).

    Returns:
        The sqlglot expression of the single statement.
    """
    try:
        statements = [
            s for s in sqlglot.parse(sql, read=DIALECTS.get(backend, backend)) if s is not None
        ]
    except ParseError as exc:
        first = str(exc).splitlines()[0]
        raise UnsafeQueryError(sql, f"the statement could not be parsed ({first})") from exc
    if len(statements) != 1:
        raise UnsafeQueryError(sql, f"{len(statements)} statements given")
    root = statements[0]
    if not isinstance(root, exp.Query | exp.Values):
        raise UnsafeQueryError(sql, f"a {root.key.upper()} statement is not a query")
    for node in root.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeQueryError(sql, f"it contains {node.key.upper()}")
        if isinstance(node, exp.Func) and _forbidden_function(_function_name(node)):
            raise UnsafeQueryError(sql, f"function {_function_name(node)}() is not allowed")
    return root


@dataclass(frozen=True)
class QueryResult:
    """Columns and at most ``limit`` rows of a query; ``truncated`` when more existed."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    seconds: float


def run_read_only(
    conn: ConnectionURL,
    sql: str,
    *,
    limit: int,
    timeout_seconds: float,
    check: bool = True,
    params: Sequence[Any] | None = None,
) -> QueryResult:
    """Run one read-only query on a DuckDB or PostgreSQL connection.

    Args:
        conn: the resolved connection.
        sql: the query.
        limit: most rows returned (one more is read to tell whether there were more).
        timeout_seconds: PostgreSQL ``statement_timeout``; DuckDB is interrupted after it.
        check: run :func:`check_read_only` first; False only for SQL headrace built itself
            (quoted identifiers, bound ``params``) and for tests of the database layer.
        params: bound values (``$1`` marks for DuckDB, ``%s`` for PostgreSQL).

    Returns:
        A :class:`QueryResult`.
    """
    if check:
        check_read_only(sql, conn.backend)
    started = time.monotonic()
    if conn.backend == "duckdb":
        columns, rows = _duckdb_rows(conn, sql, limit, timeout_seconds, params)
    elif conn.backend == "postgresql":
        columns, rows = _postgres_rows(conn, sql, limit, timeout_seconds, params)
    else:
        raise ConnectorError(
            f"read-only queries run on duckdb and postgresql connections, not {conn.backend}",
            connection=conn.masked,
        )
    return QueryResult(
        columns, rows[:limit], len(rows) > limit, round(time.monotonic() - started, 3)
    )


def open_duckdb_read_only(conn: ConnectionURL) -> Any:
    """A DuckDB connection on the file of ``conn``: read-only, no file or network access.

    Returns:
        ``(connection, spill_folder)``; the caller closes the connection and removes the folder.
    """
    import duckdb

    if conn.path == ":memory:":
        raise ConnectorError(
            "an in-memory DuckDB has no data to read; name a duckdb:///file connection"
        )
    spill = tempfile.mkdtemp(prefix="headrace-mcp-")
    try:
        con = duckdb.connect(
            conn.path,
            read_only=True,
            config={
                "enable_external_access": False,
                "lock_configuration": True,
                "temp_directory": spill,
                "threads": 1,
            },
        )
    except duckdb.Error as exc:
        shutil.rmtree(spill, ignore_errors=True)
        hint = (
            " (a running pipeline is writing it: retry when the run ends)"
            if "lock" in str(exc).lower()
            else ""
        )
        raise ConnectorError(
            f"cannot open {conn.masked} read-only: {driver_message(exc, conn)}{hint}"
        ) from exc
    return con, spill


def _duckdb_rows(
    conn: ConnectionURL, sql: str, limit: int, timeout_seconds: float, params: Sequence[Any] | None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    import threading

    import duckdb

    con, spill = open_duckdb_read_only(conn)
    timer = threading.Timer(timeout_seconds, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql, list(params) if params else None)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(limit + 1)
        return columns, rows
    except duckdb.InterruptException as exc:
        raise ConnectorError(
            f"query on {conn.masked} stopped after {timeout_seconds:g} s (the query timeout); narrow it"
        ) from exc
    except duckdb.Error as exc:
        raise ConnectorError(f"query on {conn.masked} failed: {driver_message(exc, conn)}") from exc
    finally:
        timer.cancel()
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _postgres_rows(
    conn: ConnectionURL, sql: str, limit: int, timeout_seconds: float, params: Sequence[Any] | None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    import psycopg

    millis = str(max(1, int(timeout_seconds * 1000)))
    try:
        pg = psycopg.connect(
            conn.url,
            connect_timeout=10,
            options=f"-c default_transaction_read_only=on -c statement_timeout={millis}",
        )
    except psycopg.Error as exc:
        raise ConnectorError(
            f"cannot connect to {conn.masked}: {driver_message(exc, conn)}"
        ) from exc
    try:
        with pg.transaction(), pg.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (millis,))
            if conn.options.get("schema"):
                cur.execute("SELECT set_config('search_path', %s, true)", (_search_path(conn),))
            cur.execute("SELECT current_setting('is_superuser')")
            row = cur.fetchone()
            if row and row[0] == "on":
                # A superuser could read server files (pg_read_file); this role reads tables only.
                cur.execute("SET LOCAL ROLE pg_read_all_data")
            cur.execute(
                sql, list(params) if params else None, prepare=True
            )  # prepared: the server takes one command only
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchmany(limit + 1)
            raise _Rollback(columns, rows)
    except _Rollback as done:
        return done.columns, done.rows
    except psycopg.Error as exc:
        raise ConnectorError(f"query on {conn.masked} failed: {driver_message(exc, conn)}") from exc
    finally:
        pg.close()


def _search_path(conn: ConnectionURL) -> str:
    from headrace.connectors.naming import quote_ident

    return quote_ident(conn.options["schema"])


class _Rollback(Exception):
    """Leaves the read-only transaction by rollback while carrying the rows out."""

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.columns, self.rows = columns, rows


def text_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_bytes: int, cell: int = 80
) -> tuple[str, int]:
    """A compact ``|``-separated table, cut to ``max_bytes``; returns the text and rows shown.

    Args:
        columns: header names.
        rows: the rows.
        max_bytes: most UTF-8 bytes of the text.
        cell: most characters of one cell (longer ones end with ``…``).
    """

    def fmt(value: Any) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", "\\n").replace("|", "\\|")
        return text if len(text) <= cell else text[: cell - 1] + "…"

    lines = [" | ".join(fmt(c) for c in columns)]
    size = len(lines[0].encode())
    shown = 0
    for row in rows:
        line = " | ".join(fmt(v) for v in row)
        size += len(line.encode()) + 1
        if size > max_bytes:
            break
        lines.append(line)
        shown += 1
    return "\n".join(lines), shown
