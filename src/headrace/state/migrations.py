"""Schema versions of the state store and how a database is brought up to date.

Why not Alembic: the store ships inside a library and migrates itself when it is
opened, on SQLite and PostgreSQL, from several processes at once. What that needs is
a version table, an ordered list of steps and a lock, which fits in this module; an
Alembic environment (``env.py``, script folder, a second dependency) would add files
to package and nothing the steps need, since they are written with SQLAlchemy Core
anyway.

How it works (the same scheme Alembic recommends for new databases, "create_all then
stamp head"):

* An empty database gets the latest tables straight from :mod:`headrace.state.schema`
  and is stamped with :data:`SCHEMA_VERSION`.
* A database stamped with an older version gets each later step of
  :data:`MIGRATIONS`, in order, in the same transaction as its new stamp.
* Everything happens under a lock (``pg_advisory_xact_lock`` on PostgreSQL, the
  ``BEGIN IMMEDIATE`` write lock on SQLite), so two processes opening the same store
  at once migrate it exactly once.

A schema change therefore means three edits: change the table in ``schema.py`` (for
new databases), append a step here (for existing ones), and add the new version's
golden file under ``tests/state/golden/``; ``tests/state/test_migrations.py`` fails
when the tables of a fresh store differ from the golden file of SCHEMA_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, inspect, select
from sqlalchemy.engine import Connection

from headrace.errors import StateError
from headrace.state.schema import UTCDateTime, metadata, utcnow

#: The version a database built from :mod:`headrace.state.schema` has.
BASELINE_VERSION = 1


@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``.

    Args:
        version: the version the database has after this step.
        description: what changes, one line (stored in the version table).
        apply: runs the step's DDL/DML on a connection inside the migration transaction.
    """

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create(*names: str) -> Callable[[Connection], None]:
    """A step creating tables of :mod:`headrace.state.schema` as they are defined there."""

    def apply(conn: Connection) -> None:
        metadata.create_all(conn, tables=[metadata.tables[name] for name in names])

    return apply


def _source_file_and_sla_misses(conn: Connection) -> None:
    """Add runs.source_file; move the scheduler's own SLA table into the store's schema."""
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"ALTER TABLE {quote('runs')} ADD COLUMN {quote('source_file')} TEXT")
    metadata.tables["sla_misses"].create(conn)
    if not inspect(conn).has_table("headrace_sla_misses"):
        return
    # Created by earlier schedulers outside the migrations; its SQLite times are naive UTC.
    old = Table("headrace_sla_misses", MetaData(), autoload_with=conn)
    runs = metadata.tables["runs"]
    rows = conn.execute(select(old).where(old.c.run_id.in_(select(runs.c.run_id)))).mappings().all()
    if rows:
        conn.execute(
            insert(metadata.tables["sla_misses"]),
            [
                {k: _utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
                for row in rows
            ],
        )
    old.drop(conn)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: Steps after the baseline, oldest first. Append; never edit or reorder a released step.
#: A step creating tables from schema.py is only safe while later steps do not change them;
#: once they do, spell the step's tables out here.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "pools and pool_slots (task pools across runs)", _create("pools", "pool_slots")),
    Migration(
        3,
        "runs.source_file; sla_misses (moved from headrace_sla_misses)",
        _source_file_and_sla_misses,
    ),
    Migration(4, "variables (named values for tasks, secrets masked)", _create("variables")),
    Migration(
        5, "paused_pipelines and audit_log (web actions)", _create("paused_pipelines", "audit_log")
    ),
    Migration(
        6,
        "lineage (datasets each task read and wrote); task_metrics (ctx.metric)",
        _create("lineage", "task_metrics"),
    ),
)

SCHEMA_VERSION = BASELINE_VERSION + len(MIGRATIONS)

_version_metadata = MetaData()
schema_version = Table(
    "headrace_schema_version",
    _version_metadata,
    Column("version", Integer(), primary_key=True, autoincrement=False),
    Column("description", String(250), nullable=False),
    Column("applied_at", UTCDateTime(), nullable=False),
)


def current_version(conn: Connection) -> int | None:
    """The schema version stamped in the database, or None for an unversioned one."""
    if not inspect(conn).has_table(schema_version.name):
        return None
    return conn.execute(select(func.max(schema_version.c.version))).scalar()


def lock(conn: Connection) -> None:
    """Serialise migrations of one store; released when the transaction ends.

    SQLite callers already hold the write lock (``BEGIN IMMEDIATE``), so only
    PostgreSQL needs an explicit lock, one per schema so that separate stores in
    one database do not wait for each other.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '') || %(name)s))",
            {"name": ".headrace_state"},
        )


def migrate(
    conn: Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int | None, int]:
    """Bring the database on ``conn`` to the latest version, inside the caller's transaction.

    Args:
        conn: a connection with an open write transaction; the caller commits.
        migrations: the ordered steps (tests pass their own).

    Returns:
        (version before, version after); before is None for a database that was empty.
    """
    lock(conn)
    latest = BASELINE_VERSION + len(migrations)
    _check_steps(migrations)
    before = current_version(conn)
    if before is None:
        existing = [t for t in metadata.sorted_tables if inspect(conn).has_table(t.name)]
        if existing:
            raise StateError(
                f"The state store holds table(s) {', '.join(t.name for t in existing)} but no "
                f"{schema_version.name} table: it was not created by headrace. Point "
                f"HEADRACE_STATE_URL at an empty database or schema."
            )
        _version_metadata.create_all(conn)
        metadata.create_all(conn)
        conn.execute(
            insert(schema_version),
            {
                "version": latest,
                "description": "baseline (create all tables)",
                "applied_at": utcnow(),
            },
        )
        return None, latest
    if before > latest:
        raise StateError(
            f"The state store is at schema version {before}, newer than this headrace "
            f"understands ({latest}): upgrade headrace to use this store."
        )
    for step in migrations:
        if step.version <= before:
            continue
        step.apply(conn)
        conn.execute(
            insert(schema_version),
            {"version": step.version, "description": step.description, "applied_at": utcnow()},
        )
    return before, latest


def _check_steps(migrations: Sequence[Migration]) -> None:
    expected = list(range(BASELINE_VERSION + 1, BASELINE_VERSION + 1 + len(migrations)))
    got = [m.version for m in migrations]
    if got != expected:
        raise StateError(
            f"Migration steps must be numbered {expected} in order, got {got}: "
            f"fix MIGRATIONS in headrace/state/migrations.py."
        )
