"""Fixtures for the state-store tests: the same store API on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.state import SqlStateStore, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(url, schema) of an empty store: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nested/state.db", None
    url, schema = request.getfixturevalue("pg_schema")
    return url, schema


@pytest.fixture
def store(store_target: tuple[str, str | None]) -> Iterator[SqlStateStore]:
    """An opened store on each backend, closed after the test."""
    opened = open_store(store_target[0], schema=store_target[1])
    try:
        yield opened
    finally:
        opened.close()
