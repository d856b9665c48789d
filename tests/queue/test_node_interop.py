"""Interop with Node.js BullMQ on the same queue: each side produces for the other."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from queue_testing import wait_until

from headrace.queue import Backoff, Job, JobOptions, JobState, Queue, QueueConnection, Worker


def node(script: Path, conn: QueueConnection, queue: str, count: int) -> dict[str, Any]:
    """Run a Node BullMQ script; its last output line is a JSON object."""
    out = subprocess.run(
        ["node", str(script), conn.url, conn.prefix, queue, str(count)],
        cwd=script.parent, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_node_producer_python_worker(conn: QueueConnection, node_bullmq: Path) -> None:
    results: dict[str, str] = {}
    tries: dict[str, int] = {}

    async def handle(job: Job) -> str:
        tries[job.id] = tries.get(job.id, 0) + 1
        if job.data["i"] == 0 and job.attempts_made == 0:
            raise ValueError("retry me")  # Node's attempts/backoff options must apply
        return job.data["email"].lower() if "email" in job.data else "delayed"

    async def body() -> None:
        added = node(node_bullmq / "producer.mjs", conn, "interop", 5)
        assert len(added["added"]) == 5
        worker = Worker("interop", handle, connection=conn, concurrency=2)
        worker.on("completed", lambda job, r: results.__setitem__(job.id, r))
        async with Queue("interop", conn) as queue, worker:
            await wait_until(lambda: len(results) == 6, 15, "six Node-produced jobs")
            first = await queue.job(added["added"][0])
            assert await first.state() == JobState.COMPLETED and first.attempts_made == 2
        assert sorted(v for k, v in results.items() if k != "node-delayed") == [
            f"user{i}@example.com" for i in range(5)
        ]
        assert results["node-delayed"] == "delayed"

    asyncio.run(body())


def test_python_producer_node_worker(conn: QueueConnection, node_bullmq: Path) -> None:
    async def produce() -> list[str]:
        async with Queue("interop", conn) as queue:
            options = JobOptions(attempts=2, backoff=Backoff.fixed(50))
            jobs = await queue.add_bulk([("double", {"n": n}, options) for n in range(4)])
            jobs.append(await queue.add("fail-once", {"n": 10}, options))
            jobs.append(await queue.add("double", {"n": 7}, JobOptions(delay_ms=150, priority=1)))
            return [j.id for j in jobs]

    async def check(ids: list[str]) -> None:
        async with Queue("interop", conn) as queue:
            for job_id, n in zip(ids, [0, 1, 2, 3, 10, 7], strict=True):
                job = await queue.job(job_id)
                assert await job.state() == JobState.COMPLETED
                assert job.return_value["doubled"] == n * 2 and job.return_value["by"] == "node"
                assert job.progress == 50
            retried = await queue.job(ids[4])
            assert retried.attempts_made == 2 and retried.return_value["attempt"] == 2

    ids = asyncio.run(produce())
    assert node(node_bullmq / "worker.mjs", conn, "interop", 6) == {"done": 6}
    asyncio.run(check(ids))
