"""The tables of the run-state store, one SQLAlchemy Core schema for SQLite and PostgreSQL.

Times are stored in UTC: ``timestamp with time zone`` on PostgreSQL, an ISO string on
SQLite. Both come back as timezone-aware UTC datetimes. The tables here describe the
*latest* schema version; :mod:`headrace.state.migrations` brings an older database up
to it step by step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from headrace.errors import StateError


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; naive datetimes are refused.

    Refusing naive values (instead of guessing a zone) keeps a run's logical date
    from shifting by the machine's UTC offset between writer and reader.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise StateError(
                f"Expected a datetime, got {type(value).__name__} {value!r}: "
                f"pass a timezone-aware datetime such as datetime.now(timezone.utc)."
            )
        if value.tzinfo is None or value.utcoffset() is None:
            raise StateError(
                f"Naive datetime {value.isoformat()} given to the state store: "
                f"pass a timezone-aware datetime (e.g. value.replace(tzinfo=timezone.utc))."
            )
        value = value.astimezone(UTC)
        # SQLite has no time-zone type: store the UTC wall time, re-attach UTC on read.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> JSON:
    # none_as_null: a Python None is stored as SQL NULL, so "no value" has one spelling.
    return JSON(none_as_null=True)


# BIGINT autoincrement is not a rowid alias on SQLite; INTEGER is, and is 64-bit there.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("pipeline", String(250), nullable=False),
    Column("logical_date", UTCDateTime(), nullable=False),
    Column("data_interval_start", UTCDateTime(), nullable=False),
    Column("data_interval_end", UTCDateTime(), nullable=False),
    Column("state", String(32), nullable=False),
    Column("params", _json()),
    Column("trigger", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("pid", Integer()),
    Column("hostname", String(255)),
    Column("heartbeat_at", UTCDateTime()),
    Column("error", Text()),
    Column("source_file", Text()),  # the pipeline file, so `headrace resume RUN_ID` can load it
    UniqueConstraint("pipeline", "logical_date", name="uq_runs_pipeline_logical_date"),
    Index("ix_runs_logical_date", "logical_date"),
    Index("ix_runs_state", "state"),
)

task_instances = Table(
    "task_instances",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("state", String(32), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("next_try_at", UTCDateTime()),
    Column("error", Text()),
    Column("error_kind", String(250)),
    Column("result_kind", String(32)),
    Column("result_json", _json()),
    Column("result_path", Text()),
    Column("rows", BigInteger()),
    Column("pid", Integer()),
    Column("hostname", String(255)),
    PrimaryKeyConstraint("run_id", "task_id", "map_index", name="pk_task_instances"),
)

task_logs = Table(
    "task_logs",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("text", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_task_logs_run_task", "run_id", "task_id", "id"),
)

check_results = Table(
    "check_results",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("expectation", String(250), nullable=False),
    Column("severity", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("total", BigInteger(), nullable=False),
    Column("failed", BigInteger(), nullable=False),
    Column("column", String(250)),
    Column("details", _json()),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_check_results_run_task", "run_id", "task_id"),
)

pools = Table(
    "pools",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("size", Integer(), nullable=False),  # as last configured by a driver asking for a slot
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: One row per task instance holding a slot of its pool while it runs.
pool_slots = Table(
    "pool_slots",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer(), nullable=False),
    Column("pool", String(250), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("run_id", "task_id", "map_index", name="pk_pool_slots"),
    Index("ix_pool_slots_pool", "pool"),
)

#: Tasks of scheduled runs not done by their SLA deadline; one row per (run, task), so
#: recording is idempotent across schedulers.
sla_misses = Table(
    "sla_misses",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("pipeline", String(250), nullable=False),
    Column("logical_date", UTCDateTime(), nullable=False),
    Column("deadline", UTCDateTime(), nullable=False),
    Column("sla_seconds", BigInteger(), nullable=False),
    Column("detected_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("run_id", "task_id", name="pk_sla_misses"),
    Index("ix_sla_misses_pipeline_deadline", "pipeline", "deadline"),
)

#: Variables (Airflow's ``Variable``): named values tasks read with ``ctx.var(name)``,
#: managed with ``headrace vars``; a secret one is shown as ``***`` unless revealed.
variables = Table(
    "variables",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("value", Text(), nullable=False),
    Column("secret", Boolean(), nullable=False),
    Column("description", Text()),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: Pipelines whose schedule is paused: the scheduler starts no new run of them (manual
#: runs, resumes and backfills still work). One row per paused pipeline.
paused_pipelines = Table(
    "paused_pipelines",
    metadata,
    Column("pipeline", String(250), primary_key=True),
    Column("paused_by", String(250), nullable=False),
    Column("paused_at", UTCDateTime(), nullable=False),
)

#: Every operator action (web UI, API, MCP): who did what to which target, and when.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500), nullable=False),
    Column("detail", _json()),
    Column("outcome", String(32), nullable=False),
    Index("ix_audit_log_at", "at"),
)

#: Lineage of each load: the datasets (OpenLineage namespace + name) a task read and
#: wrote in a run; ``headrace lineage``, the web graph and the catalog read it.
lineage = Table(
    "lineage",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("pipeline", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("direction", String(8), nullable=False),  # input | output
    Column("namespace", String(500), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("rows", BigInteger()),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_lineage_dataset", "namespace", "name"),
    Index("ix_lineage_pipeline", "pipeline", "task_id"),
)

#: Metrics tasks publish with ``ctx.metric(name, value, tags=...)``; ``/metrics`` shows
#: the latest value of each (pipeline, task, name, tags).
task_metrics = Table(
    "task_metrics",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("pipeline", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("name", String(250), nullable=False),
    Column("value", Float(), nullable=False),
    Column("tags", _json(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_task_metrics_name", "pipeline", "name"),
)

#: The fields a caller may set through ``update_run`` / ``update_task_instance``.
RUN_UPDATABLE = (
    "state",
    "started_at",
    "ended_at",
    "pid",
    "hostname",
    "heartbeat_at",
    "error",
    "params",
    "source_file",
)
TASK_UPDATABLE = tuple(
    c.name for c in task_instances.columns if c.name not in ("run_id", "task_id", "map_index")
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict keyed by column name."""
    return dict(row._mapping)
