"""Shared fixtures: real PostgreSQL, MariaDB and Redis, each test run isolated.

Outside CI a missing service skips the tests that need it; with ``CI=true`` it fails
them, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.engine import load_pipelines
from headrace.pipeline import Pipeline
from headrace.state import open_store
from headrace.state.store_base import StateStore
from live_services import service_missing

PG_ADMIN_URL = os.environ.get("HEADRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_HOST = os.environ.get("HEADRACE_TEST_MYSQL_HOST", "127.0.0.1")
REDIS_URL = os.environ.get("HEADRACE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _run_id() -> str:
    return f"hr{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards.

    Yields a SQLAlchemy/libpq style URL ``postgresql://postgres@127.0.0.1:5432/<db>``.
    """
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:  # pragma: no cover - depends on the machine
        service_missing("PostgreSQL", exc)
    name = f"test_{_run_id()}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[tuple[str, str]]:
    """A fresh schema in the session database for one test: yields (url, schema)."""
    import psycopg

    schema = f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_url, schema
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB database for this test session: ``mysql://root@127.0.0.1:3306/<db>``."""
    try:
        import pymysql

        admin = pymysql.connect(
            host=MYSQL_HOST, user="root", password="", connect_timeout=5, autocommit=True
        )
    except Exception as exc:  # pragma: no cover
        service_missing("MariaDB", exc)
    name = f"test_{_run_id()}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"mysql://root@{MYSQL_HOST}:3306/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(redis_url, key_prefix) unique to the test; every key under the prefix is deleted after."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        client.ping()
    except Exception as exc:  # pragma: no cover
        service_missing("Redis", exc)
    prefix = f"hrtest:{_run_id()}"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# -- engine, executor and scheduler tests: a SQLite state store in a temporary folder --

ENGINE_PIPELINES = Path(__file__).parent / "engine" / "pipelines"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"warehouse": "duckdb:///warehouse.db"},
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[StateStore]:
    with open_store(settings.state_url) as opened:
        yield opened


def pipeline_from(file: str, name: str) -> Pipeline:
    """A pipeline from tests/engine/pipelines/<file>.py."""
    return load_pipelines(ENGINE_PIPELINES / f"{file}.py")[name]


@pytest.fixture
def pipelines() -> Callable[[str, str], Pipeline]:
    """``pipelines(file, name)`` loads a pipeline from the engine's test pipeline files."""
    return pipeline_from
