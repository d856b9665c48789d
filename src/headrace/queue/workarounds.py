"""``bullmq.Worker`` with the defects of bullmq 3.4.4 + redis-py 8 handled.

Each fix is a small override, not a fork, and each has a test in
``tests/queue/test_workarounds.py`` that fails without it:

1. Blocking connection without socket timeout (see
   :meth:`QueueConnection.blocking_client`): redis-py 8's default 5 s read timeout
   breaks the worker's idle ``BZPOPMIN`` of up to 10 s.
2. The Redis version is read on the blocking connection before the worker runs.
   bullmq only reads it on the main connection; the blocking connection keeps the
   class default ``canDoubleTimeout=False``, so every block timeout is rounded up to
   whole seconds and a 100 ms delay or backoff runs after one second.
3. The rate limiter's wait is honoured. When ``moveToActive`` answers "rate
   limited, retry in N ms", bullmq stores N in ``limitUntil`` and never reads it: the
   worker blocks on the queue marker for ``drainDelay`` (5 s) instead, so a limit of
   5 jobs per second ran at 5 per 5 s. Node BullMQ sleeps N ms and tries again; so
   does this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import bullmq
from bullmq.redis_connection import RedisConnection

from headrace.queue.connection import QueueConnection


class PatchedWorker(bullmq.Worker):
    """A ``bullmq.Worker`` that must be started with :meth:`start`, not ``run``.

    Args:
        name: queue name.
        processor: ``async (bullmq.Job, token) -> result``.
        opts: bullmq worker options (``autorun`` is forced off).
        connection: where the queue lives; used for the blocking connection.
        fixes: which workarounds to apply (all by default); tests turn one off to
            show the defect.
    """

    limitUntil: int  # set by bullmq: ms until the rate limiter admits the next job

    def __init__(
        self,
        name: str,
        processor: Callable[[bullmq.Job, str], Awaitable[Any]],
        opts: dict[str, Any],
        connection: QueueConnection,
        fixes: frozenset[str] = frozenset({"socket_timeout", "redis_version", "rate_limit"}),
    ) -> None:
        super().__init__(name, processor, {**opts, "autorun": False})
        self.fixes = fixes
        self._closing_event = asyncio.Event()
        self._unused_blocking: RedisConnection | None = None
        if "socket_timeout" in fixes:
            # Fix 1: swap the blocking connection bullmq made (default socket timeout)
            # for one without; the old one never connected, it is closed in start().
            self._unused_blocking = self.backend.blocking_connection
            replacement = RedisConnection(connection.blocking_client())
            self.backend.blocking_connection = replacement
            self.blockingRedisConnection = replacement
            self.bclient = replacement.conn

    async def start(self) -> asyncio.Task[None]:
        """Apply the start-up fixes and run the worker loop in a task."""
        if self._unused_blocking is not None:
            await self._unused_blocking.close()
            self._unused_blocking = None
        await self.backend.connection.getRedisVersion()
        if "redis_version" in self.fixes and self.backend.blocking_connection is not None:
            # Fix 2: capabilities (sub-second block timeouts) of the blocking connection.
            await self.backend.blocking_connection.getRedisVersion()
        return asyncio.ensure_future(self.run())

    async def getNextJob(self, token: str) -> bullmq.Job | None:
        if "rate_limit" not in self.fixes or self.limitUntil <= 0:
            return await super().getNextJob(token)
        # Fix 3: wait out the limiter window (woken early by close), then try again
        # directly instead of blocking on the marker for drainDelay.
        wait_s = self.limitUntil / 1000
        self.limitUntil = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing_event.wait(), timeout=wait_s)
        if self.closing or self.paused:
            return None
        job = await self.moveToActive(token)
        if job is not None:
            self.emit("active", job, "waiting")
        return job

    async def close(self, force: bool = False) -> None:
        self._closing_event.set()
        await super().close(force)
