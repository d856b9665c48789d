"""Queue-wide events (the Redis event stream) seen by a separate listener."""

from __future__ import annotations

import asyncio

import pytest
from queue_testing import wait_until

from headrace.errors import QueueError
from headrace.queue import Job, JobFailedError, Queue, QueueConnection, QueueEvents, Worker


def test_completed_failed_progress_events_and_wait_for(conn: QueueConnection) -> None:
    seen: list[tuple[str, object]] = []

    async def handle(job: Job) -> dict[str, int]:
        await job.update_progress({"rows": 10})
        if job.name == "bad":
            raise ValueError("Invalid email in row 3")
        return {"processed": 10}

    async def body() -> None:
        events = QueueEvents("ev", conn)
        events.on("completed", lambda e: seen.append(("completed", e["returnvalue"])))
        events.on("failed", lambda e: seen.append(("failed", e["failedReason"])))

        async def on_progress(e: dict[str, object]) -> None:
            seen.append(("progress", e["data"]))

        events.on("progress", on_progress)
        with pytest.raises(QueueError, match="Did you mean 'failed'"):
            events.on("fail", print)
        async with events, Queue("ev", conn) as queue:
            good = await queue.add("good", {})
            bad = await queue.add("bad", {})
            async with Worker("ev", handle, connection=conn):
                assert await events.wait_for(good.id, timeout_s=10) == {"processed": 10}
                with pytest.raises(JobFailedError, match="Invalid email in row 3"):
                    await events.wait_for(bad.id, timeout_s=10)
                await wait_until(lambda: len(seen) == 4, 5, "four events")
            # Already finished: wait_for answers from the stored job.
            assert await events.wait_for(good.id, timeout_s=1) == {"processed": 10}
        assert ("completed", {"processed": 10}) in seen
        assert ("failed", "Invalid email in row 3") in seen
        assert seen.count(("progress", {"rows": 10})) == 2

    asyncio.run(body())


def test_wait_for_times_out(conn: QueueConnection) -> None:
    async def body() -> None:
        async with QueueEvents("idle", conn) as events, Queue("idle", conn) as queue:
            job = await queue.add("x", {})
            with pytest.raises(TimeoutError):
                await events.wait_for(job.id, timeout_s=0.3)

    asyncio.run(body())
