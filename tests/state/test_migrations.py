"""Schema versions: baseline creation, ordered steps, refusal of foreign or newer databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.engine import Connection

from headrace.errors import StateError
from headrace.state import SCHEMA_VERSION, SqlStateStore, open_store
from headrace.state.migrations import BASELINE_VERSION, MIGRATIONS, Migration, schema_version
from headrace.state.schema import utcnow

GOLDEN = Path(__file__).parent / "golden"


def describe_schema(store: SqlStateStore) -> dict[str, dict[str, object]]:
    """Tables, columns (with NOT NULL), keys and indexes, comparable across backends."""
    insp = inspect(store.engine)
    out: dict[str, dict[str, object]] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [
                f"{c['name']}{'' if c['nullable'] else ' not null'}"
                for c in insp.get_columns(table)
            ],
            "primary_key": insp.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(sorted(u["column_names"]) for u in insp.get_unique_constraints(table)),
            "indexes": sorted(
                str(ix["name"]) for ix in insp.get_indexes(table) if not ix.get("unique")
            ),
        }
    return out


def test_fresh_store_matches_the_golden_schema_of_its_version(store: SqlStateStore) -> None:
    golden = GOLDEN / f"schema_v{SCHEMA_VERSION}.json"
    assert golden.exists(), f"add {golden} for schema version {SCHEMA_VERSION}"
    assert describe_schema(store) == json.loads(golden.read_text())


def _add_labels_table(conn: Connection) -> None:
    labels = Table(
        "run_labels",
        MetaData(),
        Column("run_id", String(64), primary_key=True),
        Column("label", String(100), nullable=False),
    )
    labels.create(conn)


def _add_priority_column(conn: Connection) -> None:
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(
        f"ALTER TABLE {quote('run_labels')} ADD COLUMN {quote('priority')} INTEGER"
    )


# Test steps come after the real ones: a fresh store is at SCHEMA_VERSION.
STEPS = (
    *MIGRATIONS,
    Migration(SCHEMA_VERSION + 1, "add run_labels", _add_labels_table),
    Migration(SCHEMA_VERSION + 2, "add run_labels.priority", _add_priority_column),
)


def test_steps_apply_once_in_order_and_are_recorded(store: SqlStateStore) -> None:
    latest = SCHEMA_VERSION
    assert store.migrate(STEPS[:-1]) == (latest, latest + 1)
    assert store.schema_version() == latest + 1
    assert store.migrate(STEPS) == (latest + 1, latest + 2)
    assert store.migrate(STEPS) == (latest + 2, latest + 2)  # no-op
    columns = [c["name"] for c in inspect(store.engine).get_columns("run_labels")]
    assert columns == ["run_id", "label", "priority"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema_version).order_by(schema_version.c.version)).all()
    assert [(r.version, r.description) for r in rows] == [
        (latest, "baseline (create all tables)"),
        (latest + 1, "add run_labels"),
        (latest + 2, "add run_labels.priority"),
    ]
    assert all(r.applied_at.tzinfo is not None for r in rows)


def test_a_failing_step_leaves_the_previous_version(store: SqlStateStore) -> None:
    def broken(conn: Connection) -> None:
        _add_labels_table(conn)
        conn.exec_driver_sql("SELECT * FROM no_such_table")

    with pytest.raises(StateError, match="migrate the schema failed"):
        store.migrate([*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "broken", broken)])
    assert store.schema_version() == SCHEMA_VERSION
    assert not inspect(store.engine).has_table("run_labels")  # DDL rolled back too


def test_a_store_newer_than_this_code_is_refused(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        store.migrate(STEPS)
    with pytest.raises(
        StateError,
        match=rf"schema version {SCHEMA_VERSION + 2}, newer than this headrace understands \({SCHEMA_VERSION}\)",
    ):
        open_store(url, schema=schema)


def test_steps_must_be_numbered_in_order(store: SqlStateStore) -> None:
    a, b = SCHEMA_VERSION + 1, SCHEMA_VERSION + 2
    with pytest.raises(
        StateError, match=rf"must be numbered \[.*{a}, {b}\] in order, got \[.*{b}, {a}\]"
    ):
        store.migrate((*MIGRATIONS, STEPS[-1], STEPS[-2]))


def test_tables_not_made_by_headrace_are_left_alone(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store, store.engine.begin() as conn:
        # Make it look like someone else's database: our tables, no version table.
        conn.exec_driver_sql("DROP TABLE headrace_schema_version")
    with pytest.raises(
        StateError, match="no headrace_schema_version table: it was not created by headrace"
    ):
        open_store(url, schema=schema)


def test_a_version_1_store_is_upgraded_to_the_latest(store_target: tuple[str, str | None]) -> None:
    """A store made by the first release (baseline tables only) gets every real step."""
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        v1 = json.loads((GOLDEN / f"schema_v{BASELINE_VERSION}.json").read_text())
        added = sorted(set(describe_schema(store)) - set(v1))
        columns = {t: _added_columns(store, t, c["columns"]) for t, c in v1.items()}
    with open_store(url, schema=schema) as store, store.engine.begin() as conn:
        # Make it what release 1 created: the baseline tables and version 1.
        for table in added:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for table, new in columns.items():
            for column in new:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute(schema_version.delete())
        conn.execute(
            schema_version.insert(),
            {"version": 1, "description": "baseline", "applied_at": utcnow()},
        )
    with open_store(url, schema=schema) as upgraded:
        assert upgraded.schema_version() == SCHEMA_VERSION
        assert describe_schema(upgraded) == json.loads(
            (GOLDEN / f"schema_v{SCHEMA_VERSION}.json").read_text()
        )


def _added_columns(store: SqlStateStore, table: str, old: list[str]) -> list[str]:
    names = {c.split()[0] for c in old}
    return [c["name"] for c in inspect(store.engine).get_columns(table) if c["name"] not in names]


def test_the_schedulers_old_sla_table_moves_into_the_store(
    store_target: tuple[str, str | None],
) -> None:
    """Schedulers before version 3 kept SLA misses in headrace_sla_misses, outside the migrations."""
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        day = datetime(2024, 1, 1, tzinfo=UTC)
        run, _ = store.create_run("etl", day, day, day)
    with open_store(url, schema=schema) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE sla_misses")
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN source_file")
        old = Table(  # as scheduler/sla.py created it
            "headrace_sla_misses",
            MetaData(),
            Column("run_id", String(64), primary_key=True),
            Column("task_id", String(250), primary_key=True),
            Column("pipeline", String(250), nullable=False, index=True),
            Column("logical_date", DateTime(timezone=True), nullable=False),
            Column("deadline", DateTime(timezone=True), nullable=False),
            Column("sla_seconds", Integer, nullable=False),
            Column("detected_at", DateTime(timezone=True), nullable=False),
        )
        old.create(conn)
        when = datetime(2024, 1, 2, 3, tzinfo=UTC)
        conn.execute(
            old.insert(),
            [
                {
                    "run_id": run.run_id,
                    "task_id": "load",
                    "pipeline": "etl",
                    "logical_date": when,
                    "deadline": when,
                    "sla_seconds": 10800,
                    "detected_at": when,
                },
                {
                    "run_id": "deleted-run",
                    "task_id": "load",
                    "pipeline": "etl",
                    "logical_date": when,
                    "deadline": when,
                    "sla_seconds": 10800,
                    "detected_at": when,
                },
            ],
        )
        conn.execute(schema_version.delete())
        conn.execute(
            schema_version.insert(), {"version": 2, "description": "pools", "applied_at": utcnow()}
        )
    with open_store(url, schema=schema) as upgraded:
        assert upgraded.schema_version() == SCHEMA_VERSION
        (miss,) = upgraded.list_sla_misses()  # the row of a run that no longer exists is dropped
        assert (miss.run_id, miss.task_id, miss.deadline, miss.sla) == (
            run.run_id,
            "load",
            when,
            timedelta(hours=3),
        )
        assert not inspect(upgraded.engine).has_table("headrace_sla_misses")
        assert upgraded.get_run(run.run_id).source_file is None
