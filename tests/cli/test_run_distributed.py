"""``headrace run --executor distributed``: tasks run on a real ``headrace worker`` over Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from headrace.executors.distributed import TASK_QUEUE
from headrace.state import RunState, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello_pipeline.py"
CLI = [sys.executable, "-c", "from headrace.cli import main; main()"]


def test_run_with_the_distributed_executor(redis_prefix: tuple[str, str], tmp_path: Path) -> None:
    url, prefix = redis_prefix
    env = {
        **os.environ,
        "HEADRACE_HOME": str(tmp_path / "home"),
        "HEADRACE_REDIS_URL": url,
        "HEADRACE_QUEUE_PREFIX": prefix,
    }
    worker = subprocess.Popen(
        [*CLI, "worker", "--concurrency", "2", "--redis-url", url, "--prefix", prefix, "--name", "w1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        done = subprocess.run(
            [*CLI, "run", str(EXAMPLE), "--executor", "distributed"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        worker.terminate()
        worker_output = worker.communicate(timeout=30)[0].decode(errors="replace")
    assert done.returncode == 0, done.stdout + done.stderr + worker_output
    store = open_store(f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    (run,) = store.list_runs(pipeline="hello")
    assert run.state == RunState.SUCCESS
    tasks = {(t.task_id, t.map_index): t for t in store.get_task_instances(run.run_id)}
    assert tasks[("fetch_greetings", -1)].attempt == 2  # the example's retry happened on the worker
    store.close()
    # the attempts went through the task queue (BullMQ numbers each added job)
    client = redis.Redis.from_url(url)
    try:
        jobs_added = int(client.get(f"{prefix}:{TASK_QUEUE}:id") or 0)
    finally:
        client.close()
    attempts = sum(t.attempt for t in tasks.values() if (t.task_id, t.map_index) != ("shout", -1))
    assert jobs_added == attempts
