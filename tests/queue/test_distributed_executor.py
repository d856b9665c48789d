"""Distributed executor: one run's tasks spread over two ``headrace worker`` processes,
one of which is killed mid-task; state on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.executors.distributed import (
    TASK_QUEUE,
    DistributedExecutor,
    decode_outcome,
    decode_work_item,
    encode_outcome,
    encode_work_item,
)
from headrace.executors.executor_base import Outcome, ResultRef, RunInfo, WorkItem
from headrace.queue import Queue, QueueConnection
from headrace.state import open_store
from headrace.state.store_base import CheckResultRecord, RunState

PIPELINE = Path(__file__).parent / "pipelines" / "spread.py"
DAY = datetime(2024, 3, 5, tzinfo=UTC)


def start_task_worker(conn: QueueConnection, tag: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HR_WORKER_TAG": tag}
    return subprocess.Popen(
        [sys.executable, "-c", "from headrace.cli import main; main()", "worker",
         "--concurrency", "2", "--redis-url", conn.url, "--prefix", conn.prefix, "--name", tag],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_work_item_and_outcome_survive_json() -> None:
    when = datetime(2024, 3, 5, 1, 2, 3, tzinfo=UTC)
    item = WorkItem(
        run=RunInfo("r1", "p", when, when, when, {"n": 1},
                    Settings(home=Path("/h"), state_url="postgresql://u:pw@h/db", connections={"w": "duckdb:///w.db"},
                             pools={"db": 2}), "/s"),
        pipeline_file="/p.py", pipeline_module="p", task_id="t", map_index=2, attempt=3,
        inputs={"up": ResultRef("list", items=[ResultRef("json", value=[1, 2])])},
        map_input=ResultRef("table", path="/s/x.parquet", format="polars"), timeout=5.0,
    )  # fmt: skip
    assert decode_work_item(encode_work_item(item)) == item
    outcome = Outcome(
        "t", 2, 3, ok=True, result=ResultRef("json", value={"a": 1}), rows=4, started_at=when,
        checks=[CheckResultRecord("r1", "t", "not_null", "fail", "passed", 4, 0, "id", {}, when)],
    )  # fmt: skip
    assert decode_outcome(encode_outcome(outcome)) == outcome


def test_run_spreads_over_two_workers_and_survives_a_killed_one(
    conn: QueueConnection, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg_schema
    markers = tmp_path / "markers"
    markers.mkdir()
    settings = Settings(home=tmp_path / "home", state_url=url)
    workers = {tag: start_task_worker(conn, tag) for tag in ("A", "B")}
    killed: list[str] = []

    def kill_the_victims_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = list(markers.iterdir())
            if found:
                tag = found[0].read_text()
                workers[tag].send_signal(signal.SIGKILL)
                killed.append(tag)
                return
            time.sleep(0.05)

    async def both_connected() -> None:
        async with Queue(TASK_QUEUE, conn) as queue:
            deadline = time.monotonic() + 30
            while await queue.worker_names() != ["A", "B"]:
                assert time.monotonic() < deadline, "the task workers did not connect"
                await asyncio.sleep(0.1)

    killer = threading.Thread(target=kill_the_victims_worker, daemon=True)
    try:
        asyncio.run(both_connected())
        killer.start()
        pipeline = load_pipelines(PIPELINE)["spread"]
        with open_store(url, schema=schema) as store:
            executor = DistributedExecutor(conn, capacity=8, poll_interval=1.0)
            runner = Runner(store, executor=executor, settings=settings)
            started = time.monotonic()
            result = runner.run(pipeline, DAY, params={"n": 8, "marker_dir": str(markers)})
            elapsed = time.monotonic() - started
            killer.join(5)
            assert result.state == RunState.SUCCESS, [
                (t.task_id, t.state, t.error) for t in store.get_task_instances(result.run_id)
            ]
            summary = result.result_of("victim")
            assert killed, "the victim task never started"
            assert summary["workers"] == ["A", "B"]  # the mapped tasks spread over both
            assert summary["victim"] != killed[0]  # finished on the surviving worker
            assert len(list(markers.iterdir())) == 2  # started twice: killed, then recovered
            assert elapsed < 40
            # Recovered by the queue, not retried by the engine: still attempt 1.
            assert result.task("victim").attempt == 1
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
