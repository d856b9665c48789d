"""Redis job queue with BullMQ semantics, shared with Node.js BullMQ.

``Queue`` adds jobs, ``Worker`` processes them, ``QueueEvents`` listens to what
happens to them, ``Job`` is one of them. Built on the official ``bullmq`` package;
:mod:`headrace.queue.workarounds` holds the fixes for its known defects.
"""

from __future__ import annotations

from headrace.queue.connection import QueueConnection
from headrace.queue.events import QueueEvents
from headrace.queue.job import (
    Backoff,
    Job,
    JobFailedError,
    JobInfo,
    JobNotFoundError,
    JobOptions,
    JobState,
    Keep,
)
from headrace.queue.queue import Queue, Repeatable, enqueue
from headrace.queue.worker import RateLimit, Worker, WorkerCrashedError

__all__ = [
    "Backoff",
    "Job",
    "JobFailedError",
    "JobInfo",
    "JobNotFoundError",
    "JobOptions",
    "JobState",
    "Keep",
    "Queue",
    "QueueConnection",
    "QueueEvents",
    "RateLimit",
    "Repeatable",
    "Worker",
    "WorkerCrashedError",
    "enqueue",
]
