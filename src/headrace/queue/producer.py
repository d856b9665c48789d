"""The producer side: add jobs, schedule repeatable ones, inspect and manage a queue.

A thin adapter over ``bullmq.Queue``: it runs the same Lua scripts as Node BullMQ, so
a queue filled here can be processed by Node workers and the other way round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import bullmq

from headrace.errors import QueueError, did_you_mean
from headrace.queue.connection import QueueConnection
from headrace.queue.job import Job, JobNotFoundError, JobOptions, JobState

_COUNTED_STATES = (
    JobState.WAITING,
    JobState.PRIORITIZED,
    JobState.DELAYED,
    JobState.ACTIVE,
    JobState.WAITING_CHILDREN,
    JobState.COMPLETED,
    JobState.FAILED,
)


@dataclass(frozen=True)
class Repeatable:
    """A registered repeatable job (a BullMQ job scheduler).

    Args:
        id: the scheduler id given when it was registered.
        name: name of the jobs it produces.
        pattern: cron pattern, or ``None`` for an interval.
        every_ms: interval, or ``None`` for a cron pattern.
        tz: time zone of the pattern (``None`` = UTC).
        next_ms: epoch milliseconds of the next job.
    """

    id: str
    name: str
    pattern: str | None
    every_ms: int | None
    tz: str | None
    next_ms: int | None


def _state(name: str | JobState) -> JobState:
    try:
        return JobState(name)
    except ValueError:
        known = [s.value for s in JobState]
        raise QueueError(f"Unknown job state {name!r}." + did_you_mean(str(name), known)) from None


class Queue:
    """A named BullMQ queue in Redis.

    Args:
        name: queue name, shared with any Node or Python worker of the same prefix.
        connection: Redis URL and key prefix (default: local Redis, prefix ``bull``).
        default_options: options applied to every job unless the job sets its own.

    Example:
        >>> async def main() -> None:
        ...     async with Queue("data-processing") as queue:
        ...         job = await queue.add("process-csv", {"inputFile": "in.csv"},
        ...                               JobOptions(attempts=3, backoff=Backoff.exponential(2000)))
    """

    def __init__(
        self,
        name: str,
        connection: QueueConnection | None = None,
        default_options: JobOptions | None = None,
    ) -> None:
        if not name or ":" in name:
            raise QueueError("a queue name must be non-empty and must not contain ':'.", queue=name)
        self.name = name
        self.connection = connection or QueueConnection()
        self.default_options = default_options
        self._inner: bullmq.Queue | None = None

    @property
    def bullmq(self) -> bullmq.Queue:
        """The wrapped ``bullmq.Queue`` (created on first use, inside the running loop)."""
        if self._inner is None:
            self._inner = bullmq.Queue(self.name, self.connection.bullmq_options())
        return self._inner

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Redis connection."""
        if self._inner is not None:
            await self._inner.close()
            self._inner = None

    def _options(self, options: JobOptions | None) -> dict[str, Any]:
        effective = (options or JobOptions()).merged_over(self.default_options)
        return effective.to_bullmq()

    async def add(self, name: str, data: Any = None, options: JobOptions | None = None) -> Job:
        """Add one job.

        Args:
            name: job name (handlers usually dispatch on it).
            data: JSON-serialisable payload.
            options: per-job options over the queue's defaults.

        Returns:
            The job; with a ``job_id`` that already exists, the existing job's id and
            no new job (de-duplication).
        """
        inner = await self.bullmq.add(name, {} if data is None else data, self._options(options))
        return Job(inner)

    async def add_bulk(self, jobs: Iterable[tuple[str, Any, JobOptions | None]]) -> list[Job]:
        """Add many jobs in one round trip (one MULTI of Lua calls).

        Args:
            jobs: ``(name, data, options)`` triples.

        Returns:
            The jobs, in the given order.
        """
        payload = [
            {"name": name, "data": {} if data is None else data, "opts": self._options(options)}
            for name, data, options in jobs
        ]
        if not payload:
            return []
        return [Job(inner) for inner in await self.bullmq.addBulk(payload)]

    async def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or ``None`` if it does not exist (any more)."""
        inner = await bullmq.Job.fromId(self.bullmq, job_id)
        return Job(inner) if inner is not None else None

    async def job(self, job_id: str) -> Job:
        """The job with this id; :class:`JobNotFoundError` if there is none."""
        found = await self.get_job(job_id)
        if found is None:
            raise JobNotFoundError(self.name, job_id)
        return found

    async def counts(self, *states: str | JobState) -> dict[str, int]:
        """Number of jobs per state (all states when none given)."""
        wanted = [_state(s) for s in states] or list(_COUNTED_STATES)
        raw = await self.bullmq.getJobCounts(*[s.value for s in wanted])
        return {str(k): int(v) for k, v in raw.items()}

    async def jobs(
        self, states: Sequence[str | JobState], start: int = 0, end: int = -1
    ) -> list[Job]:
        """Jobs in the given states, newest first, ``start``..``end`` inclusive."""
        names = [_state(s).value for s in states]
        return [Job(j) for j in await self.bullmq.getJobs(names, start, end)]

    async def pause(self) -> None:
        """Stop workers from taking new jobs (running jobs finish)."""
        await self.bullmq.pause()

    async def resume(self) -> None:
        await self.bullmq.resume()

    async def is_paused(self) -> bool:
        return bool(await self.bullmq.isPaused())

    async def drain(self, include_delayed: bool = False) -> None:
        """Remove waiting (and optionally delayed) jobs; active and finished ones stay."""
        await self.bullmq.drain(include_delayed)

    async def clean(self, grace_ms: int, state: str | JobState, limit: int = 0) -> list[str]:
        """Remove jobs in ``state`` older than ``grace_ms``; returns their ids."""
        return list(await self.bullmq.clean(grace_ms, limit, _state(state).value))

    async def obliterate(self, force: bool = False) -> None:
        """Delete the whole queue and every job in it (``force`` even with active jobs)."""
        await self.bullmq.obliterate(force=force)

    async def worker_names(self) -> list[str]:
        """Names of the named workers connected to this queue now (from ``CLIENT LIST``)."""
        clients = await self.bullmq.get_workers()
        names = {str(c.get("rawname", "")).partition(":w:")[2] for c in clients}
        return sorted(n for n in names if n)

    async def add_repeatable(
        self,
        scheduler_id: str,
        name: str,
        data: Any = None,
        *,
        pattern: str | None = None,
        every_ms: int | None = None,
        tz: str | None = None,
        options: JobOptions | None = None,
    ) -> Job | None:
        """Create or replace a repeatable job (BullMQ job scheduler).

        Args:
            scheduler_id: stable id; calling again with it updates, never duplicates.
            name: name of the jobs produced.
            data: payload of every produced job.
            pattern: cron pattern, 5 fields or 6 with seconds first (``0 2 * * *``).
            every_ms: fixed interval instead of a pattern.
            tz: IANA time zone of the pattern; UTC when omitted.
            options: job options (attempts, backoff, retention) of produced jobs.

        Returns:
            The next job, already in the delayed set.
        """
        if (pattern is None) == (every_ms is None):
            raise QueueError(
                f"repeatable {scheduler_id!r}: give exactly one of pattern= (cron) or every_ms=.",
                queue=self.name,
            )
        repeat: dict[str, Any] = {"pattern": pattern} if pattern else {"every": every_ms}
        if tz:
            repeat["tz"] = tz
        try:
            inner = await self.bullmq.upsertJobScheduler(
                scheduler_id, repeat, name, {} if data is None else data, self._options(options)
            )
        except (ValueError, KeyError) as exc:
            raise QueueError(
                f"repeatable {scheduler_id!r}: invalid schedule {pattern or every_ms!r}: {exc}",
                queue=self.name,
            ) from exc
        return Job(inner) if inner is not None else None

    async def remove_repeatable(self, scheduler_id: str) -> bool:
        """Remove a repeatable job and its pending next job; ``False`` if it did not exist."""
        return await self.bullmq.removeJobScheduler(scheduler_id) == 0

    async def repeatables(self) -> list[Repeatable]:
        """The registered repeatable jobs."""
        out = []
        for raw in await self.bullmq.getJobSchedulers():
            out.append(
                Repeatable(
                    id=raw.get("key") or raw.get("id"),
                    name=raw.get("name"),
                    pattern=raw.get("pattern"),
                    every_ms=int(raw["every"]) if raw.get("every") else None,
                    tz=raw.get("tz"),
                    next_ms=int(raw["next"]) if raw.get("next") else None,
                )
            )
        return out


def enqueue(
    queue_name: str,
    name: str,
    data: Any = None,
    options: JobOptions | None = None,
    connection: QueueConnection | None = None,
) -> str:
    """Add one job from synchronous code (opens and closes its own connection).

    Returns:
        The job id.

    Example:
        >>> enqueue("data-processing", "validate-data", {"inputFile": "in.csv"})  # doctest: +SKIP
        '1'
    """

    async def _add() -> str:
        async with Queue(queue_name, connection) as queue:
            return (await queue.add(name, data, options)).id

    return asyncio.run(_add())
