"""Redis job queue with BullMQ semantics, shared with Node.js BullMQ.

``Queue`` adds jobs, ``Worker`` processes them, ``QueueEvents`` listens to what
happens to them, ``Job`` is one of them. Built on the official ``bullmq`` package;
:mod:`headrace.queue.workarounds` holds the fixes for its known defects.
"""

from __future__ import annotations

from headrace.extras import require

# Every module here runs on bullmq and redis-py: without them, one message naming the extra.
require("queue", "bullmq", "headrace.queue (Redis job queues)")

from headrace.queue.connection import QueueConnection  # noqa: E402
from headrace.queue.events import QueueEvents  # noqa: E402
from headrace.queue.job import (  # noqa: E402
    Backoff,
    Job,
    JobFailedError,
    JobInfo,
    JobNotFoundError,
    JobOptions,
    JobState,
    Keep,
)
from headrace.queue.producer import Queue, Repeatable, enqueue  # noqa: E402
from headrace.queue.worker import RateLimit, Worker, WorkerCrashedError  # noqa: E402

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
