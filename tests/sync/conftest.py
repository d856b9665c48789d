"""The warehouse the exactly-once tests load into: DuckDB, a PostgreSQL schema of their own,
a Delta Lake folder or an Iceberg catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_harness import Source, World


@pytest.fixture(params=["duckdb", "postgresql", "delta", "iceberg"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "duckdb":
        warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    elif request.param == "delta":  # a lakehouse: the checkpoint rides in the Delta commit
        warehouse = f"delta:///{tmp_path / 'lake'}"
    elif request.param == "iceberg":  # ... or in the Iceberg metadata commit (SQLite catalog)
        warehouse = f"iceberg+sqlite:///{tmp_path / 'catalog.db'}?warehouse={tmp_path / 'ice'}"
    else:
        url, schema = request.getfixturevalue("pg_schema")
        warehouse = f"{url}?schema={schema}"
    yield World(tmp_path, warehouse, Source(tmp_path / "items.db"))
