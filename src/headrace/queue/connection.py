"""Where the queue lives: a Redis URL and BullMQ's key prefix.

Every key a queue, worker or event stream touches is ``<prefix>:<queue>:...``; the
prefix is BullMQ's ``prefix`` option, so a Node BullMQ process with the same prefix
shares the queue, and tests isolate themselves with a prefix of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, TimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError

from headrace.config import (
    DEFAULT_QUEUE_PREFIX,
    DEFAULT_REDIS_URL,
    QueueSettings,
    Settings,
    mask_url,
)

DEFAULT_PREFIX = DEFAULT_QUEUE_PREFIX
REDIS_URL_ENV = "HEADRACE_REDIS_URL"
PREFIX_ENV = "HEADRACE_QUEUE_PREFIX"


@dataclass(frozen=True)
class QueueConnection:
    """The Redis server and key prefix a queue, worker or event listener uses.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
        prefix: first part of every Redis key (BullMQ's ``prefix`` option).

    Example:
        >>> QueueConnection("redis://127.0.0.1:6379/0", prefix="etl").prefix
        'etl'
    """

    url: str = DEFAULT_REDIS_URL
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_settings(cls, settings: Settings | QueueSettings) -> QueueConnection:
        """The queue named by the settings read at the edge (their ``queue`` section).

        Example:
            >>> QueueConnection.from_settings(QueueSettings(prefix="etl")).prefix
            'etl'
        """
        queue = settings.queue if isinstance(settings, Settings) else settings
        return cls(url=queue.redis_url, prefix=queue.prefix)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QueueConnection:
        """Read ``HEADRACE_REDIS_URL`` and ``HEADRACE_QUEUE_PREFIX`` from ``environ`` (an edge's).

        Prefer :meth:`from_settings`; this reads only the two variables, no headrace.toml.
        """
        return cls(
            url=environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL,
            prefix=environ.get(PREFIX_ENV) or DEFAULT_PREFIX,
        )

    def bullmq_options(self) -> dict[str, Any]:
        """The ``connection``/``prefix`` part of any bullmq options dict."""
        return {"connection": self.url, "prefix": self.prefix}

    def blocking_client(self) -> aioredis.Redis:
        """A client for blocking pops, with no socket timeout.

        redis-py 8 gives every socket a 5 s read timeout by default, while a worker's
        idle ``BZPOPMIN`` legitimately blocks for up to 10 s: the read times out, the
        worker treats it as a lost connection and waits ``runRetryDelay`` (15 s)
        before trying again, so delayed jobs and rate-limited queues stall. The
        server-side block timeout already bounds the wait, so no socket timeout is
        needed here; connecting still times out after 5 s.
        """
        return aioredis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=None,
            socket_connect_timeout=5,
            retry=Retry(ExponentialBackoff(cap=20, base=1), 20),
            retry_on_error=[BusyLoadingError, RedisConnectionError, TimeoutError],
            single_connection_client=True,
        )

    def client(self) -> aioredis.Redis:
        """A plain client (default socket timeout) for inspection commands."""
        return aioredis.from_url(self.url, decode_responses=True)

    def key(self, queue_name: str, *parts: str) -> str:
        """The Redis key ``<prefix>:<queue>[:part...]``."""
        return ":".join((self.prefix, queue_name, *parts))

    def __str__(self) -> str:
        return f"{mask_url(self.url)} (prefix {self.prefix!r})"
