"""Settings reach every task, wherever it runs: a pipeline sensor waiting on another
pipeline's run, through ``headrace run`` with the process and the distributed executor.

Before one configuration object was handed down, tasks got ``Settings(state_url="")``
and the sensor failed with ``sqlite3.OperationalError: unable to open database file``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.state import RunState, open_store

CLI = [sys.executable, "-c", "from headrace.cli import main; main()"]

PIPELINES = """
from headrace import pipeline, task, Context
from headrace.tasks import pipeline_sensor

@task
def produce() -> int:
    return 1

@pipeline(schedule="@daily")
def upstream():
    produce()

wait = pipeline_sensor("upstream", task_id="wait_upstream", poke_interval=0.1, timeout=30)

@task
def report(ctx: Context, run_id: str) -> dict:
    # what the driver's settings say, seen from inside the task's process
    # the task sees the real URL; what it returns is masked when stored, so it reports
    # whether the password arrived rather than the password itself
    url = ctx.connection("crm")
    return {"upstream_run": run_id, "crm": url, "crm_password_arrived": ":s3cret@" in url,
            "pools": dict(ctx.settings.pools)}

@pipeline(schedule="@daily")
def downstream():
    report(wait())
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(
        HEADRACE_HOME=str(tmp_path / "home"),
        HEADRACE_STATE_URL=f"sqlite:///{tmp_path / 'state.db'}",
        HEADRACE_CONN_CRM="postgresql://etl:s3cret@db.example/crm",
        HEADRACE_POOL_DB="3",
        **extra,
    )
    return env


def _run(
    env: dict[str, str], cwd: Path, name: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "run", f"{cwd / 'flows.py'}:{name}", "--date", "2024-03-05", *options],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _check(tmp_path: Path, done: subprocess.CompletedProcess[str], extra: str = "") -> None:
    assert done.returncode == 0, done.stdout + done.stderr + extra
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        (up,) = store.list_runs("upstream")
        (down,) = store.list_runs("downstream")
        assert down.state == RunState.SUCCESS, down.error
        report = {t.task_id: t for t in store.get_task_instances(down.run_id)}["report"]
    assert report.result_json == {
        "upstream_run": up.run_id,
        "crm": "postgresql://etl:***@db.example/crm",  # masked when written
        "crm_password_arrived": True,
        "pools": {"db": 3},
    }


def test_pipeline_sensor_in_a_process_pool_run(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(PIPELINES)
    env = _env(tmp_path)
    first = _run(env, tmp_path, "upstream")
    assert first.returncode == 0, first.stdout + first.stderr
    _check(tmp_path, _run(env, tmp_path, "downstream", "--executor", "process"))


@pytest.mark.slow
def test_pipeline_sensor_on_a_remote_worker(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    (tmp_path / "flows.py").write_text(PIPELINES)
    env = _env(tmp_path, HEADRACE_REDIS_URL=url, HEADRACE_QUEUE_PREFIX=prefix)
    # The worker has its own configuration (the same state store, connections and pools as
    # the driver, as a deployment gives both): no setting or secret travels in the work item.
    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    worker_env = dict(env)
    worker = subprocess.Popen(
        [*CLI, "worker", "--concurrency", "1", "--redis-url", url, "--prefix", prefix, "--name", "w1"],
        env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=elsewhere,
    )  # fmt: skip
    try:
        first = _run(env, tmp_path, "upstream", "--executor", "inprocess")
        assert first.returncode == 0, first.stdout + first.stderr
        done = _run(env, tmp_path, "downstream", "--executor", "distributed")
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
    _check(tmp_path, done, output)
