"""Opening stores: URL forms, SQLite tuning, PostgreSQL schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from headrace.errors import StateError, TransientError
from headrace.state import StoreUnavailableError, open_store
from headrace.state.connect import normalize_url

DAY = datetime(2024, 1, 1, tzinfo=UTC)


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_a_bare_path_means_a_sqlite_file(tmp_path: Path) -> None:
    url = normalize_url(tmp_path / "s.db")
    assert (url.drivername, url.database) == ("sqlite", str(tmp_path / "s.db"))


def test_unsupported_backends_are_named_without_the_password() -> None:
    with pytest.raises(StateError) as info:
        normalize_url("mysql://root:secret@h/db")
    assert "backend 'mysql' is not supported" in str(info.value)
    assert "secret" not in str(info.value) and "root:***@h" in str(info.value)
    with pytest.raises(StateError, match="Did you mean 'postgresql'"):
        normalize_url("postgresq://h/db")


def test_sqlite_store_creates_its_folder_and_is_tuned(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    with open_store(f"sqlite:///{path}") as store:
        assert path.exists()
        with store.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("busy_timeout") == 30000
            assert pragma("foreign_keys") == 1


def test_in_memory_sqlite_store_works() -> None:
    with open_store("sqlite://") as store:
        run, created = store.create_run("mem", DAY, DAY, DAY)
        assert created and store.get_run(run.run_id) == run


def test_schema_argument_is_refused_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="applies to PostgreSQL only"):
        open_store(tmp_path / "s.db", schema="x")


def _tables_in(pg_url: str, schema: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def test_postgres_schema_from_url_options(pg_schema: tuple[str, str]) -> None:
    pg_url, schema = pg_schema
    url = f"{pg_url}?options={quote(f'-csearch_path={schema}')}"
    with open_store(url) as store:
        run, _ = store.create_run("p", DAY, DAY, DAY)
    assert {"runs", "task_instances", "task_logs", "check_results"} <= _tables_in(pg_url, schema)
    with open_store(pg_url, schema=schema) as same:  # the two spellings reach one store
        assert same.get_run(run.run_id) == run


def test_postgres_schemas_isolate_stores(pg_url: str) -> None:
    import uuid

    names = [f"iso_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        with open_store(pg_url, schema=names[0]) as a, open_store(pg_url, schema=names[1]) as b:
            a.create_run("p", DAY, DAY, DAY)
            assert a.list_runs() and b.list_runs() == []
            assert b.create_run("p", DAY, DAY, DAY)[1]  # created: not seen from schema a
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_postgres_search_path_without_a_schema_is_a_clear_error(pg_url: str) -> None:
    url = f"{pg_url}?options={quote('-csearch_path=missing_schema_xyz')}"
    with pytest.raises(StateError, match="names no existing schema"):
        open_store(url)


def test_unreachable_postgres_is_transient_and_hides_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        open_store("postgresql://u:hunter2@127.0.0.1:1/db")
    assert isinstance(info.value, TransientError) and isinstance(info.value, StateError)
    assert "hunter2" not in str(info.value) and "u:***@127.0.0.1:1/db" in str(info.value)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StateError, match="is closed: list runs needs an open store"):
        store.list_runs()
    with pytest.raises(
        StateError, match="^run r1: State store .* is closed: update run needs an open store"
    ) as info:
        store.update_run("r1", state="running")
    assert info.value.run_id == "r1"
