"""Distributed executor: task attempts go through the Redis queue to ``headrace worker``s.

Driver side, :class:`DistributedExecutor` adds one job per work item to the task
queue and turns the queue's events back into :class:`Outcome` objects. Worker side,
:class:`TaskWorker` (``headrace worker`` without ``--handler``) takes jobs and runs
each attempt in a local :class:`ProcessExecutor`, so timeouts kill the attempt and a
crashing task cannot take the worker down.

A worker killed mid-task (``kill -9``, lost machine) stops renewing its job lock; the
queue's stalled-job check puts the job back within ~8 s and another worker runs the
same attempt again. Work items name the pipeline file, so every worker needs the
pipeline code at the same path and the run's staging folder on shared storage.

A job carries no settings: connection passwords and webhook tokens never reach Redis.
Each worker reads its own (``Settings.load()`` at its edge, ``headrace worker``); the
job carries a profile of the driver's — a short hash per connection and for the state
store, over the URLs with their passwords masked — and a worker whose own profile
differs fails the attempt (terminally, naming what differs) rather than write to
another warehouse than the driver means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import queue as stdlib_queue
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from headrace.config import Settings, mask_url
from headrace.errors import ConfigError, QueueError
from headrace.executors.executor_base import (
    AttemptFn,
    Event,
    EventSink,
    Outcome,
    ResultRef,
    RunInfo,
    WorkItem,
)
from headrace.executors.process import ProcessExecutor
from headrace.observe.statsd import StatsdClient
from headrace.queue import (
    Job,
    JobOptions,
    JobState,
    Keep,
    Queue,
    QueueConnection,
    QueueEvents,
    Worker,
)
from headrace.queue.worker import run_until_signal
from headrace.state.store_base import CheckResultRecord

if TYPE_CHECKING:
    from headrace.pipeline import Pipeline

TASK_QUEUE = "headrace-tasks"
T = TypeVar("T")


# ---------------------------------------------------------------- JSON codec


def _encode(value: Any) -> Any:
    """Dataclasses to dicts and datetimes to tagged ISO strings, recursively."""
    if isinstance(value, Settings):  # never on the queue: workers have their own
        raise TypeError("settings are not sent through the queue (see settings_profile)")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _ref(raw: dict[str, Any] | None) -> ResultRef | None:
    if raw is None:
        return None
    items = raw.get("items")
    return ResultRef(
        kind=raw["kind"],
        value=raw.get("value"),
        path=raw.get("path"),
        format=raw.get("format"),
        items=[r for r in (_ref(i) for i in items) if r is not None] if items is not None else None,
    )


def settings_profile(settings: Settings) -> dict[str, str]:
    """What driver and worker must agree on, without a secret: a short hash per URL, password masked.

    Keys are ``state_url`` and ``connection:<name>``; the home folder, pools and alert
    channels are each side's own business.
    """

    def digest(url: str) -> str:
        return hashlib.sha256(mask_url(url).encode()).hexdigest()[:16]

    profile = {"state_url": digest(settings.state_url)}
    profile.update(
        {f"connection:{name}": digest(url) for name, url in sorted(settings.connections.items())}
    )
    return profile


def profile_mismatch(driver: dict[str, str], worker: dict[str, str]) -> list[str]:
    """Where the worker's settings point elsewhere than the driver's, one phrase each (empty: they agree).

    A connection only one side has is no mismatch: a task using one the worker lacks
    fails loudly on its own (unknown connection), and drivers often know more pipelines.
    """
    return [
        f"{key.replace('connection:', 'connection ')} points elsewhere on the worker"
        for key in sorted(driver.keys() & worker.keys())
        if driver[key] != worker[key]
    ]


def encode_work_item(item: WorkItem) -> dict[str, Any]:
    """A work item as JSON-ready data (the job's payload), its settings replaced by their profile."""
    run = {f.name: _encode(getattr(item.run, f.name)) for f in dataclasses.fields(item.run)
           if f.name not in ("settings", "state_url")}  # fmt: skip
    run["settings_profile"] = settings_profile(item.run.settings)
    data: dict[str, Any] = {
        f.name: _encode(getattr(item, f.name)) for f in dataclasses.fields(item) if f.name != "run"
    }
    data["run"] = run
    return data


def decode_work_item(data: dict[str, Any], settings: Settings) -> WorkItem:
    """The work item of a job, run with ``settings`` (the worker's own).

    Raises:
        SettingsMismatch: the worker's settings do not match the driver's profile.
    """
    raw = _decode(data)
    run = dict(raw["run"])
    driver_profile = run.pop("settings_profile", None)
    item = WorkItem(
        run=RunInfo(**run, settings=settings, state_url=settings.state_url),
        pipeline_file=raw["pipeline_file"],
        pipeline_module=raw["pipeline_module"],
        task_id=raw["task_id"],
        map_index=raw["map_index"],
        attempt=raw["attempt"],
        inputs={k: _ref(v) for k, v in raw["inputs"].items()},  # type: ignore[misc]
        map_input=_ref(raw.get("map_input")),
        timeout=raw.get("timeout"),
    )
    differences = profile_mismatch(driver_profile or {}, settings_profile(settings))
    if driver_profile is None or differences:
        raise SettingsMismatch(
            differences or ["the job carries no settings profile (an older driver)"],
            item=item,
        )
    return item


class SettingsMismatch(ConfigError):
    """A worker's settings do not match the driver's: running the attempt could touch the wrong systems.

    Args:
        differences: what differs, one phrase each (``connection warehouse points elsewhere
            on the worker``).
        item: the attempt that was not run; its pipeline, task and run id locate the error.
        location: pipeline, task, run_id, when there is no ``item``.

    Attributes:
        differences, item: as given.
    """

    def __init__(
        self, differences: list[str], *, item: WorkItem | None = None, **location: Any
    ) -> None:
        self.differences = differences
        self.item = item
        if item is not None:
            location = {
                "pipeline": item.run.pipeline,
                "task": item.task_id,
                "run_id": item.run.run_id,
                **location,
            }
        super().__init__(
            f"not run: the worker's settings differ from the driver's: {'; '.join(differences)}. "
            "Give the worker the same HEADRACE_CONN_* / HEADRACE_STATE_URL (or headrace.toml) "
            "as the driver.",
            **location,
        )


def encode_outcome(outcome: Outcome) -> dict[str, Any]:
    return _encode(outcome)


def decode_outcome(data: dict[str, Any]) -> Outcome:
    raw = _decode(data)
    raw["result"] = _ref(raw.get("result"))
    raw["checks"] = [CheckResultRecord(**c) for c in raw.get("checks") or []]
    return Outcome(**raw)


def job_id_for(item: WorkItem) -> str:
    """One job per attempt: adding the same attempt twice is a no-op (BullMQ jobId)."""
    return f"{item.run.run_id}/{item.task_id}/{item.map_index}/{item.attempt}"


# ---------------------------------------------------------------- driver side


class DistributedExecutor:
    """Runs work items on ``headrace worker`` processes through the Redis task queue.

    Args:
        connection: Redis URL and key prefix shared with the workers.
        queue_name: the task queue the workers listen on.
        capacity: work items in flight at once (across all workers).
        poll_interval: seconds between state checks of in-flight jobs, a fallback for
            events the listener could have missed (Redis restart, trimmed stream).
        statsd: where the task queue's depth goes (gauge ``queue.depth``, tags queue and
            state: waiting, delayed, active), at every poll.

    Example:
        >>> connection = QueueConnection.from_settings(settings)
        >>> runner = Runner(store, executor=DistributedExecutor(connection), settings=settings)
    """

    def __init__(
        self,
        connection: QueueConnection | None = None,
        queue_name: str = TASK_QUEUE,
        capacity: int = 16,
        poll_interval: float = 5.0,
        statsd: StatsdClient | None = None,
    ) -> None:
        self.connection = connection or QueueConnection()
        self.statsd = statsd
        self.queue_name = queue_name
        self.capacity = capacity
        self.poll_interval = poll_interval
        self._emit: EventSink = lambda event: None
        self._inbox: stdlib_queue.Queue[Outcome | Event] = stdlib_queue.Queue()
        self._pending: dict[str, WorkItem] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queue: Queue | None = None
        self._events: QueueEvents | None = None
        self._last_poll = 0.0

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self, emit: EventSink, pipeline: Pipeline, run_item: AttemptFn) -> None:
        """Open the queue; ``run_item`` is the workers' business (``headrace worker`` has its own)."""
        self._emit = emit
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="headrace-distributed", daemon=True
        )
        self._thread.start()
        self._call(self._open())
        self._last_poll = time.monotonic()

    async def _open(self) -> None:
        self._queue = Queue(self.queue_name, self.connection)
        self._events = QueueEvents(self.queue_name, self.connection)
        self._events.on("completed", self._on_completed)
        self._events.on("failed", self._on_failed)
        self._events.on("progress", self._on_progress)
        await self._events.start()

    def _take(self, job_id: str) -> WorkItem | None:
        with self._lock:
            return self._pending.pop(job_id, None)

    def _on_completed(self, fields: dict[str, Any]) -> None:
        item = self._take(str(fields.get("jobId")))
        if item is not None:
            self._inbox.put(self._outcome_of(item, fields.get("returnvalue"), None))

    def _on_failed(self, fields: dict[str, Any]) -> None:
        item = self._take(str(fields.get("jobId")))
        if item is not None:
            self._inbox.put(self._outcome_of(item, None, str(fields.get("failedReason"))))

    def _on_progress(self, fields: dict[str, Any]) -> None:
        with self._lock:
            item = self._pending.get(str(fields.get("jobId")))
        data = fields.get("data")
        if item is None or not isinstance(data, dict):
            return
        self._inbox.put(
            Event.from_progress(item, data.get("done"), data.get("total"), data.get("message"))
        )

    @staticmethod
    def _outcome_of(item: WorkItem, returned: Any, failed_reason: str | None) -> Outcome:
        if failed_reason is None and isinstance(returned, dict):
            return decode_outcome(returned)
        # The job itself failed: the worker could not run the attempt (it stalled
        # more often than allowed, or died in a way the worker could not report).
        error = (
            f"task {item.task_id!r} attempt {item.attempt} was lost on the queue "
            f"{item.run.run_id}: {failed_reason or 'no outcome returned'}"
        )
        return Outcome(
            item.task_id, item.map_index, item.attempt, ok=False,
            error=error, error_kind="worker_died", retryable=True, log=error,
        )  # fmt: skip

    def submit(self, item: WorkItem) -> None:
        job_id = job_id_for(item)
        with self._lock:
            if len(self._pending) >= self.capacity:
                raise QueueError(f"distributed executor full ({self.capacity} items in flight)")
            self._pending[job_id] = item
        assert self._queue is not None
        options = JobOptions(
            job_id=job_id,
            attempts=1,  # the engine owns retries; stalls are recovered by the queue
            remove_on_complete=Keep(age_s=3600),
            remove_on_fail=Keep(age_s=7 * 86400),
        )
        self._call(
            self._queue.add(f"{item.run.pipeline}.{item.task_id}", encode_work_item(item), options)
        )

    def wait(self, timeout: float | None) -> list[Outcome]:
        end = None if timeout is None else time.monotonic() + timeout
        outcomes: list[Outcome] = []
        while True:
            with self._lock:
                if not self._pending and self._inbox.empty():
                    return outcomes
            block = 0.25 if end is None else max(0.0, min(0.25, end - time.monotonic()))
            try:
                got: Outcome | Event | None = self._inbox.get(timeout=block)
            except stdlib_queue.Empty:
                got = None
            while got is not None:
                if isinstance(got, Event):
                    self._emit(got)
                else:
                    outcomes.append(got)
                try:
                    got = self._inbox.get_nowait()
                except stdlib_queue.Empty:
                    got = None
            if time.monotonic() - self._last_poll >= self.poll_interval:
                self._last_poll = time.monotonic()
                self._call(self._poll())
            if outcomes or (end is not None and time.monotonic() >= end):
                return outcomes

    async def _poll(self) -> None:
        """Settle in-flight jobs whose final event was missed."""
        assert self._queue is not None
        if self.statsd is not None:
            counts = await self._queue.counts("waiting", "delayed", "active")
            for state, n in counts.items():
                self.statsd.gauge("queue.depth", n, {"queue": self.queue_name, "state": state})
        with self._lock:
            ids = list(self._pending)
        for job_id in ids:
            job = await self._queue.get_job(job_id)
            job_state = await job.state() if job is not None else None
            if job_state == JobState.COMPLETED and job is not None:
                self._on_completed({"jobId": job_id, "returnvalue": job.return_value})
            elif job_state == JobState.FAILED and job is not None:
                self._on_failed({"jobId": job_id, "failedReason": job.failed_reason})

    def shutdown(self, kill: bool = False) -> None:
        if self._loop is None:
            return
        if kill:
            self._call(self._remove_waiting())
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop.close()
        self._loop = None

    async def _remove_waiting(self) -> None:
        """Take not-yet-started attempts off the queue (running ones cannot be stopped remotely)."""
        assert self._queue is not None
        with self._lock:
            ids = list(self._pending)
            self._pending.clear()
        for job_id in ids:
            job = await self._queue.get_job(job_id)
            if job is not None and await job.state() in (
                JobState.WAITING,
                JobState.DELAYED,
                JobState.PRIORITIZED,
            ):
                await job.remove()

    async def _close(self) -> None:
        if self._events is not None:
            await self._events.close()
        if self._queue is not None:
            await self._queue.close()


# ---------------------------------------------------------------- worker side


class _AttemptPool:
    """A local :class:`ProcessExecutor` driven from one thread, awaited from asyncio."""

    def __init__(self, concurrency: int, run_item: AttemptFn) -> None:
        self.concurrency = concurrency
        self.run_item = run_item
        self._inbox: stdlib_queue.Queue[tuple[WorkItem, Job, asyncio.Future[Outcome]] | None] = (
            stdlib_queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._drive, name="headrace-attempts", daemon=True)
        self._thread.start()

    async def run(self, item: WorkItem, job: Job) -> Outcome:
        assert self._loop is not None
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._inbox.put((item, job, future))
        return await future

    def _drive(self) -> None:
        executor = ProcessExecutor(concurrency=self.concurrency, keep_warm=True)
        jobs: dict[tuple[str, int, int], Job] = {}
        futures: dict[tuple[str, int, int], asyncio.Future[Outcome]] = {}
        assert self._loop is not None
        loop = self._loop

        def forward(event: Event) -> None:
            job = jobs.get((event.task_id or "", event.map_index, event.attempt or 0))
            if job is not None and event.kind == "progress":
                progress = {"done": event.done, "total": event.total, "message": event.message}
                asyncio.run_coroutine_threadsafe(job.update_progress(progress), loop)

        executor.start(forward, None, self.run_item)  # type: ignore[arg-type]  # workers find pipelines by file
        try:
            while True:
                try:
                    while True:
                        got = self._inbox.get(timeout=0.05 if futures else 0.5)
                        if got is None:
                            return
                        item, job, future = got
                        key = (item.task_id, item.map_index, item.attempt)
                        jobs[key], futures[key] = job, future
                        executor.submit(item)
                except stdlib_queue.Empty:
                    pass
                for outcome in executor.wait(0.05) if futures else []:
                    key = (outcome.task_id, outcome.map_index, outcome.attempt)
                    jobs.pop(key, None)
                    fut = futures.pop(key, None)
                    if fut is not None:
                        loop.call_soon_threadsafe(_settle, fut, outcome)
        finally:
            executor.close(kill=True)

    def close(self) -> None:
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(10)
            self._thread = None


def _refused(exc: SettingsMismatch) -> Outcome:
    now = datetime.now(UTC)
    item = exc.item
    assert item is not None  # decode_work_item raises it with the item it decoded
    return Outcome(
        item.task_id, item.map_index, item.attempt, ok=False, error=str(exc),
        error_kind=type(exc).__name__, retryable=False, log=str(exc), started_at=now, ended_at=now,
    )  # fmt: skip


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


class TaskWorker:
    """Takes pipeline task attempts from the task queue and runs them locally.

    Args:
        connection: Redis URL and key prefix shared with the drivers.
        queue_name: the task queue.
        concurrency: attempts run at once (each in its own process of a warm pool).
        name: worker name shown in Redis ``CLIENT LIST``.
        run_item: runs one attempt: the engine's ``run_work_item`` (passed in by the
            caller, as executors sit below the engine).
        settings: the worker's own settings, read at its edge: every attempt runs with
            them (jobs carry no secrets), after checking they match the driver's profile.

    Example:
        >>> from headrace.engine.attempt import run_work_item
        >>> settings = Settings.load()
        >>> connection = QueueConnection.from_settings(settings)
        >>> TaskWorker(connection, concurrency=4, run_item=run_work_item, settings=settings).run_sync()  # doctest: +SKIP
    """

    def __init__(
        self,
        connection: QueueConnection | None = None,
        queue_name: str = TASK_QUEUE,
        concurrency: int = 1,
        name: str | None = None,
        *,
        run_item: AttemptFn,
        settings: Settings,
    ) -> None:
        self.connection = connection or QueueConnection()
        self.settings = settings
        self.queue_name = queue_name
        self.concurrency = concurrency
        self._pool = _AttemptPool(concurrency, run_item)
        self.worker = Worker(
            queue_name,
            self._handle,
            connection=self.connection,
            concurrency=concurrency,
            # A job may stall more than once when several workers die in a row.
            max_stalled_count=3,
            name=name,
        )

    async def _handle(self, job: Job) -> dict[str, Any]:
        try:
            item = decode_work_item(job.data, self.settings)
        except SettingsMismatch as exc:  # the driver gets a terminal failure naming the task
            return encode_outcome(_refused(exc))
        outcome = await self._pool.run(item, job)
        return encode_outcome(outcome)

    async def start(self) -> None:
        self._pool.start(asyncio.get_running_loop())
        await self.worker.start()

    async def close(self) -> None:
        await self.worker.close()
        await asyncio.to_thread(self._pool.close)

    def run_sync(self) -> None:
        """Run until SIGTERM/SIGINT; attempts in progress finish first."""
        run_until_signal(self.start, self.close, lambda: self.worker.loop_task)
