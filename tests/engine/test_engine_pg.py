"""The engine on the PostgreSQL state store (the other tests use SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from headrace.config import Settings
from headrace.engine import FakeClock, Runner
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def test_run_retry_and_resume_on_postgresql(pg_schema, tmp_path: Path, pipelines) -> None:
    url, schema = pg_schema
    settings = Settings(home=tmp_path, state_url=url, connections={"warehouse": "duckdb:///w.db"})
    with open_store(url, schema=schema) as store:
        runner = Runner(store, executor="process", settings=settings, concurrency=2)
        ok = runner.run(pipelines("basic", "numbers"), DAY)
        assert ok.state == RunState.SUCCESS
        assert ok.result_of("total")["sum"] == 18
        assert runner.run(pipelines("basic", "numbers"), DAY).run_id == ok.run_id

        clock = FakeClock()
        retrying = Runner(store, executor="inprocess", settings=settings, clock=clock)
        failed = retrying.run(pipelines("flaky", "retrying"), DAY, params={"succeed_on": 4})
        assert failed.state == RunState.FAILED
        assert failed.task("after").state == TaskState.UPSTREAM_FAILED
        assert clock.slept == [300.0, 480.0]

        # The policy allows three tries per drive: a resume gives the task three more.
        resumed = retrying.resume(failed.run_id, pipelines("flaky", "retrying"))
        assert resumed.state == RunState.SUCCESS
        assert resumed.task("flaky").attempt == 4
        assert resumed.result_of("after") == 40
        assert {log.attempt for log in store.get_logs(failed.run_id, "flaky")} == {1, 2, 3}
