"""Queue-wide events: what any worker (Python or Node) did with any job of a queue.

Reads the queue's Redis event stream (``<prefix>:<queue>:events``) through
``bullmq.QueueEvents``; unlike worker events these are seen by every listener,
on any machine.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

import bullmq

from headrace.errors import QueueError, did_you_mean
from headrace.queue.connection import QueueConnection
from headrace.queue.job import JobFailedError

EVENTS = (
    "added", "waiting", "active", "progress", "completed", "failed", "delayed",
    "stalled", "retries-exhausted", "removed", "drained", "deduplicated", "error",
)  # fmt: skip


class QueueEvents:
    """Listen to the events of one queue.

    Args:
        queue_name: the queue.
        connection: Redis URL and key prefix.

    Callbacks get one dict, the event's fields: ``jobId`` always, plus
    ``returnvalue`` (completed), ``failedReason`` (failed), ``data`` (progress),
    ``prev`` (active).

    Example:
        >>> async def main() -> None:
        ...     async with QueueEvents("data-processing") as events:
        ...         events.on("completed", lambda e: print(e["jobId"], e["returnvalue"]))
        ...         result = await events.wait_for("csv-1", timeout_s=60)
    """

    def __init__(self, queue_name: str, connection: QueueConnection | None = None) -> None:
        self.queue_name = queue_name
        self.connection = connection or QueueConnection()
        self._listeners: dict[str, list[Callable[[dict[str, Any]], Any]]] = {}
        self._inner: bullmq.QueueEvents | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.error: Exception | None = None
        """The error that stopped the listener, if one did."""

    def on(self, event: str, callback: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        """Call ``callback(fields)`` for each ``event``; async callbacks are scheduled."""
        if event not in EVENTS:
            raise QueueError(f"Unknown queue event {event!r}." + did_you_mean(event, EVENTS))
        self._listeners.setdefault(event, []).append(callback)
        if self._inner is not None and event != "error":
            self._subscribe(self._inner, event)
        return callback

    def _subscribe(self, inner: bullmq.QueueEvents, event: str) -> None:
        def dispatch(fields: Any, *_: Any) -> None:
            payload = fields if isinstance(fields, dict) else {"id": fields}
            for callback in self._listeners.get(event, []):
                result = callback(payload)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)

        inner.on(event, dispatch)

    async def start(self) -> None:
        """Start listening; every event after this call is delivered."""
        if self._inner is not None:
            return
        # Start from the stream's current last entry rather than "$": XREAD with "$"
        # only sees entries added after the read is issued, so events between
        # start() and the first read would be lost.
        client = self.connection.client()
        try:
            last = await client.xrevrange(self.connection.key(self.queue_name, "events"), count=1)
        finally:
            await client.aclose()
        last_id = last[0][0] if last else "0-0"
        opts = {
            **self.connection.bullmq_options(),
            # Same defect as the worker's blocking pop: XREAD BLOCK waits up to 10 s,
            # redis-py 8's 5 s socket timeout would end the listener silently.
            "connection": self.connection.blocking_client(),
            "lastEventId": last_id,
            "autorun": True,
        }
        self._inner = bullmq.QueueEvents(self.queue_name, opts)
        self._inner.on("error", self._on_error)
        for event in self._listeners:
            if event != "error":  # delivered by _on_error
                self._subscribe(self._inner, event)

    def _on_error(self, err: Exception, *_: Any) -> None:
        self.error = err
        for callback in self._listeners.get("error", []):
            callback({"error": err})

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
            self._inner = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def wait_for(self, job_id: str, timeout_s: float) -> Any:
        """Wait until job ``job_id`` completes and return its result.

        Raises:
            JobFailedError: the job failed for good.
            TimeoutError: it did not finish within ``timeout_s``.
        """
        if self._inner is None:
            await self.start()
        assert self._inner is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def completed(fields: dict[str, Any], *_: Any) -> None:
            if not done.done():
                done.set_result(fields.get("returnvalue"))

        def failed(fields: dict[str, Any], *_: Any) -> None:
            if not done.done():
                done.set_exception(
                    JobFailedError(self.queue_name, job_id, str(fields.get("failedReason")))
                )

        self._inner.on(f"completed:{job_id}", completed)
        self._inner.on(f"failed:{job_id}", failed)
        try:
            # The job may have finished before we subscribed.
            producer = bullmq.Queue(self.queue_name, self.connection.bullmq_options())
            try:
                job = await bullmq.Job.fromId(producer, job_id)
                state = await job.getState() if job is not None else None
            finally:
                await producer.close()
            if job is not None and state == "completed":
                completed({"returnvalue": job.returnvalue})
            elif job is not None and state == "failed":
                failed({"failedReason": job.failedReason})
            consumer = self._inner._consumer_task
            waiters: set[asyncio.Future[Any]] = {done}
            if consumer is not None:
                waiters.add(consumer)
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if done.done():
                return done.result()
            if consumer is not None and consumer.done():
                raise QueueError(
                    f"the event listener stopped ({self.error!r}) "
                    f"while waiting for job {job_id!r}; check the Redis connection.",
                    queue=self.queue_name,
                )
            raise TimeoutError(
                f"Queue {self.queue_name!r}: job {job_id!r} did not finish within {timeout_s} s"
            )
        finally:
            self._inner.off(f"completed:{job_id}", completed)
            self._inner.off(f"failed:{job_id}", failed)

    async def __aenter__(self) -> QueueEvents:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
