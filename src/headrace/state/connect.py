"""Turning a state-store URL into a configured SQLAlchemy engine.

SQLite gets WAL, ``synchronous=NORMAL``, a busy timeout and explicit
``BEGIN IMMEDIATE`` write transactions; PostgreSQL gets psycopg 3 and, when asked,
a ``search_path`` fixed at connection start so each store can live in its own schema.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.pool import StaticPool

from headrace.config import mask_url
from headrace.errors import StateError, did_you_mean
from headrace.extras import require

#: Seconds a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: ``Connection.info`` key telling the begin hook how to open the transaction.
BEGIN_KEY = "headrace_begin"

_BACKENDS = ("sqlite", "postgresql")


class NotJSONError(StateError):
    """A value bound for a JSON column cannot be serialised.

    Args:
        value_type: the type of the value (or of the part that is not JSON).
        reason: what ``json.dumps`` said.
    """

    def __init__(self, value_type: str, reason: str) -> None:
        self.value_type, self.reason = value_type, reason
        super().__init__(
            f"value is not JSON-serialisable ({reason}); store JSON types only "
            "(dict, list, str, int, float, bool, None), or stage tables as files."
        )


def dump_json(value: Any) -> str:
    """``json.dumps`` for the JSON columns, failing with a :class:`StateError`.

    The drivers serialise at different depths (SQLAlchemy for SQLite, psycopg for
    PostgreSQL) and would otherwise raise a bare TypeError from either place.
    """
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotJSONError(type(value).__name__, str(exc)) from exc


def normalize_url(url: str | URL | Path) -> URL:
    """A SQLAlchemy URL for the store: ``postgresql://`` uses psycopg 3, a bare path means SQLite.

    Args:
        url: ``sqlite:///path/state.db``, ``postgresql://user@host/db``, a SQLAlchemy
            URL, or a filesystem path to a SQLite file.

    Returns:
        The URL with an explicit driver.
    """
    if isinstance(url, Path) or (isinstance(url, str) and "://" not in url):
        return URL.create("sqlite", database=str(Path(url).resolve()))
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StateError(
            f"State store URL {mask_url(str(url))!r} is not a valid URL: {exc}. "
            f"Use sqlite:///path/state.db or postgresql://user@host/db."
        ) from exc
    backend = parsed.drivername.split("+", 1)[0]
    if backend in ("postgresql", "postgres"):
        driver = parsed.drivername.split("+", 1)[1] if "+" in parsed.drivername else "psycopg"
        return parsed.set(drivername=f"postgresql+{driver}")
    if backend == "sqlite":
        return parsed
    raise StateError(
        f"State store URL {mask_url(str(url))!r}: backend {backend!r} is not supported; "
        f"use sqlite:///path/state.db or postgresql://user@host/db."
        + did_you_mean(backend, _BACKENDS)
    )


def make_engine(url: URL, schema: str | None = None) -> Engine:
    """An engine for the store at ``url``, tuned for its backend.

    Args:
        url: a URL from :func:`normalize_url`.
        schema: PostgreSQL schema holding the store's tables (created if missing).
    """
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise StateError(
                f"schema={schema!r} applies to PostgreSQL only; the SQLite store "
                f"{mask_url(url.render_as_string(hide_password=False))} has no schemas."
            )
        return _sqlite_engine(url)
    return _postgres_engine(url, schema)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    }
    if in_memory:
        # Every connection to ":memory:" is a new empty database: share one.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, json_serializer=dump_json, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, which would otherwise
        # open deferred transactions that fail with SQLITE_BUSY instead of waiting
        # when two processes upgrade their read lock to a write lock at once.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if not in_memory:
            _enter_wal(cur)
        # NORMAL is durable across application crashes in WAL mode; only a power
        # loss can drop the last commits, and it never corrupts the file.
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: through exec_driver_sql this costs a quarter of a
        # hot-path update, and it needs no parameters or result.
        conn.connection.driver_connection.execute(conn.info.get(BEGIN_KEY, "BEGIN IMMEDIATE"))

    return engine


def _enter_wal(cur: Any) -> None:
    """Switch the file to WAL, waiting out other processes doing the same.

    Turning a new file into WAL takes an exclusive lock, and SQLite answers
    ``database is locked`` at once (without the busy handler) when another
    connection holds the file in that moment — seen with six processes opening a
    new store together. Retry for as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


#: Seconds to wait for PostgreSQL to accept a connection.
CONNECT_TIMEOUT = 5


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    if url.get_driver_name() == "psycopg":
        require("postgres", "psycopg", "The PostgreSQL state store")
    # An unreachable server is one clear error within 5 s (exit code 5 in the CLI), not a hang.
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
    if schema is not None:
        quoted = '"' + schema.replace('"', '""') + '"'
        # libpq options: backslash-escape spaces and backslashes inside the value.
        escaped = quoted.replace("\\", "\\\\").replace(" ", "\\ ")
        connect_args["options"] = f"-csearch_path={escaped}"
    # pre_ping: a store lives as long as a scheduler; survive a PostgreSQL restart.
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=5,
        json_serializer=dump_json,
    )
    if schema is not None:
        quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
        try:
            with engine.begin() as conn:
                exists = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %(name)s", {"name": schema}
                ).first()
                if not exists:
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        except IntegrityError:
            pass  # another process created it between our check and our CREATE
        except Exception as exc:
            engine.dispose()
            raise StateError(
                f"Could not create schema {schema!r} in the state store "
                f"{mask_url(url.render_as_string(hide_password=False))}: {exc}"
            ) from exc
    return engine
