"""The private internals of other libraries that headrace relies on, checked by name.

Two modules reach past a library's public API, each for a measured reason:
``state/fastpath.py`` (SQLAlchemy's compiled-statement fields, for SQLite writes at
the driver's speed) and ``queue/workarounds.py`` (bullmq's Worker internals, for the
fixes of its defects). When an upgrade renames or removes one of them these tests
fail first, with the library and version in the message, instead of a worker or the
state store failing at run time.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from headrace.state.fastpath import Prepared


def _broken(lib: str, what: str) -> str:
    return f"{lib} {version(lib)} changed {what}: revisit the override that relies on it"


def test_sqlalchemy_compiled_statement_fields() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("doc", sa.JSON),
    )
    compiled = table.insert().compile(dialect=sqlite.dialect(), column_keys=["id", "at", "doc"])
    for field in ("positiontup", "binds", "string"):
        assert hasattr(compiled, field), _broken("sqlalchemy", f"SQLCompiler.{field}")
    prepared = Prepared.compile(table.insert(), sqlite.dialect(), ["id", "at", "doc"])
    assert prepared.names == ("id", "at", "doc"), _broken("sqlalchemy", "positiontup order")
    assert prepared.sql.count("?") == 3, _broken("sqlalchemy", "the SQLite placeholder style")
    # JSON goes through its own bind processor (a str), the integer passes as is
    row = prepared.row({"id": 1, "at": None, "doc": {"a": 1}})
    assert row[0] == 1 and row[2] == '{"a": 1}', _broken("sqlalchemy", "bind processors")


# Worker attributes and methods that headrace.queue.workarounds overrides or reads.
BULLMQ_WORKER_METHODS = (
    "getNextJob",
    "processJob",
    "close",
    "run",
    "moveToActive",
    "nextJobFromJobData",
    "emit",
)
BULLMQ_WORKER_STATE = (
    "opts",
    "scripts",
    "limitUntil",
    "processor",
    "paused",
    "jobs",
    "forceClosing",
    "closing",
    "blockingRedisConnection",
    "lockManager",
)


def test_bullmq_worker_internals() -> None:
    bullmq = pytest.importorskip("bullmq")
    from bullmq import custom_errors, redis_connection, scripts

    for name in BULLMQ_WORKER_METHODS:
        assert callable(getattr(bullmq.Worker, name, None)), _broken(
            "bullmq", f"Worker.{name} (a method)"
        )
    init = inspect.getsource(bullmq.Worker.__init__)
    for name in BULLMQ_WORKER_STATE:
        assert f"self.{name}" in init or hasattr(bullmq.Worker, name), _broken(
            "bullmq", f"Worker.{name} (set in __init__)"
        )
    assert callable(getattr(scripts, "raw2NextJobData", None)), _broken(
        "bullmq", "scripts.raw2NextJobData"
    )
    for name in ("DelayedError", "UnrecoverableError", "WaitingChildrenError"):
        assert hasattr(custom_errors, name), _broken("bullmq", f"custom_errors.{name}")
    assert hasattr(redis_connection, "RedisConnection"), _broken(
        "bullmq", "redis_connection.RedisConnection"
    )
    params = inspect.signature(bullmq.Worker.processJob).parameters
    assert list(params)[:3] == ["self", "job", "token"], _broken(
        "bullmq", "Worker.processJob(job, token)"
    )
