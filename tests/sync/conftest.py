"""The warehouse the exactly-once tests load into: DuckDB, or a PostgreSQL schema of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_harness import Source, World


@pytest.fixture(params=["duckdb", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "duckdb":
        warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url, schema = request.getfixturevalue("pg_schema")
        warehouse = f"{url}?schema={schema}"
    yield World(tmp_path, warehouse, Source(tmp_path / "items.db"))
