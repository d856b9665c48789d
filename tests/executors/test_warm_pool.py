"""The warm process pool: one Runner (or backfill) reuses its worker processes across
runs, imports each pipeline file once per worker, and stops them on close."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.scheduler import Backfill, InlineLauncher
from headrace.state import RunState, open_store

FLOWS = """
import os, time
from pathlib import Path
from headrace import pipeline, task

# every import of this file by a worker leaves a line here
with open(Path(__file__).parent / "imports.txt", "a") as out:
    out.write(f"{os.getpid()}\\n")

@task
def first() -> int:
    return os.getpid()

@task
def second(pid: int) -> list:
    return [pid, os.getpid()]

@pipeline(schedule="@daily")
def chain():
    second(first())

@task(timeout=0.5, retries=0)
def stuck() -> None:
    time.sleep(30)

@pipeline
def hangs():
    stuck()
"""


def _flows(tmp_path: Path) -> dict:
    (tmp_path / "flows.py").write_text(FLOWS)
    return load_pipelines(tmp_path / "flows.py")


def _worker_imports(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "imports.txt").read_text().split()
    return [pid for pid in lines if pid != str(os.getpid())]  # not the driver's own load


def test_runs_of_one_runner_share_warm_workers(tmp_path: Path, settings: Settings) -> None:
    flows = _flows(tmp_path)
    day = datetime(2024, 1, 1, tzinfo=UTC)
    with (
        open_store(settings.state_url) as store,
        Runner(store, executor="process", settings=settings) as runner,
    ):
        results = [runner.run(flows["chain"], day + timedelta(days=i)) for i in range(4)]
        assert runner.run(flows["hangs"], day).state == RunState.FAILED  # its worker is killed
        after = runner.run(flows["chain"], day + timedelta(days=9))  # a fresh worker takes over
        pool = runner._pool
        assert pool is not None
        workers = [w.process for w in pool._workers]  # type: ignore[attr-defined]
    assert all(r.state == RunState.SUCCESS for r in results) and after.state == RunState.SUCCESS
    pids = {pid for r in results for pid in r.result_of("second")}
    assert len(pids) == 1, pids  # a chain needs one worker, and every run reused it
    assert pids.isdisjoint({os.getpid()})
    assert _worker_imports(tmp_path) == [str(p) for p in sorted(pids)] + [
        str(after.result_of("first"))
    ]
    assert workers and not any(p.is_alive() for p in workers)  # closed with the runner


def test_backfill_reuses_one_pool(tmp_path: Path, settings: Settings, store) -> None:
    flows = _flows(tmp_path)
    launcher = InlineLauncher(store, settings, executor="process")
    try:
        report = Backfill(flows["chain"], store, launcher=launcher, max_active=1).run(
            datetime(2024, 1, 1), datetime(2024, 1, 6)
        )
    finally:
        launcher.shutdown()
    assert report.succeeded == 6
    pids = {
        ti.pid for run in store.list_runs("chain") for ti in store.get_task_instances(run.run_id)
    }
    assert len(pids) == 1 and len(_worker_imports(tmp_path)) == 1
