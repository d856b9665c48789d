"""Producer side against the real Redis: options, de-duplication, priority, retention, repeatables."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from queue_testing import wait_until

from headrace.errors import QueueError
from headrace.queue import (
    Backoff,
    Job,
    JobOptions,
    JobState,
    Keep,
    Queue,
    QueueConnection,
    Worker,
    enqueue,
)


def test_add_stores_bullmq_options_under_the_prefix(conn: QueueConnection) -> None:
    async def body() -> None:
        defaults = JobOptions(attempts=3, backoff=Backoff.exponential(2000))
        async with Queue("data-processing", conn, default_options=defaults) as queue:
            job = await queue.add("process-csv", {"inputFile": "a.csv"}, JobOptions(priority=2))
            stored = await queue.job(job.id)
            assert stored.name == "process-csv"
            assert stored.data == {"inputFile": "a.csv"}
            assert stored.options["attempts"] == 3
            assert stored.options["backoff"] == {"type": "exponential", "delay": 2000}
            assert await stored.state() == JobState.PRIORITIZED
            # Only this test's own prefix is looked at: others share this Redis and may
            # well run a "data-processing" queue of their own under the default prefix.
            client = conn.client()
            try:
                ours = [k async for k in client.scan_iter(match=f"{conn.prefix}:data-processing:*")]
                job_hash = await client.hgetall(f"{conn.prefix}:data-processing:{job.id}")
            finally:
                await client.aclose()
            assert f"{conn.prefix}:data-processing:{job.id}" in ours
            assert job_hash["name"] == "process-csv"
            assert f"{conn.prefix}:data-processing:prioritized" in ours

    asyncio.run(body())


def test_job_id_deduplicates(conn: QueueConnection) -> None:
    async def body() -> None:
        async with Queue("dedup", conn) as queue:
            first = await queue.add("x", {"v": 1}, JobOptions(job_id="csv-42"))
            second = await queue.add("x", {"v": 2}, JobOptions(job_id="csv-42"))
            assert first.id == second.id == "csv-42"
            assert (await queue.counts("waiting"))["waiting"] == 1
            assert (await queue.job("csv-42")).data == {"v": 1}

    asyncio.run(body())


def test_numeric_job_id_and_unknown_state_are_refused(conn: QueueConnection) -> None:
    async def body() -> None:
        async with Queue("bad", conn) as queue:
            with pytest.raises(QueueError, match="job-42"):
                await queue.add("x", {}, JobOptions(job_id="42"))
            with pytest.raises(QueueError, match="Did you mean 'completed'"):
                await queue.counts("complete")
            with pytest.raises(QueueError, match="no job with id 'nope'"):
                await queue.job("nope")

    asyncio.run(body())


def test_priority_orders_processing(conn: QueueConnection) -> None:
    order: list[str] = []

    async def handle(job: Job) -> None:
        order.append(job.data["n"])

    async def body() -> None:
        async with Queue("prio", conn) as queue:
            await queue.add("x", {"n": "low"}, JobOptions(priority=10))
            await queue.add("x", {"n": "high"}, JobOptions(priority=1))
            await queue.add("x", {"n": "mid"}, JobOptions(priority=5))
            async with Worker("prio", handle, connection=conn):
                await wait_until(lambda: len(order) == 3, 10, "three jobs")
        assert order == ["high", "mid", "low"]

    asyncio.run(body())


def test_delay_holds_a_job_back(conn: QueueConnection) -> None:
    seen: dict[str, float] = {}

    async def handle(job: Job) -> None:
        seen[job.data["n"]] = time.monotonic()

    async def body() -> None:
        async with Queue("delay", conn) as queue, Worker("delay", handle, connection=conn):
            start = time.monotonic()
            delayed = await queue.add("x", {"n": "late"}, JobOptions(delay_ms=800))
            await queue.add("x", {"n": "now"})
            assert await delayed.state() == JobState.DELAYED
            await wait_until(lambda: len(seen) == 2, 10, "both jobs")
            # the job without delay ran first, the delayed one not before its 800 ms
            # (and not much later, whatever the load on the machine)
            assert seen["now"] < seen["late"]
            assert 0.75 <= seen["late"] - start < 5.0

    asyncio.run(body())


def test_remove_on_complete_by_count_and_on_fail_by_age(conn: QueueConnection) -> None:
    finished: list[str] = []

    async def handle(job: Job) -> None:
        if job.data.get("fail"):
            raise ValueError("bad row")

    async def body() -> None:
        worker = Worker("retention", handle, connection=conn)
        worker.on("completed", lambda job, result: finished.append(job.id))
        worker.on("failed", lambda job, err: finished.append(job.id))
        keep2 = JobOptions(remove_on_complete=Keep(count=2))
        fail_age = JobOptions(remove_on_fail=Keep(age_s=1))
        async with Queue("retention", conn) as queue, worker:
            for i in range(5):
                await queue.add("ok", {"i": i}, keep2)
            await wait_until(lambda: len(finished) == 5, 10, "five jobs")
            assert (await queue.counts("completed"))["completed"] == 2
            old = await queue.add("bad", {"fail": True}, fail_age)
            await wait_until(lambda: len(finished) == 6, 10, "first failure")
            assert await queue.get_job(old.id) is not None
            await asyncio.sleep(1.6)  # older than the 1 s age when the next one fails
            await queue.add("bad", {"fail": True}, fail_age)
            await wait_until(lambda: len(finished) == 7, 10, "second failure")
            assert await queue.get_job(old.id) is None
            assert (await queue.counts("failed"))["failed"] == 1

    asyncio.run(body())


def test_repeatable_by_cron_pattern(conn: QueueConnection) -> None:
    runs: list[float] = []

    async def handle(job: Job) -> None:
        runs.append(time.monotonic())

    async def body() -> None:
        async with Queue("cron", conn) as queue:
            daily = await queue.add_repeatable("daily-etl", "daily-etl", {}, pattern="0 2 * * *")
            assert daily is not None
            (registered,) = await queue.repeatables()
            assert registered.pattern == "0 2 * * *" and registered.next_ms is not None
            next_run = datetime.fromtimestamp(registered.next_ms / 1000, tz=UTC)
            assert await daily.state() == JobState.DELAYED
            assert (next_run.hour, next_run.minute, next_run.second) == (2, 0, 0)
            # Six fields, seconds first: every second. Upserting again must not duplicate.
            await queue.add_repeatable("tick", "tick", {}, pattern="* * * * * *")
            await queue.add_repeatable("tick", "tick", {}, pattern="* * * * * *")
            assert sorted(r.id for r in await queue.repeatables()) == ["daily-etl", "tick"]
            async with Worker("cron", handle, connection=conn):
                await wait_until(lambda: len(runs) >= 3, 10, "three cron ticks")
            # a tick a second: two ticks take about 2 s (a duplicate repeatable would run
            # two jobs a second); wide bounds, as one tick may be late on a busy machine
            assert 1.2 <= runs[2] - runs[0] <= 3.5, runs
            assert await queue.remove_repeatable("tick")
            assert [r.id for r in await queue.repeatables()] == ["daily-etl"]
            with pytest.raises(QueueError, match="exactly one of"):
                await queue.add_repeatable("bad", "bad", {})

    asyncio.run(body())


def test_sync_enqueue_and_pause(conn: QueueConnection) -> None:
    job_id = enqueue("sync", "x", {"a": 1}, JobOptions(job_id="one"), connection=conn)
    assert job_id == "one"

    async def body() -> None:
        async with Queue("sync", conn) as queue:
            assert (await queue.job("one")).data == {"a": 1}
            await queue.pause()
            assert await queue.is_paused()
            await queue.resume()
            await queue.drain()
            assert (await queue.counts("waiting"))["waiting"] == 0

    asyncio.run(body())
