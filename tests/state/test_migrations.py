"""Schema versions: baseline creation, ordered steps, refusal of foreign or newer databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, inspect, select
from sqlalchemy.engine import Connection

from headrace.errors import StateError
from headrace.state import SCHEMA_VERSION, SqlStateStore, open_store
from headrace.state.migrations import BASELINE_VERSION, Migration, schema_version

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


STEPS = (
    Migration(BASELINE_VERSION + 1, "add run_labels", _add_labels_table),
    Migration(BASELINE_VERSION + 2, "add run_labels.priority", _add_priority_column),
)


def test_steps_apply_once_in_order_and_are_recorded(store: SqlStateStore) -> None:
    assert store.migrate(STEPS[:1]) == (BASELINE_VERSION, BASELINE_VERSION + 1)
    assert store.schema_version() == BASELINE_VERSION + 1
    assert store.migrate(STEPS) == (BASELINE_VERSION + 1, BASELINE_VERSION + 2)
    assert store.migrate(STEPS) == (BASELINE_VERSION + 2, BASELINE_VERSION + 2)  # no-op
    columns = [c["name"] for c in inspect(store.engine).get_columns("run_labels")]
    assert columns == ["run_id", "label", "priority"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema_version).order_by(schema_version.c.version)).all()
    assert [(r.version, r.description) for r in rows] == [
        (1, "baseline (create all tables)"),
        (2, "add run_labels"),
        (3, "add run_labels.priority"),
    ]
    assert all(r.applied_at.tzinfo is not None for r in rows)


def test_a_failing_step_leaves_the_previous_version(store: SqlStateStore) -> None:
    def broken(conn: Connection) -> None:
        _add_labels_table(conn)
        conn.exec_driver_sql("SELECT * FROM no_such_table")

    with pytest.raises(StateError, match="migrate the schema failed"):
        store.migrate([Migration(BASELINE_VERSION + 1, "broken", broken)])
    assert store.schema_version() == BASELINE_VERSION
    assert not inspect(store.engine).has_table("run_labels")  # DDL rolled back too


def test_a_store_newer_than_this_code_is_refused(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        store.migrate(STEPS)
    with pytest.raises(
        StateError, match=r"schema version 3, newer than this headrace understands \(1\)"
    ):
        open_store(url, schema=schema)


def test_steps_must_be_numbered_in_order(store: SqlStateStore) -> None:
    with pytest.raises(StateError, match=r"must be numbered \[2, 3\] in order, got \[3, 2\]"):
        store.migrate(tuple(reversed(STEPS)))


def test_tables_not_made_by_headrace_are_left_alone(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store, store.engine.begin() as conn:
        # Make it look like someone else's database: our tables, no version table.
        conn.exec_driver_sql("DROP TABLE headrace_schema_version")
    with pytest.raises(
        StateError, match="no headrace_schema_version table: it was not created by headrace"
    ):
        open_store(url, schema=schema)
