"""SQLite hot-path writes: Core statements compiled once, run straight on the driver.

The engine writes every task state change, log and check result. Through
``Connection.execute`` each write spends most of its time in SQLAlchemy's per-call
machinery (execution context, events, result objects), two to three times what
SQLite itself needs. Here a statement is still built with SQLAlchemy Core and
compiled by its SQLite dialect (quoting, placeholders), and each parameter still
goes through its column type's own bind processor (UTC datetimes, JSON), but the
compiled SQL runs on the ``sqlite3`` connection directly, inside an explicit
``BEGIN IMMEDIATE`` ... ``COMMIT``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from headrace.errors import StateError
from headrace.state.store_base import StoreUnavailableError


@dataclass(frozen=True)
class Prepared:
    """A compiled statement: SQL text, bind names in placeholder order, and their processors.

    Args:
        sql: the statement as the dialect compiled it, with ``?`` placeholders.
        names: the bind parameter name of each placeholder, in order.
        processors: each name's bind processor (None when the value passes as is).
    """

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(
        cls, stmt: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> Prepared:
        """Compile ``stmt`` once for ``dialect`` (an INSERT needs its ``column_keys``)."""
        compiled = cast(
            SQLCompiler,
            stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None),
        )
        names = tuple(compiled.positiontup or ())
        processors = tuple(compiled.binds[name].type.bind_processor(dialect) for name in names)
        return cls(compiled.string, names, processors)

    def row(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for one execution."""
        return tuple(
            params[name] if process is None else process(params[name])
            for name, process in zip(self.names, self.processors, strict=True)
        )


class RowsMissing(Exception):
    """A step matched fewer rows than it had parameter sets; nothing was written.

    A control-flow signal between this module and the store, not a headrace error:
    the store looks up which row is missing and raises a StateError naming it.
    """


def write(
    conn: sqlite3.Connection,
    steps: Sequence[tuple[Prepared, list[tuple[Any, ...]]]],
    require_all: bool = False,
) -> None:
    """Run each (statement, rows) with ``executemany`` in one write transaction.

    Args:
        conn: the ``sqlite3`` connection, in autocommit mode (``isolation_level=None``).
        steps: statements and their positional parameter rows, run in order.
        require_all: roll back and raise :class:`RowsMissing` unless every row matched
            (UPDATEs of rows that must exist).

    Raises:
        sqlite3.Error: after rolling the transaction back.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        for prepared, rows in steps:
            matched = conn.executemany(prepared.sql, rows).rowcount
            if require_all and matched != len(rows):
                raise RowsMissing(prepared.sql)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_checked(
    conn: sqlite3.Connection,
    steps: Sequence[tuple[Prepared, list[tuple[Any, ...]]]],
    require_all: bool,
    what: str,
    *,
    service: str,
    location: Mapping[str, Any] | None = None,
) -> bool:
    """:func:`write`, with driver errors turned into the errors the store raises.

    Args:
        what: the operation, for messages.
        service: the store's masked URL.
        location: pipeline, run_id, task... kept on an error as fields.

    Returns:
        False when ``require_all`` found a missing row (nothing written), else True.

    Raises:
        IntegrityError: SQLAlchemy's, as the Core path raises it (a missing run).
        StoreUnavailableError: the database stayed locked or cannot be opened.
        StateError: any other driver failure.
    """
    try:
        write(conn, steps, require_all)
    except RowsMissing:
        return False
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(f"{service}: {what}", None, exc) from exc
    except sqlite3.OperationalError as exc:
        raise StoreUnavailableError(
            f"{what} failed: {exc}", service=service, **(location or {})
        ) from exc
    except sqlite3.Error as exc:
        raise StateError(
            f"State store {service}: {what} failed: {exc}", **(location or {})
        ) from exc
    return True
