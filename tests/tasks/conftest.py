"""A run context for calling built-in tasks directly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from headrace.config import Settings
from headrace.pipeline import Context


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def make_ctx(tmp_path: Path):
    """make_ctx(params=..., connections=..., task_id=...) -> (Context, captured log lines)."""

    def make(
        params: dict[str, Any] | None = None,
        connections: dict[str, str] | None = None,
        task_id: str = "t",
        logical_date: datetime = datetime(2024, 1, 2, 2, tzinfo=UTC),
        state_url: str | None = None,
    ) -> tuple[Context, Captured]:
        log = logging.getLogger(f"test.tasks.{id(tmp_path)}.{task_id}")
        log.setLevel(logging.INFO)
        handler = Captured()
        log.handlers = [handler]
        log.propagate = False
        settings = Settings(
            home=tmp_path / ".headrace",
            state_url=state_url or f"sqlite:///{tmp_path / 'state.db'}",
            connections=connections or {},
        )
        ctx = Context(
            run_id="run_01",
            pipeline="customer_etl",
            task_id=task_id,
            logical_date=logical_date,
            data_interval_start=logical_date,
            data_interval_end=logical_date.replace(day=logical_date.day + 1),
            settings=settings,
            staging_dir=tmp_path / "staging",
            params=params or {},
            log=log,
        )
        return ctx, handler

    return make
