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

Two speed-ups, both Node BullMQ's behaviour:

* ``fetch_next``: completing a job fetches the next one in the same Lua call
  (``fetchNext``), where bullmq-python spends a second round trip on
  ``moveToActive`` for every job.
* ``batch_finish``: the completions of jobs that finish in the same event-loop turn
  share one pipelined write (:mod:`headrace.queue.batching`), as concurrent
  commands share ioredis's single socket in Node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import bullmq
from bullmq.custom_errors import DelayedError, UnrecoverableError, WaitingChildrenError
from bullmq.redis_connection import RedisConnection
from bullmq.scripts import raw2NextJobData

from headrace.queue.batching import FinishBatcher
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
        fixes: frozenset[str] = frozenset(
            {"socket_timeout", "redis_version", "rate_limit", "fetch_next", "batch_finish"}
        ),
    ) -> None:
        super().__init__(name, processor, {**opts, "autorun": False})
        self.fixes = fixes
        self._closing_event = asyncio.Event()
        self._unused_blocking: RedisConnection | None = None
        self.finisher: FinishBatcher | None = None
        if "batch_finish" in fixes and "fetch_next" in fixes:
            self.finisher = FinishBatcher(self.scripts.commands["moveToFinished"])
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

    async def processJob(self, job: bullmq.Job, token: str) -> None:
        if "fetch_next" not in self.fixes:
            await super().processJob(job, token)
            return
        next_job: bullmq.Job | None = job
        while next_job is not None:
            next_job = await self._process_and_fetch(next_job, token)

    async def _process_and_fetch(self, job: bullmq.Job, token: str) -> bullmq.Job | None:
        """``bullmq.Worker.processJob`` with ``fetchNext`` on completion (as in Node BullMQ).

        Returns the next job, already moved to active under the same token, or None.
        """
        next_job: bullmq.Job | None = None
        try:
            if "removeOnComplete" not in job.opts and "removeOnComplete" in self.opts:
                job.opts["removeOnComplete"] = self.opts["removeOnComplete"]
            if "removeOnFail" not in job.opts and "removeOnFail" in self.opts:
                job.opts["removeOnFail"] = self.opts["removeOnFail"]
            self.jobs.add((job, token))
            controller = self.lockManager.track_job(
                job.id, token, int(time.time() * 1000),
                should_create_controller=self._processor_wants_signal,
            )  # fmt: skip
            if job.deferredFailure:
                await job.moveToFailed(UnrecoverableError(job.deferredFailure), token)
                self.emit("failed", job, UnrecoverableError(job.deferredFailure))
                return None
            if controller is not None:
                result = await self.processor(job, token, controller.signal)
            else:
                result = await self.processor(job, token)
            if not self.forceClosing:
                fetch = not (self.closing or self.paused)
                raw = await self._move_to_completed(job, result, token, fetch)
                job.returnvalue = result
                job.attemptsMade = job.attemptsMade + 1
                if fetch and raw:
                    job_data, job_id, limit_until, delay_until = raw
                    next_job = await self.nextJobFromJobData(
                        job_data, job_id, limit_until or 0, delay_until or 0, token
                    )
            self.emit("completed", job, result)
        except (DelayedError, WaitingChildrenError):
            return None
        except Exception as err:
            try:
                if not self.forceClosing:
                    await job.moveToFailed(err, token)
                self.emit("failed", job, err)
            except Exception as move_err:
                self.emit("error", move_err, job)
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)
        if next_job is not None:
            self.emit("active", next_job, "waiting")
        return next_job

    async def _move_to_completed(
        self, job: bullmq.Job, result: Any, token: str, fetch: bool
    ) -> list[Any] | None:
        """Mark ``job`` completed; with ``fetch``, the next job's raw data (or None)."""
        remove = job.opts.get("removeOnComplete", False)
        if self.finisher is None:
            moved = await self.backend.moveToCompleted(job, result, remove, token, fetch_next=fetch)
            return moved.get("result") if isinstance(moved, dict) else None
        keys, args = self.scripts.moveToCompletedArgs(job, result, remove, token, fetch)
        reply = await self.finisher.call(keys, args)
        if isinstance(reply, int) and reply < 0:
            raise self.scripts.finishedErrors(
                {"code": reply, "jobId": job.id, "command": "moveToFinished", "state": "active"}
            )
        job.finishedOn = args[1]  # the timestamp the script stored
        return raw2NextJobData(reply) if reply is not None else None

    async def close(self, force: bool = False) -> None:
        self._closing_event.set()
        await super().close(force)
        if self.finisher is not None:
            await self.finisher.close()
