"""Jobs: their options (attempts, backoff, delay, priority, retention), state and handle.

The options are typed Python objects that translate to BullMQ's option dict, so a
job added here is stored exactly as Node BullMQ would store it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import bullmq

from headrace.errors import QueueError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class JobState(StrEnum):
    """Where a job is in its life (BullMQ's state names)."""

    WAITING = "waiting"
    PRIORITIZED = "prioritized"
    DELAYED = "delayed"
    ACTIVE = "active"
    WAITING_CHILDREN = "waiting-children"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class JobNotFoundError(QueueError):
    """A job id that is not (or no longer) in the queue."""

    def __init__(self, queue: str, job_id: str) -> None:
        self.queue = queue
        self.job_id = job_id
        super().__init__(
            f"no job with id {job_id!r} (never added, or removed by "
            f"removeOnComplete/removeOnFail retention). List jobs with `headrace queue jobs {queue}`.",
            queue=queue,
        )


class JobFailedError(QueueError):
    """A job awaited by the caller ended in the failed state."""

    def __init__(self, queue: str, job_id: str, reason: str) -> None:
        self.queue = queue
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id!r} failed: {reason}", queue=queue)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retrying a failed attempt.

    Args:
        kind: ``fixed`` (always ``delay_ms``) or ``exponential``
            (``delay_ms * 2 ** (attempt - 1)``).
        delay_ms: base delay in milliseconds.

    Example:
        >>> Backoff.exponential(2000).to_bullmq()
        {'type': 'exponential', 'delay': 2000}
    """

    kind: Literal["fixed", "exponential"]
    delay_ms: int

    @classmethod
    def fixed(cls, delay_ms: int) -> Backoff:
        return cls("fixed", delay_ms)

    @classmethod
    def exponential(cls, delay_ms: int) -> Backoff:
        return cls("exponential", delay_ms)

    def to_bullmq(self) -> dict[str, Any]:
        return {"type": self.kind, "delay": self.delay_ms}


@dataclass(frozen=True)
class Keep:
    """Retention of finished jobs: keep those younger than ``age_s`` and at most ``count``.

    Args:
        age_s: remove finished jobs older than this many seconds.
        count: keep at most this many finished jobs (the newest).
    """

    age_s: int | None = None
    count: int | None = None

    def to_bullmq(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.age_s is not None:
            out["age"] = self.age_s
        if self.count is not None:
            out["count"] = self.count
        return out


Retention = bool | int | Keep
"""``True`` removes at once, ``False`` keeps all, an int keeps that many, :class:`Keep` both."""


def _retention(value: Retention) -> bool | int | dict[str, int]:
    return value.to_bullmq() if isinstance(value, Keep) else value


@dataclass(frozen=True)
class JobOptions:
    """Options of one job; ``None`` means "use the queue's default".

    Args:
        attempts: total tries before the job fails for good.
        backoff: wait between tries (:class:`Backoff`).
        delay_ms: do not start before this many milliseconds from now.
        priority: 1 is the highest, larger numbers run later; 0 means none.
        job_id: a caller-chosen id; adding a second job with the same id is a no-op.
        remove_on_complete: retention of completed jobs.
        remove_on_fail: retention of failed jobs.

    Example:
        >>> JobOptions(attempts=3, backoff=Backoff.fixed(500)).to_bullmq()
        {'attempts': 3, 'backoff': {'type': 'fixed', 'delay': 500}}
    """

    attempts: int | None = None
    backoff: Backoff | None = None
    delay_ms: int | None = None
    priority: int | None = None
    job_id: str | None = None
    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None

    def merged_over(self, defaults: JobOptions | None) -> JobOptions:
        """These options, with unset fields taken from ``defaults``."""
        if defaults is None:
            return self
        changes = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }
        return dataclasses.replace(defaults, **changes)

    def to_bullmq(self) -> dict[str, Any]:
        """BullMQ's option dict (camelCase keys, milliseconds)."""
        out: dict[str, Any] = {}
        if self.attempts is not None:
            if self.attempts < 1:
                raise QueueError(f"attempts must be at least 1, got {self.attempts}")
            out["attempts"] = self.attempts
        if self.backoff is not None:
            out["backoff"] = self.backoff.to_bullmq()
        if self.delay_ms:
            out["delay"] = self.delay_ms
        if self.priority:
            out["priority"] = self.priority
        if self.job_id is not None:
            # BullMQ refuses purely numeric custom ids (they clash with its counter).
            if self.job_id.isdigit():
                raise QueueError(
                    f"job_id {self.job_id!r} is all digits, which BullMQ reserves for its own "
                    f"ids; add a prefix such as 'job-{self.job_id}'."
                )
            out["jobId"] = self.job_id
        if self.remove_on_complete is not None:
            out["removeOnComplete"] = _retention(self.remove_on_complete)
        if self.remove_on_fail is not None:
            out["removeOnFail"] = _retention(self.remove_on_fail)
        return out


@dataclass(frozen=True)
class JobInfo:
    """A picklable snapshot of a job, handed to handlers that run in another process.

    Args:
        id: the job's id.
        name: the job's name (its type).
        data: the job's data.
        attempts_made: attempts that ended before this one.
        progress_key: set by the worker's process pool; lets :meth:`update_progress`
            reach the job.

    Example:
        >>> def handler(info: JobInfo) -> int:  # run by Worker(..., processes=2)
        ...     info.update_progress(50)
        ...     return len(info.data["rows"])
    """

    id: str
    name: str
    data: Any
    attempts_made: int
    progress_key: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Report progress from a process-pool handler (returns at once).

        The worker stores it in Redis and emits its ``progress`` event, in order,
        before the job completes.

        Raises:
            QueueError: called outside a worker's process pool, or progress that is
                not JSON-serialisable.
        """
        from headrace.queue.process_pool import report_progress

        report_progress(self, progress)


class Job:
    """Handle on one job in a queue (wraps a ``bullmq.Job``).

    Args:
        inner: the bullmq job.
        on_progress: called after a progress update is stored (the worker's event).
    """

    def __init__(
        self,
        inner: bullmq.Job,
        on_progress: Callable[[Job, Any], Awaitable[None] | None] | None = None,
    ) -> None:
        self._inner = inner
        self._on_progress = on_progress

    @property
    def id(self) -> str:
        return str(self._inner.id)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def data(self) -> Any:
        return self._inner.data

    @property
    def queue_name(self) -> str:
        return self._inner.queue.name

    @property
    def attempts_made(self) -> int:
        """Attempts that ended (failed or completed); a stall does not count."""
        return int(self._inner.attemptsMade)

    @property
    def attempts_started(self) -> int:
        return int(self._inner.attemptsStarted)

    @property
    def stalled_count(self) -> int:
        """How often a worker died or hung while holding this job."""
        return int(self._inner.stalledCounter)

    @property
    def progress(self) -> Any:
        return self._inner.progress

    @property
    def return_value(self) -> Any:
        return self._inner.returnvalue

    @property
    def failed_reason(self) -> str | None:
        return self._inner.failedReason

    @property
    def timestamp_ms(self) -> int:
        return int(self._inner.timestamp)

    @property
    def processed_on_ms(self) -> int | None:
        return int(self._inner.processedOn) if self._inner.processedOn else None

    @property
    def finished_on_ms(self) -> int | None:
        return int(self._inner.finishedOn) if self._inner.finishedOn else None

    @property
    def options(self) -> dict[str, Any]:
        """The stored BullMQ options of this job."""
        return dict(self._inner.opts)

    @property
    def bullmq(self) -> bullmq.Job:
        """The wrapped bullmq job, for features this adapter does not cover."""
        return self._inner

    def info(self) -> JobInfo:
        """A picklable snapshot for another process."""
        return JobInfo(self.id, self.name, self.data, self.attempts_made)

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Store progress (a number or a dict) and emit the ``progress`` event."""
        await self._inner.updateProgress(progress)
        if self._on_progress is not None:
            result = self._on_progress(self, progress)
            if result is not None:
                await result

    async def log(self, line: str) -> None:
        """Append a line to the job's log (shown by inspection tools such as Bull Board)."""
        await self._inner.log(line)

    async def state(self) -> JobState:
        """The job's current state, read from Redis."""
        raw = await self._inner.getState()
        try:
            return JobState(raw)
        except ValueError:
            return JobState.UNKNOWN

    async def remove(self) -> None:
        """Remove the job (fails for a job that is active, i.e. locked by a worker)."""
        await self._inner.remove()

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, queue={self.queue_name!r})"
