"""The consumer side: a worker takes jobs from a queue and runs a handler on each.

Handlers may be ``async def handler(job)`` (run on the worker's event loop), plain
``def handler(job)`` (run in a thread), or, with ``processes=N``, a module-level
``def handler(info: JobInfo)`` run in a pool of N processes for CPU-heavy work
(it reports progress with ``info.update_progress``).
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import bullmq
from bullmq.custom_errors import UnrecoverableError

from headrace.errors import QueueError, TerminalError, TransientError, did_you_mean
from headrace.queue.connection import QueueConnection
from headrace.queue.job import Job, JobInfo, Retention, _retention
from headrace.queue.process_pool import HandlerPool
from headrace.queue.workarounds import PatchedWorker

EVENTS = ("active", "completed", "failed", "progress", "stalled", "error", "closed")

# Tuned so a job held by a killed worker is back in the queue within 10 s:
# its lock expires <= 5 s after the kill and the next stalled check (every 2.5 s)
# moves it to waiting. bullmq's defaults (30 s / 30 s) took ~60 s.
DEFAULT_LOCK_DURATION_MS = 5_000
DEFAULT_STALLED_INTERVAL_MS = 2_500


@dataclass(frozen=True)
class RateLimit:
    """At most ``max_jobs`` jobs start per ``duration_ms``, across all workers of the queue.

    Example:
        >>> RateLimit(10, 1000).to_bullmq()
        {'max': 10, 'duration': 1000}
    """

    max_jobs: int
    duration_ms: int

    def to_bullmq(self) -> dict[str, int]:
        return {"max": self.max_jobs, "duration": self.duration_ms}


class WorkerCrashedError(TransientError, QueueError):
    """A process of the worker's process pool died while running a job.

    Args:
        queue: the queue's name.
        job_id: the job that was running.
        job_name: the job's name.
    """

    def __init__(self, queue: str, job_id: str, job_name: str) -> None:
        self.queue, self.job_id, self.job_name = queue, job_id, job_name
        super().__init__(
            f"job {job_id!r} ({job_name}): a pool process died (killed or out of "
            "memory); the job will be retried if attempts remain.",
            queue=queue,
        )


class Worker:
    """Process jobs of one queue.

    Args:
        queue_name: the queue to take jobs from.
        handler: called once per job; its return value is the job's result. Raising
            a :class:`~headrace.errors.TerminalError` fails the job at once, without
            using its remaining attempts.
        connection: Redis URL and key prefix.
        concurrency: jobs run at the same time by this worker.
        limiter: rate limit shared by all workers of the queue.
        processes: run ``handler`` (a picklable function taking a :class:`JobInfo`)
            in a pool of this many processes; it reports progress with
            ``info.update_progress(...)``, stored and emitted before the job completes.
        lock_duration_ms: how long a job's lock lasts without renewal; a worker that
            dies loses its jobs after this. Locks are renewed from the event loop, so
            an async handler must not block it for more than half of this: CPU-bound
            work belongs in a plain function (thread) or ``processes=``.
        stalled_interval_ms: how often stalled jobs are looked for.
        max_stalled_count: stalls a job survives before it fails.
        remove_on_complete: default retention of completed jobs.
        remove_on_fail: default retention of failed jobs.
        name: worker name, shown in Redis ``CLIENT LIST``.

    Example:
        >>> async def handle(job: Job) -> int:
        ...     await job.update_progress(100)
        ...     return len(job.data["rows"])
        >>> async def main() -> None:
        ...     async with Worker("data-processing", handle, concurrency=5) as worker:
        ...         await asyncio.sleep(60)
    """

    def __init__(
        self,
        queue_name: str,
        handler: Callable[..., Any],
        *,
        connection: QueueConnection | None = None,
        concurrency: int = 1,
        limiter: RateLimit | None = None,
        processes: int | None = None,
        lock_duration_ms: int = DEFAULT_LOCK_DURATION_MS,
        stalled_interval_ms: int = DEFAULT_STALLED_INTERVAL_MS,
        max_stalled_count: int = 1,
        remove_on_complete: Retention | None = None,
        remove_on_fail: Retention | None = None,
        name: str | None = None,
        _fixes: frozenset[str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise QueueError(
                f"worker concurrency must be >= 1, got {concurrency}", queue=queue_name
            )
        if processes is not None and inspect.iscoroutinefunction(handler):
            raise QueueError(
                "worker processes= needs a plain (sync) module-level "
                f"function taking a JobInfo; {handler.__qualname__} is async.",
                queue=queue_name,
            )
        self.queue_name = queue_name
        self.handler = handler
        self.connection = connection or QueueConnection()
        self.concurrency = concurrency
        self.processes = processes
        self._opts: dict[str, Any] = {
            **self.connection.bullmq_options(),
            "concurrency": concurrency,
            "lockDuration": lock_duration_ms,
            "stalledInterval": stalled_interval_ms,
            "maxStalledCount": max_stalled_count,
            # A lost Redis connection is retried after this; bullmq's 15 s is long.
            "runRetryDelay": 2_000,
        }
        if limiter is not None:
            self._opts["limiter"] = limiter.to_bullmq()
        if remove_on_complete is not None:
            self._opts["removeOnComplete"] = _retention(remove_on_complete)
        if remove_on_fail is not None:
            self._opts["removeOnFail"] = _retention(remove_on_fail)
        if name:
            self._opts["name"] = name
        self._fixes = _fixes
        self._handler_is_async = inspect.iscoroutinefunction(handler)
        self._listeners: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self._inner: PatchedWorker | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: HandlerPool | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def on(self, event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback`` on ``event``; async callbacks are scheduled.

        Events and their arguments: ``active(job)``, ``completed(job, result)``,
        ``failed(job, error)``, ``progress(job, progress)``, ``stalled(job_id)``,
        ``error(exception)``, ``closed()``.
        """
        if event not in self._listeners:
            raise QueueError(f"Unknown worker event {event!r}." + did_you_mean(event, EVENTS))
        first = not self._listeners[event]
        self._listeners[event].append(callback)
        if first and self._inner is not None and event in ("active", "completed", "failed"):
            self._wire_one(self._inner, event)
        return callback

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self._listeners[event]:
            result = callback(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _on_progress(self, job: Job, progress: Any) -> None:
        self._emit("progress", job, progress)

    async def _process(self, inner: bullmq.Job, token: str) -> Any:
        job = Job(inner, on_progress=self._on_progress)
        try:
            if self.processes is not None:
                return await self._run_in_pool(job)
            if self._handler_is_async:
                return await self.handler(job)
            return await asyncio.to_thread(self.handler, job)
        except TerminalError as exc:
            # bullmq skips the remaining attempts only for its own error type.
            raise UnrecoverableError(f"{type(exc).__name__}: {exc}") from exc

    async def _run_in_pool(self, job: Job) -> Any:
        if self._pool is None:
            assert self.processes is not None
            self._pool = HandlerPool(
                self.processes, self.queue_name, lambda exc: self._emit("error", exc)
            )
        try:
            return await self._pool.run(self.handler, job)
        except BrokenProcessPool as exc:
            # The pool is unusable after a child dies; the next job gets a fresh one.
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerCrashedError(self.queue_name, str(job.id), str(job.name)) from exc

    def _wire(self, inner: PatchedWorker) -> None:
        # Only job events someone listens to are forwarded: no wrapper per job otherwise.
        for event in ("active", "completed", "failed"):
            if self._listeners[event]:
                self._wire_one(inner, event)
        inner.on("stalled", lambda job_id, *_: self._emit("stalled", job_id))
        inner.on("error", lambda err, *_: self._emit("error", err))
        inner.on("closed", lambda: self._emit("closed"))

    def _wire_one(self, inner: PatchedWorker, event: str) -> None:
        if event == "active":
            inner.on("active", lambda j, _prev=None: self._emit("active", Job(j)))
        elif event == "completed":
            inner.on("completed", lambda j, result: self._emit("completed", Job(j), result))
        else:
            inner.on("failed", lambda j, err: self._emit("failed", Job(j), err))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def loop_task(self) -> asyncio.Task[None] | None:
        """The task that takes and processes jobs; None before :meth:`start`."""
        return self._task

    async def start(self) -> None:
        """Connect and start taking jobs in the background; returns at once."""
        if self.running:
            raise QueueError("the worker is already running.", queue=self.queue_name)
        kwargs = {} if self._fixes is None else {"fixes": self._fixes}
        self._inner = PatchedWorker(
            self.queue_name, self._process, self._opts, self.connection, **kwargs
        )
        self._wire(self._inner)
        self._task = await self._inner.start()

    async def run(self) -> None:
        """Start and process jobs until :meth:`close` is called (from a handler, signal, ...)."""
        await self.start()
        assert self._task is not None
        await self._task

    async def close(self, force: bool = False) -> None:
        """Stop taking jobs; wait for running jobs to finish unless ``force``."""
        if self._inner is not None:
            await self._inner.close(force=force)
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=not force, cancel_futures=force)
            self._pool = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def run_sync(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully (running jobs finish)."""
        run_until_signal(self.start, self.close, lambda: self._task)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"Worker(queue={self.queue_name!r}, {self.connection}, concurrency={self.concurrency})"
        )


def run_until_signal(
    start: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    loop_task: Callable[[], asyncio.Future[Any] | None],
) -> None:
    """A worker process's main: ``start()``, wait for SIGTERM or SIGINT, then ``close()``.

    It also stops when the task ``loop_task()`` returns after start ends by itself (the
    worker failed). The handlers are in place before ``start``, so a signal during
    start-up also ends in a graceful ``close``.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await start()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if (task := loop_task()) is not None:
            waits.append(task)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        await close()

    asyncio.run(main())


__all__ = ["Worker", "RateLimit", "JobInfo", "WorkerCrashedError", "run_until_signal"]
