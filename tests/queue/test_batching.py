"""Completions of one event-loop turn share one pipelined write (FinishBatcher)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from queue_testing import wait_until
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from headrace.queue import Job, Queue, QueueConnection, Worker
from headrace.queue.batching import FinishBatcher


def test_calls_of_one_turn_go_in_one_pipeline_and_errors_stay_with_their_caller(
    conn: QueueConnection,
) -> None:
    async def body() -> None:
        client = aioredis.from_url(conn.url, decode_responses=True)
        # A script this Redis has never seen (the prefix is unique): the first batch
        # meets NOSCRIPT and must load it; the second runs by EVALSHA alone.
        script = client.register_script(
            f"-- {conn.prefix}\n"
            "if ARGV[1] == 'bad' then return redis.error_reply('bad job ' .. KEYS[1]) end\n"
            "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]"
        )
        batcher = FinishBatcher(script)
        try:
            for round_ in (1, 2):
                keys = [conn.key("batch", str(i)) for i in range(3)]
                results = await asyncio.gather(
                    batcher.call([keys[0]], ["a"]),
                    batcher.call([keys[1]], ["bad"]),
                    batcher.call([keys[2]], ["c"]),
                    return_exceptions=True,
                )
                assert results[0] == "a" and results[2] == "c"
                assert isinstance(results[1], ResponseError)
                assert f"bad job {keys[1]}" in str(results[1])
                assert batcher.batches == round_  # three calls, one pipeline
                assert await client.mget(keys) == ["a", None, "c"]
        finally:
            await batcher.close()
            await client.aclose()

    asyncio.run(body())


def test_concurrent_worker_batches_completions_and_loses_none(conn: QueueConnection) -> None:
    results: dict[str, int] = {}

    async def handle(job: Job) -> int:
        await asyncio.sleep(0)
        return int(job.data["i"]) * 3

    async def body() -> None:
        worker = Worker("batched", handle, connection=conn, concurrency=8)
        worker.on("completed", lambda job, r: results.__setitem__(job.id, r))
        async with Queue("batched", conn) as queue:
            jobs = await queue.add_bulk([("x", {"i": i}, None) for i in range(300)])
            async with worker:
                await wait_until(lambda: len(results) == 300, 30, "300 jobs")
                finisher = worker._inner.finisher  # type: ignore[union-attr]
                assert finisher is not None
                assert finisher.calls == 300
                # Batching happened: clearly fewer writes than completions.
                assert finisher.batches <= 150, (finisher.batches, finisher.calls)
            for job in jobs[::50]:
                stored = await queue.job(job.id)
                assert stored.return_value == int(job.data["i"]) * 3
                assert stored.finished_on_ms is not None
            counts = await queue.counts("completed", "active", "waiting", "failed")
            assert counts == {"completed": 300, "active": 0, "waiting": 0, "failed": 0}

    asyncio.run(body())


def test_a_lost_connection_fails_every_call_of_the_batch() -> None:
    async def body() -> None:
        # Nothing listens on port 1 of the loopback: the connection is refused.
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        batcher = FinishBatcher(client.register_script("return 1"))
        try:
            results = await asyncio.gather(
                batcher.call(["k1"], []), batcher.call(["k2"], []), return_exceptions=True
            )
        finally:
            await client.aclose()
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        assert batcher.batches == 0 and batcher.calls == 0
        await batcher.close()  # nothing pending: returns at once

    asyncio.run(body())
