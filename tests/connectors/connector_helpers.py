"""Shared data and helpers of the connector tests (imported by conftest and tests)."""

from __future__ import annotations

import datetime as dt

from headrace.connectors import SqlSource

# A name no one would choose, with every character that breaks naive SQL building.
HOSTILE_TABLE = 'we"ird`; DROP TABLE x;-- tbl'
HOSTILE_COLUMN = "co'l\"umn` 1"

BASE = dt.datetime(2024, 3, 1, 12, 0, 0)


def customer_rows(n: int = 50) -> list[tuple]:
    """(id, name, updated_at, note) rows; note holds SQL-looking text."""
    return [
        (
            i,
            f"name {i}",
            BASE + dt.timedelta(minutes=i),
            "'; DROP TABLE customers; --" if i == 7 else f"n{i}",
        )
        for i in range(1, n + 1)
    ]


def source_for(backend: str, url: str, **kwargs: object) -> SqlSource:
    """A SqlSource on the fixture's customers table (MySQL tables carry a unique suffix)."""
    if backend == "mysql":
        base, tbl = url.split("?table=")
        if kwargs.get("table") == "customers":
            kwargs["table"] = tbl
        elif kwargs.get("table") == HOSTILE_TABLE:
            kwargs["table"] = HOSTILE_TABLE + tbl
        return SqlSource(base, **kwargs)  # type: ignore[arg-type]
    return SqlSource(url, **kwargs)  # type: ignore[arg-type]
