"""Distributed executor: one run's tasks spread over two ``headrace worker`` processes,
one of which is killed mid-task; state on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from headrace.config import AlertSettings, Settings
from headrace.engine import Runner, load_pipelines
from headrace.executors.distributed import (
    TASK_QUEUE,
    DistributedExecutor,
    SettingsMismatch,
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
SECRETIVE = Path(__file__).parent / "pipelines" / "secretive.py"
DAY = datetime(2024, 3, 5, tzinfo=UTC)


def start_task_worker(
    conn: QueueConnection, tag: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HR_WORKER_TAG": tag, **(env or {})}
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
                             pools={"db": 2}), "/s", state_url="postgresql://u:pw@h/db"),
        pipeline_file="/p.py", pipeline_module="p", task_id="t", map_index=2, attempt=3,
        inputs={"up": ResultRef("list", items=[ResultRef("json", value=[1, 2])])},
        map_input=ResultRef("table", path="/s/x.parquet", format="polars"), timeout=5.0,
    )  # fmt: skip
    payload = encode_work_item(item)
    assert "pw" not in json.dumps(payload)  # the settings stay home: only their profile travels
    assert decode_work_item(payload, item.run.settings) == item
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
    workers = {tag: start_task_worker(conn, tag, {"HEADRACE_STATE_URL": url}) for tag in ("A", "B")}
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


def test_a_worker_whose_settings_differ_refuses_the_item() -> None:
    when = datetime(2024, 3, 5, tzinfo=UTC)
    driver = Settings(
        home=Path("/h"), state_url="sqlite:///s.db", connections={"wh": "postgresql://u:pw@a/db"}
    )
    item = WorkItem(
        RunInfo("r1", "p", when, when, when, {}, driver, "/s"), "/p.py", "p", "t", -1, 1
    )
    worker = Settings(
        home=Path("/w"), state_url="sqlite:///s.db", connections={"wh": "postgresql://u:other@b/db"}
    )
    try:
        decode_work_item(encode_work_item(item), worker)
    except SettingsMismatch as exc:
        assert exc.differences == ["connection wh points elsewhere on the worker"]
        assert "'t'" in str(exc) and "other" not in str(exc)
    else:
        raise AssertionError("a worker pointing at another warehouse ran the attempt")
    # Another password for the same place is the same place (a rotated secret).
    rotated = Settings(
        home=Path("/w"), state_url="sqlite:///s.db", connections={"wh": "postgresql://u:new@a/db"}
    )
    assert decode_work_item(encode_work_item(item), rotated).run.settings is rotated


def _everything_under(prefix: str, url: str) -> bytes:
    """Every key name and value under the test's own prefix, as one blob."""
    import redis

    client: Any = redis.Redis.from_url(url)  # replies are bytes (no decode_responses)
    blob = bytearray()
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            blob += key
            kind = client.type(key)
            if kind == b"string":
                blob += client.get(key) or b""
            elif kind == b"hash":
                for field, value in client.hgetall(key).items():
                    blob += field + value
            elif kind == b"list":
                blob += b"".join(client.lrange(key, 0, -1))
            elif kind == b"set":
                blob += b"".join(client.smembers(key))
            elif kind == b"zset":
                blob += b"".join(client.zrange(key, 0, -1))
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for field, value in fields.items():
                        blob += field + value
    finally:
        client.close()
    return bytes(blob)


def test_no_secret_reaches_redis_and_workers_use_their_own_settings(
    conn: QueueConnection, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg_schema
    state_url = url.replace(
        "postgres@", "postgres:state-pw-7f3a@"
    )  # trust auth: the password is not checked
    warehouse = "postgresql://loader:wh-pw-91c2@127.0.0.1:5432/warehouse"
    webhook = "https://hooks.example.com/services/T0/B0/hook-token-5d8e"
    secrets = [b"state-pw-7f3a", b"wh-pw-91c2", b"hook-token-5d8e"]
    settings = Settings(home=tmp_path / "home", state_url=state_url, connections={"wh": warehouse},
                        alerts=AlertSettings(webhook_url=webhook, on_failure=False))  # fmt: skip
    worker = start_task_worker(conn, "A", {
        "HEADRACE_STATE_URL": state_url, "HEADRACE_CONN_WH": warehouse, "HEADRACE_ALERT_WEBHOOK_URL": webhook,
    })  # fmt: skip

    async def connected() -> None:
        async with Queue(TASK_QUEUE, conn) as queue:
            deadline = time.monotonic() + 30
            while await queue.worker_names() != ["A"]:
                assert time.monotonic() < deadline, "the task worker did not connect"
                await asyncio.sleep(0.1)

    try:
        asyncio.run(connected())
        pipeline = load_pipelines(SECRETIVE)["secretive"]
        with open_store(state_url, schema=schema) as store:
            runner = Runner(
                store, executor=DistributedExecutor(conn, poll_interval=1.0), settings=settings
            )
            result = runner.run(pipeline, DAY)
            assert result.state == RunState.SUCCESS, [
                (t.task_id, t.error) for t in store.get_task_instances(result.run_id)
            ]
            # The task saw the worker's settings, password included.
            assert (
                result.result_of("peek")["wh"]
                == hashlib.sha256(warehouse.encode()).hexdigest()[:12]
            )
            blob = _everything_under(conn.prefix, conn.url)
            assert b"peek" in blob  # the scan saw the run's job
            assert [s for s in secrets if s in blob] == []

            # A driver meaning another warehouse: the worker refuses, the engine does not retry.
            elsewhere = dataclasses.replace(
                settings, connections={"wh": warehouse.replace("127.0.0.1", "10.9.9.9")}
            )
            runner = Runner(
                store, executor=DistributedExecutor(conn, poll_interval=1.0), settings=elsewhere
            )
            refused = runner.run(pipeline, DAY.replace(day=6))
            assert refused.state == RunState.FAILED
            peek = refused.task("peek")
            assert peek.attempt == 1 and "connection wh points elsewhere on the worker" in (
                peek.error or ""
            )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
