"""A SQL statement as a task, on a named connection, with bound parameters.

Statements use ``:name`` placeholders, bound (never pasted) from the run context
(``:ds``, ``:data_interval_start``, ``:data_interval_end``, ``:run_id`` ...), the
pipeline params (``:full_refresh``) and the task's own ``parameters``. Write ``\\:``
for a literal colon that is not a placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from headrace.config import mask_url
from headrace.connectors.naming import ConnectionURL, resolve
from headrace.errors import ConnectorError, DefinitionError, TransientError, did_you_mean
from headrace.extras import require
from headrace.pipeline import Context, Task
from headrace.tasks.template import context_values

__all__ = ["SqlTaskError", "bind_values", "run_sql", "sql_task"]

_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "sqlite": "sqlite"}
_DRIVER_EXTRAS = {"postgresql": ("postgres", "psycopg"), "mysql": ("mysql", "pymysql")}


class SqlTaskError(ConnectorError):
    """A SQL task's statement failed on its connection.

    Args:
        what: the task, as named in messages (``"SQL task 'q'"``).
        connection: the connection's name or URL and its masked URL (``"'pg' (postgresql://u:***@h/db)"``).
        problem: what failed: the driver's error type and first line.
        location: pipeline, task, run_id as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(self, what: str, connection: str, problem: str, **location: Any) -> None:
        self.what, self.problem = what, problem
        super().__init__(f"{what} on {connection} {problem}", **location)
        self.connection = connection  # named in the message above, not again in front of it


class SqlTaskConnectionError(SqlTaskError, TransientError):
    """The database could not be reached; a retry can help."""


Parameters = Mapping[str, Any] | Callable[[Context], Mapping[str, Any]]


def bind_values(ctx: Context, parameters: Parameters | None = None) -> dict[str, Any]:
    """Context values, then pipeline params, then the task's ``parameters``, by name."""
    values = context_values(ctx)
    params = values.pop("params")
    values.update(params)
    if parameters is not None:
        values.update(parameters(ctx) if callable(parameters) else parameters)
    return values


def _sqlalchemy_url(conn: ConnectionURL) -> str:
    scheme, rest = conn.url.split("://", 1)
    return f"{_DRIVERS[conn.backend]}://{rest}"


def _needed(statement: str) -> list[str]:
    return list(text(statement).compile().params)


def _check_bound(statements: Sequence[str], values: Mapping[str, Any], what: str) -> None:
    for statement in statements:
        for name in _needed(statement):
            if name not in values:
                raise DefinitionError(
                    f"{what}: statement uses :{name} but no value has that name; known: "
                    f"{', '.join(sorted(values))}." + did_you_mean(name, values)
                )


def _rows_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.Table:
    return (
        pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows])
        if rows
        else (pa.table({c: pa.array([], pa.null()) for c in columns}))
    )


def _run_duckdb(conn: ConnectionURL, statements: Sequence[str], values: Mapping[str, Any]) -> Any:
    import duckdb

    # DuckDB has no SQLAlchemy dialect here: compile ``:name`` to ``$1`` with
    # SQLAlchemy's own placeholder parser, so every backend reads one syntax.
    dialect = postgresql.dialect(paramstyle="numeric_dollar")
    con = duckdb.connect(conn.path)
    try:
        con.execute("BEGIN TRANSACTION")
        result: Any = None
        for statement in statements:
            compiled = text(statement).compile(dialect=dialect)
            bound = compiled.construct_params(dict(values))
            args = [bound[name] for name in compiled.positiontup or []]
            sql = str(compiled)
            kind = con.extract_statements(sql)[0].type
            if kind == duckdb.StatementType.SELECT or "RETURNING" in sql.upper():
                result = con.sql(sql, params=args).to_arrow_table()
            else:
                # DuckDB answers DML with one "Count" row instead of a rowcount.
                cursor = con.execute(sql, args)
                row = cursor.fetchone() if cursor.description else None
                result = {"rowcount": row[0] if row else None}
        con.execute("COMMIT")
        return result
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _run_sqlalchemy(
    connection: Connection, statements: Sequence[str], values: Mapping[str, Any]
) -> Any:
    result: Any = None
    for statement in statements:
        clause = text(statement)
        needed = clause.compile().params
        cursor = connection.execute(clause, {k: values[k] for k in needed})
        if cursor.returns_rows:
            columns = list(cursor.keys())
            result = _rows_table(columns, cursor.fetchall())
        else:
            result = {"rowcount": cursor.rowcount}
    return result


def run_sql(
    url_or_name: str,
    statements: str | Sequence[str],
    values: Mapping[str, Any],
    *,
    settings: Any = None,
    what: str = "SQL task",
) -> pa.Table | dict[str, Any]:
    """Run ``statements`` in one transaction with ``values`` bound by name.

    Args:
        url_or_name: a connection name (``HEADRACE_CONN_<NAME>``) or URL.
        statements: one statement or several, run in order.
        values: bind values by name (extra names are ignored).
        settings: headrace Settings, to look connection names up.
        what: the task, for messages.

    Returns:
        The last statement's rows as a pyarrow Table when it returns rows, else
        ``{"rowcount": n}``.
    """
    stmts = [statements] if isinstance(statements, str) else list(statements)
    _check_bound(stmts, values, what)
    conn = resolve(url_or_name, settings)
    where = f"{url_or_name!r} ({conn.masked})"
    if conn.backend in _DRIVER_EXTRAS:
        require(*_DRIVER_EXTRAS[conn.backend], what)
    try:
        if conn.backend == "duckdb":
            return _run_duckdb(conn, stmts, values)
        # An unreachable server fails the try within 5 s instead of hanging it.
        timeouts = {"connect_timeout": 5} if conn.backend in ("postgresql", "mysql") else {}
        engine = create_engine(_sqlalchemy_url(conn), connect_args=timeouts)
        try:
            try:
                connection = engine.connect()
            except sa_exc.DBAPIError as exc:
                # Could not even connect: the database may come back, so retrying can help.
                raise SqlTaskConnectionError(
                    what, where, f"could not connect: {_first_line(exc)}"
                ) from exc
            with connection, connection.begin():
                return _run_sqlalchemy(connection, stmts, values)
        finally:
            engine.dispose()
    except (DefinitionError, SqlTaskError):
        raise
    except sa_exc.DBAPIError as exc:
        error = SqlTaskConnectionError if exc.connection_invalidated else SqlTaskError
        raise error(what, where, f"failed: {type(exc.orig).__name__}: {_first_line(exc)}") from exc
    except Exception as exc:  # DuckDB and other driver errors: one error type for the user
        raise SqlTaskError(
            what, where, f"failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = mask_url(str(original)).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def sql_task(
    sql: str | Sequence[str],
    *,
    conn: str,
    task_id: str,
    parameters: Parameters | None = None,
    **options: Any,
) -> Task[..., Any]:
    """A task that runs SQL on a named connection with bound parameters.

    Args:
        sql: one statement or several (one transaction), with ``:name`` placeholders.
        conn: connection name (``HEADRACE_CONN_<NAME>``) or URL.
        task_id: the task's name.
        parameters: extra bind values, or a function of the Context returning them.
        options: task policies passed to ``@task`` (retries, timeout, pool, ...).

    Returns:
        A Task whose result is the rows of the last statement (a pyarrow Table, staged
        like any table result) or ``{"rowcount": n}``.

    Example:
        >>> purge = sql_task("DELETE FROM staging.customers WHERE load_date < :ds",
        ...                  conn="warehouse", task_id="purge_staging")
    """
    what = f"SQL task {task_id!r}"
    stmts = [sql] if isinstance(sql, str) else list(sql)
    if not stmts or not all(isinstance(s, str) and s.strip() for s in stmts):
        raise DefinitionError(
            "sql must be a non-empty statement or list of statements", task=task_id
        )

    def run_statement(ctx: Context) -> Any:
        return run_sql(conn, stmts, bind_values(ctx, parameters), settings=ctx.settings, what=what)

    run_statement.__name__ = run_statement.__qualname__ = task_id
    run_statement.__doc__ = f"SQL on {conn}: {stmts[0][:200]}"
    run_statement.__headrace_sql__ = (conn, tuple(stmts))  # type: ignore[attr-defined]  # lineage reads it
    return Task(run_statement, task_id=task_id, **options)
