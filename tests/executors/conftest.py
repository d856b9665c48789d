"""Fixtures of the executor tests: a SQLite state store and settings in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.engine import load_pipelines
from headrace.pipeline import Pipeline
from headrace.state import open_store
from headrace.state.base import StateStore

PIPELINES = Path(__file__).parent.parent / "engine" / "pipelines"


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
    return load_pipelines(PIPELINES / f"{file}.py")[name]


@pytest.fixture
def pipelines() -> object:
    """``pipelines(file, name)`` loads a pipeline from the test pipeline files."""
    return pipeline_from
