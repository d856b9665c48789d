"""The three bullmq 3.4.4 defects, each shown to be handled by the adapter.

Each test fails when its workaround is switched off (``_fixes`` without it); the
``*_defect_present`` tests check the defect itself still exists upstream, so the
day bullmq fixes it they fail and tell us the workaround can go.
"""

from __future__ import annotations

import asyncio
import time

from queue_testing import wait_until

from headrace.queue import Job, JobOptions, Queue, QueueConnection, QueueEvents, RateLimit, Worker

ALL_FIXES = frozenset(
    {"socket_timeout", "redis_version", "rate_limit", "fetch_next", "batch_finish"}
)


async def _time_delayed_job(conn: QueueConnection, delay_ms: int, fixes: frozenset[str]) -> float:
    """Seconds from adding a job with ``delay_ms`` to its completion, on an idle worker."""
    done: list[float] = []

    async def handle(job: object) -> str:
        return "ok"

    worker = Worker("delays", handle, connection=conn, _fixes=fixes)
    worker.on("completed", lambda job, result: done.append(time.monotonic()))
    async with Queue("delays", conn) as queue, QueueEvents("delays", conn) as events, worker:
        await asyncio.sleep(0.3)  # let the worker go idle on its blocking pop
        start = time.monotonic()
        job = await queue.add("later", {}, JobOptions(delay_ms=delay_ms))
        await wait_until(lambda: bool(done), delay_ms / 1000 + 30, "the delayed job")
        # The event listener's XREAD blocked as long as the worker did: still alive?
        assert await events.wait_for(job.id, timeout_s=2) == "ok"
    return done[0] - start


def test_blocking_pop_longer_than_socket_timeout_works(conn: QueueConnection) -> None:
    # The worker and the event listener block ~5.5 s, past redis-py 8's 5 s socket
    # timeout; without fix 1 the worker's read times out and the job never runs
    # (measured: not within 35 s), and the listener's XREAD dies silently.
    took = asyncio.run(_time_delayed_job(conn, 5_500, ALL_FIXES))
    # Not early (the delay is honoured); the upper bound leaves a loaded machine room:
    # the defect shows as "never", not as a second late.
    assert 5.4 <= took < 15, took


def test_sub_second_delay_is_not_rounded_up(conn: QueueConnection) -> None:
    # Unfixed, the blocking pop is rounded up to whole seconds: every try takes >= 0.9 s.
    # The best of up to five tries keeps a busy machine's scheduling delays out of the
    # answer (an idle one stops after the first).
    tries: list[float] = []
    while len(tries) < 5 and (not tries or min(tries) >= 0.8):
        tries.append(asyncio.run(_time_delayed_job(conn, 100, ALL_FIXES)))
    assert min(tries) < 0.8, f"a 100 ms delayed job ran after {min(tries):.2f} s at best ({tries})"


def test_sub_second_delay_defect_present(conn: QueueConnection) -> None:
    took = asyncio.run(_time_delayed_job(conn, 100, ALL_FIXES - {"redis_version"}))
    assert took >= 0.9, f"bullmq no longer rounds block timeouts up ({took:.2f} s): drop fix 2"


async def _time_rate_limited(conn: QueueConnection, fixes: frozenset[str], jobs: int) -> float:
    starts: list[float] = []

    async def handle(job: object) -> None:
        starts.append(time.monotonic())

    worker = Worker(
        "limited", handle, connection=conn, concurrency=5, limiter=RateLimit(5, 1000), _fixes=fixes
    )
    async with Queue("limited", conn) as queue:
        await queue.add_bulk([("tick", {"i": i}, None) for i in range(jobs)])
        async with worker:
            await wait_until(lambda: len(starts) == jobs, 30, f"{jobs} rate-limited jobs")
    return starts[-1] - starts[0]


def test_rate_limit_wait_is_honoured(conn: QueueConnection) -> None:
    # 15 jobs at 5 per second: three windows, so the last starts ~2 s after the first.
    span = asyncio.run(_time_rate_limited(conn, ALL_FIXES, 15))
    # Never faster than the limit; unfixed, the worker sleeps 5 s between windows (>= 10 s
    # here), so 8 s leaves a loaded machine room and still fails the defect.
    assert 1.8 <= span <= 8.0, span


def test_rate_limit_defect_present(conn: QueueConnection) -> None:
    # Without fix 3 the worker waits drainDelay (5 s) between windows: 10 jobs, >= 5 s.
    span = asyncio.run(_time_rate_limited(conn, ALL_FIXES - {"rate_limit"}, 10))
    assert span >= 4.5, f"bullmq now honours the limiter wait ({span:.2f} s): drop fix 3"


def test_completing_a_job_fetches_the_next_one(conn: QueueConnection) -> None:
    # Speed-up, as in Node BullMQ: one Lua call completes a job and starts the next,
    # instead of a separate moveToActive round trip per job.
    done: list[int] = []

    async def handle(job: Job) -> None:
        done.append(job.data["i"])

    async def body(fixes: frozenset[str]) -> int:
        calls = 0
        worker = Worker("fetch", handle, connection=conn, _fixes=fixes)
        async with Queue("fetch", conn) as queue:
            await worker.start()
            inner = worker._inner
            assert inner is not None
            original = inner.moveToActive

            async def counting(token: str) -> object:
                nonlocal calls
                calls += 1
                return await original(token)

            inner.moveToActive = counting
            await queue.add_bulk([("x", {"i": i}, None) for i in range(20)])
            await wait_until(lambda: len(done) == 20, 10, "twenty jobs")
            await worker.close()
        done.clear()
        return calls

    assert asyncio.run(body(ALL_FIXES)) <= 3
    assert asyncio.run(body(ALL_FIXES - {"fetch_next"})) >= 20
