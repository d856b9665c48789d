"""Crash test: kill -9 a worker process mid-job; another worker recovers the job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from queue_testing import wait_until

from headrace.queue import Job, JobOptions, JobState, Queue, QueueConnection, Worker

HERE = Path(__file__).parent


def start_cli_worker(conn: QueueConnection, queue: str, handler: str) -> subprocess.Popen[bytes]:
    """``headrace worker`` in its own process, handlers importable from this folder."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from headrace.cli import main; main()", "worker", queue,
         "--handler", handler, "--redis-url", conn.url, "--prefix", conn.prefix],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_killed_worker_job_recovered_within_10s_without_using_an_attempt(
    conn: QueueConnection,
) -> None:
    completed: list[Job] = []

    async def finish(job: Job) -> str:
        return "recovered"

    async def body() -> None:
        async with Queue("crash", conn) as queue:
            job = await queue.add("long", {}, JobOptions(attempts=1))
            victim = start_cli_worker(conn, "crash", "queue_handlers:sleep_long")
            try:
                # The victim has the job once it reported progress.
                deadline = time.monotonic() + 30
                while (await queue.job(job.id)).progress != 1:
                    assert victim.poll() is None, (
                        victim.stdout.read().decode() if victim.stdout else ""
                    )
                    assert time.monotonic() < deadline, "the worker process never started the job"
                    await asyncio.sleep(0.05)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed_at = time.monotonic()
            finally:
                if victim.poll() is None:
                    victim.kill()
            assert await (await queue.job(job.id)).state() == JobState.ACTIVE
            rescuer = Worker("crash", finish, connection=conn)
            rescuer.on("completed", lambda j, r: completed.append(j))
            async with rescuer:
                await wait_until(lambda: bool(completed), 15, "the stalled job to be recovered")
            recovery_s = time.monotonic() - killed_at
            stored = await queue.job(job.id)
            assert recovery_s <= 10.0, f"recovery took {recovery_s:.1f} s"
            assert await stored.state() == JobState.COMPLETED
            assert stored.return_value == "recovered"
            # attempts=1, yet it completed: the stall did not use up the only attempt.
            assert stored.attempts_made == 1
            assert stored.stalled_count == 1

    asyncio.run(body())
