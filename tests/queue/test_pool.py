"""Process-pool handlers (``processes=N``) report progress back to the worker."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from queue_handlers import bad_progress, report_steps
from queue_testing import wait_until

from headrace.errors import QueueError
from headrace.queue import JobInfo, JobOptions, Queue, QueueConnection, Worker


def test_pool_handler_progress_is_stored_and_emitted_before_completion(
    conn: QueueConnection,
) -> None:
    seen: list[tuple[str, str, Any]] = []  # (event, job id, payload) in arrival order
    errors: list[BaseException] = []

    async def body() -> None:
        worker = Worker("pool-progress", report_steps, connection=conn, concurrency=2, processes=2)
        worker.on("progress", lambda job, p: seen.append(("progress", job.id, p["pct"])))
        worker.on("completed", lambda job, r: seen.append(("completed", job.id, r)))
        worker.on("failed", lambda job, e: seen.append(("failed", job.id, str(e))))
        worker.on("error", errors.append)
        async with Queue("pool-progress", conn) as queue:
            kept = await queue.add("steps", {"n": 1})
            failing = await queue.add("steps", {"n": 2, "fail": True})
            # Removed on completion: progress stored after that would be an error.
            removed = await queue.add("steps", {"n": 3}, JobOptions(remove_on_complete=True))
            async with worker:
                await wait_until(
                    lambda: sum(e in ("completed", "failed") for e, _, _ in seen) == 3,
                    60, "three pool jobs",
                )  # fmt: skip
            stored = await queue.job(kept.id)
            assert stored.progress["pct"] == 100
            assert stored.progress["pid"] != os.getpid()  # reported from a pool process
            assert stored.return_value == 2
            assert (await queue.job(failing.id)).progress["pct"] == 50

        def events_of(job_id: str) -> list[tuple[str, Any]]:
            return [(e, p) for e, j, p in seen if j == job_id]

        assert events_of(kept.id) == [("progress", 25), ("progress", 50), ("progress", 100),
                                      ("completed", 2)]  # fmt: skip
        assert events_of(removed.id)[-1] == ("completed", 6)
        assert [p for e, p in events_of(removed.id) if e == "progress"] == [25, 50, 100]
        assert events_of(failing.id)[:2] == [("progress", 25), ("progress", 50)]
        assert events_of(failing.id)[-1][0] == "failed"
        assert "failed after 50%" in events_of(failing.id)[-1][1]
        assert errors == []

    asyncio.run(body())


def test_update_progress_outside_a_pool_says_what_to_do() -> None:
    info = JobInfo("7", "steps", {"n": 1}, 0)
    with pytest.raises(QueueError, match=r"Job '7' \(steps\).*processes=N.*await job"):
        info.update_progress(10)
    assert report_steps.__module__ == "queue_handlers"  # pool children import it by name


def test_progress_that_is_not_json_fails_in_the_handler(conn: QueueConnection) -> None:
    failures: list[str] = []

    async def body() -> None:
        worker = Worker("pool-bad", bad_progress, connection=conn, processes=1)
        worker.on("failed", lambda job, e: failures.append(str(e)))
        async with Queue("pool-bad", conn) as queue, worker:
            await queue.add("bad", {})
            await wait_until(lambda: bool(failures), 60, "the failing job")

    asyncio.run(body())
    assert "JSON-serialisable" in failures[0] and "set" in failures[0]


def test_unpicklable_handler_fails_the_job_without_hanging(conn: QueueConnection) -> None:
    # The call never reaches a pool process, so no done marker comes back.
    failures: list[str] = []

    async def body() -> None:
        worker = Worker("pool-lambda", lambda info: 1, connection=conn, processes=1)
        worker.on("failed", lambda job, e: failures.append(repr(e)))
        async with Queue("pool-lambda", conn) as queue, worker:
            await queue.add("x", {})
            await wait_until(lambda: bool(failures), 30, "the failing job")

    asyncio.run(body())
    assert "pickle" in failures[0].lower()
