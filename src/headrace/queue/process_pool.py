"""The process pool of a worker (``processes=N``), with progress reported back to it.

A handler in the pool gets a picklable :class:`~headrace.queue.job.JobInfo`, not a
:class:`~headrace.queue.job.Job`: it has no Redis connection and no event loop.
``JobInfo.update_progress`` puts ``(key, progress)`` on a multiprocessing queue
that every pool process gets when it starts; a thread of the worker reads it and
hands each message to the worker's event loop, which stores the progress in Redis
and emits the ``progress`` event, as ``Job.update_progress`` does in-process.

Ordering: when the handler returns (or raises), its process puts a "done" marker
after its last progress message, and the worker returns the job's result only once
that marker has been handled. So a job's progress is stored before the job is
completed (and, with ``removeOnComplete``, removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import queue as stdlib_queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from headrace.errors import QueueError

if TYPE_CHECKING:
    from multiprocessing.queues import Queue as MPQueue

    from headrace.queue.job import Job, JobInfo

_PROGRESS = "progress"
_DONE = "done"
# The done marker is put as the handler ends; seconds to wait for it when the
# call failed, in case it never reached the pool process.
_MARKER_WAIT_S = 2.0

# The pool process's end of its worker's progress channel. A module global because
# it is set once per pool process by the pool's initializer (a multiprocessing
# queue can only reach a child when the child starts) and read by JobInfo.
_channel: MPQueue[tuple[str, str, Any]] | None = None


def _init_child(channel: MPQueue[tuple[str, str, Any]]) -> None:
    global _channel
    _channel = channel


def _run_child(handler: Callable[[JobInfo], Any], info: JobInfo) -> Any:
    """Run ``handler`` in the pool process; mark the job done on the channel after."""
    try:
        return handler(info)
    finally:
        if _channel is not None and info.progress_key is not None:
            _channel.put((info.progress_key, _DONE, None))


def report_progress(info: JobInfo, progress: Any) -> None:
    """Send ``progress`` of the job ``info`` to its worker (from a pool process).

    Raises:
        QueueError: outside a worker's process pool, or progress not JSON-serialisable.
    """
    if _channel is None or info.progress_key is None:
        raise QueueError(
            f"Job {info.id!r} ({info.name}): JobInfo.update_progress works only in a handler "
            f"run by a Worker with processes=N; in-process handlers get a Job and call "
            f"await job.update_progress(...)."
        )
    try:
        json.dumps(progress, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise QueueError(
            f"Job {info.id!r} ({info.name}): progress must be a number or a JSON-serialisable "
            f"dict, got {type(progress).__name__}: {exc}"
        ) from exc
    _channel.put((info.progress_key, _PROGRESS, progress))


@dataclass
class _Running:
    job: Job
    done: asyncio.Event = field(default_factory=asyncio.Event)


class HandlerPool:
    """A process pool for one worker's handler, with a progress channel back.

    Args:
        processes: pool size.
        queue_name: for error messages.
        on_error: called with an exception a progress update raised (e.g. the job
            was removed meanwhile); the worker emits it as its ``error`` event.
    """

    def __init__(
        self, processes: int, queue_name: str, on_error: Callable[[BaseException], None]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.queue_name = queue_name
        self._on_error = on_error
        self._channel: MPQueue[tuple[str, str, Any]] = context.Queue()
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=_init_child,
            initargs=(self._channel,),
        )
        self._running: dict[str, _Running] = {}
        self._keys = itertools.count(1)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None

    async def run(self, handler: Callable[[JobInfo], Any], job: Job) -> Any:
        """Run ``handler(job.info())`` in the pool; its result, once its progress is stored.

        Raises:
            BrokenProcessPool: a pool process died; this pool is unusable.
        """
        if self._reader is None:
            self._loop = asyncio.get_running_loop()
            self._consumer = asyncio.ensure_future(self._consume())
            self._reader = threading.Thread(
                target=self._read, name=f"headrace-progress-{self.queue_name}", daemon=True
            )
            self._reader.start()
        key = f"{job.id}:{next(self._keys)}"
        running = self._running[key] = _Running(job)
        info = replace(job.info(), progress_key=key)
        loop = asyncio.get_running_loop()
        try:
            try:
                result = await loop.run_in_executor(self._executor, _run_child, handler, info)
            except BrokenProcessPool:
                raise  # the process died: no done marker will come
            except Exception:
                # The handler raised: its progress still lands first. The marker may
                # never come if the call never reached the child (say, the handler
                # could not be pickled), hence the bound. A cancelled await (forced
                # close) does not wait at all.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.done.wait(), _MARKER_WAIT_S)
                raise
            await running.done.wait()
            return result
        finally:
            del self._running[key]

    def _read(self) -> None:
        """Thread: move channel messages to the event loop, in order."""
        assert self._loop is not None
        while not self._stop.is_set():
            try:
                message = self._channel.get(timeout=0.2)
            except stdlib_queue.Empty:
                continue
            except (EOFError, OSError):
                return  # channel closed by shutdown
            try:
                self._loop.call_soon_threadsafe(self._inbox.put_nowait, message)
            except RuntimeError:
                return  # the loop is closed

    async def _consume(self) -> None:
        """Task: handle channel messages one at a time, so each job's are stored in order."""
        while True:
            key, kind, payload = await self._inbox.get()
            running = self._running.get(key)
            if running is None:
                continue  # a job of a pool that broke meanwhile
            if kind == _DONE:
                running.done.set()
                continue
            try:
                await running.job.update_progress(payload)
            except Exception as exc:
                self._on_error(exc)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the pool processes, the channel reader and the progress task."""
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._stop.set()
        if self._consumer is not None:
            self._consumer.cancel()
        if self._reader is not None:
            self._reader.join(timeout=2)
        with contextlib.suppress(Exception):
            self._channel.close()
