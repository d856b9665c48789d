"""Fixtures of the web tests: a state store filled by really running a small pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.state import SlaMissRecord, open_store
from headrace.state.store_base import StateStore
from headrace.web.application import create_app
from headrace.web.auth import WebAuth, hash_password

PIPELINES = Path(__file__).parent / "pipelines"
FAILED_DAY = datetime(2024, 1, 1, tzinfo=UTC)
GOOD_DAY = datetime(2024, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Demo:
    """A populated store: one failed run (hostile error), one successful run, one SLA miss."""

    settings: Settings
    store: StateStore
    failed_run: str
    good_run: str


def populate(store: StateStore, settings: Settings) -> tuple[str, str]:
    """Run ``web_demo`` twice with the in-process executor and record an SLA miss.

    Returns:
        (failed run id, successful run id).
    """
    demo = load_pipelines(PIPELINES / "web_demo.py")["web_demo"]
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(demo, FAILED_DAY, params={"fail_publish": True})
    good = runner.run(demo, GOOD_DAY)
    assert (failed.state.value, good.state.value) == ("failed", "success")
    # What the scheduler records when a task is late (scheduler/sla.py does the same call).
    store.record_sla_miss(
        SlaMissRecord(
            pipeline="web_demo",
            run_id=failed.run_id,
            task_id="publish",
            logical_date=FAILED_DAY,
            deadline=FAILED_DAY + timedelta(days=1, minutes=30),
            sla=timedelta(minutes=30),
            detected_at=FAILED_DAY + timedelta(days=1, minutes=31),
        )
    )
    return failed.run_id, good.run_id


def sqlite_settings(folder: Path) -> Settings:
    return Settings(home=folder / "home", state_url=f"sqlite:///{folder / 'state.db'}")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    settings = sqlite_settings(tmp_path_factory.mktemp("web"))
    with open_store(settings.state_url) as store:
        failed, good = populate(store, settings)
        yield Demo(settings, store, failed, good)


@pytest.fixture(scope="session")
def client(demo: Demo) -> Iterator[TestClient]:
    app = create_app(demo.settings, store=demo.store, pipelines_dir=PIPELINES)
    with TestClient(app) as http:
        yield http


OPS = Path(__file__).parent / "ops"
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[tuple[TestClient, StateStore, Path]]:
    """An app with a token and user alice/wonderland over an empty store, serving ``ops/web_ops.py``."""
    settings = sqlite_settings(tmp_path)
    auth = WebAuth(token=TOKEN, users={"alice": hash_password("wonderland")})
    with open_store(settings.state_url) as store:
        app = create_app(
            settings,
            store=store,
            pipelines_dir=OPS,
            auth=auth,
            executor="inprocess",
            refresh_seconds=0,
        )
        with TestClient(app) as http:
            yield http, store, tmp_path


@pytest.fixture
def fill_store() -> object:
    """``fill_store(store, settings)`` runs the demo pipeline into another store (see :func:`populate`)."""
    return populate
