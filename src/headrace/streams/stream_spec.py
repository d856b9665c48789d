"""Declaring a streaming sync: the stream sources and :func:`stream_sync`.

Like ``headrace.sync`` this imports nothing heavy: the source specs are frozen
dataclasses; brokers' clients are imported when a stream is opened.

Example:
    >>> from headrace import destination
    >>> from headrace.streams import redis_stream, stream_sync
    >>> clicks = stream_sync(
    ...     "clicks",
    ...     source=redis_stream("clicks", url="redis://127.0.0.1:6379/0", group="warehouse"),
    ...     destination=destination("warehouse", table="clicks"),
    ... )
    >>> @pipeline(schedule="*/15 * * * *")
    ... def hourly():
    ...     clicks()        # a bounded task: loads what is in the stream, then returns
    >>> # or long-lived: headrace stream file.py:clicks
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headrace.errors import DefinitionError
from headrace.pipeline import Context, Pipeline, Task
from headrace.pipeline.graph_builder import caller_site
from headrace.streams.decode import Decoder
from headrace.streams.stream_base import Limits, StreamSource
from headrace.sync.sync_spec import DestinationSpec


@dataclass(frozen=True)
class RedisStreamSpec:
    """A Redis stream read through a consumer group (see ``RedisStreamSource``)."""

    stream: str
    url: str = "redis://127.0.0.1:6379/0"
    group: str = "headrace"
    consumer: str = "headrace"
    field: str = "data"
    start: str = "0"
    min_idle_ms: int = 0

    def open(self) -> StreamSource:
        """The source (imports redis-py)."""
        from headrace.streams.redis_streams import RedisStreamSource

        return RedisStreamSource(
            self.url, self.stream, self.group, self.consumer,
            field=self.field, start=self.start, min_idle_ms=self.min_idle_ms,
        )  # fmt: skip


@dataclass(frozen=True)
class NatsStreamSpec:
    """A NATS JetStream stream read by a durable pull consumer."""

    stream: str
    url: str = "nats://127.0.0.1:4222"
    durable: str = "headrace"
    subject: str | None = None
    ack_wait: float = 60.0

    def open(self) -> StreamSource:
        """The source (imports nats-py)."""
        from headrace.streams.nats_jetstream import NatsStreamSource

        return NatsStreamSource(
            self.url, self.stream, self.durable, subject=self.subject, ack_wait=self.ack_wait
        )


@dataclass(frozen=True)
class KinesisStreamSpec:
    """A Kinesis stream read shard by shard."""

    stream: str
    application: str = "headrace"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    start: str = "TRIM_HORIZON"

    def open(self) -> StreamSource:
        """The source (imports boto3)."""
        from headrace.streams.kinesis import KinesisStreamSource

        return KinesisStreamSource(
            self.stream, self.application, region=self.region,
            endpoint_url=self.endpoint_url, start=self.start,
        )  # fmt: skip


StreamSpec = RedisStreamSpec | NatsStreamSpec | KinesisStreamSpec


def redis_stream(stream: str, **options: Any) -> RedisStreamSpec:
    """A Redis stream: ``url=``, ``group=``, ``consumer=``, ``field=`` (payload field),
    ``start=`` ("0" or "$"), ``min_idle_ms=`` (pending entries taken over on start)."""
    return RedisStreamSpec(stream, **options)


def nats_stream(stream: str, **options: Any) -> NatsStreamSpec:
    """A NATS JetStream stream: ``url=``, ``durable=``, ``subject=``, ``ack_wait=``."""
    return NatsStreamSpec(stream, **options)


def kinesis_stream(stream: str, **options: Any) -> KinesisStreamSpec:
    """A Kinesis stream: ``application=``, ``region=``, ``endpoint_url=``, ``start=``."""
    return KinesisStreamSpec(stream, **options)


class StreamSync:
    """A declared streaming sync: long-lived (``headrace stream``) or a bounded task.

    The checkpoint is kept under the sync's name (not the pipeline's), so the
    long-lived consumer and a scheduled drain task share one position.
    """

    def __init__(
        self,
        name: str,
        *,
        source: StreamSpec,
        destination: DestinationSpec,
        decode: Decoder,
        transform: Callable[[Any], Any] | None,
        limits: Limits,
        task_options: dict[str, Any],
        site: Any = None,
    ) -> None:
        self.name, self.source, self.destination = name, source, destination
        self.decode, self.transform, self.limits = decode, transform, limits
        self.task_options = dict(task_options)  # retries= also paces the long-lived consumer
        self.site = site or caller_site()

        def run(ctx: Context) -> dict[str, Any]:
            from headrace.streams.stream_loader import StreamLoader

            return StreamLoader(self, ctx.settings, log=ctx.log).run(drain=True).as_dict()

        run.__name__ = run.__qualname__ = name
        run.__doc__ = (
            f"Drain stream {self.dataset} into {destination.connection}.{destination.table}."
        )
        self.task: Task[Any, dict[str, Any]] = Task(run, task_id=name, **task_options)
        self.task.source = self.site

    @property
    def dataset(self) -> str:
        """The stream's name in checkpoints, the ledger and metrics."""
        kind = type(self.source).__name__.removesuffix("StreamSpec").lower()
        ident = getattr(self.source, "group", None) or getattr(self.source, "durable", None)
        ident = ident or getattr(self.source, "application", "")
        return f"{kind}:{self.source.stream}/{ident}"

    def __repr__(self) -> str:
        return f"<StreamSync {self.name!r}: {self.dataset} -> {self.destination.table}>"

    def __call__(self) -> Any:
        """Inside a ``@pipeline`` body: add the bounded "drain what is there" task."""
        return self.task()

    def pipeline(self, *, name: str | None = None, **options: Any) -> Pipeline:
        """A pipeline draining this stream as its only task (e.g. on a schedule)."""
        return Pipeline.from_call(self, name or self.name, sys._getframe(1), **options)


def stream_sync(
    name: str,
    *,
    source: StreamSpec,
    destination: DestinationSpec,
    decode: str | Decoder = "json",
    schema: Any = None,
    transform: Callable[[Any], Any] | None = None,
    max_events: int = 10_000,
    max_bytes: int = 16 * 1024 * 1024,
    max_wait: float = 1.0,
    **task_options: Any,
) -> StreamSync:
    """Declare a streaming sync into a warehouse table, exactly once.

    Args:
        name: the sync's name: task id, ``headrace stream FILE:NAME``, checkpoint key.
        source: :func:`redis_stream`, :func:`nats_stream` or :func:`kinesis_stream`.
        destination: ``headrace.sync.destination`` (append, or merge on keys).
        decode: ``"json"``, ``"avro"`` (with ``schema=`` the Avro schema) or ``"raw"``.
        schema: Avro schema (dict) or, for JSON, a ``pa.Schema`` rows must fit. Without
            one a JSON field's type is the destination table's column type (once the
            table exists), else the one most of the batch's values have; an event whose
            value does not fit is quarantined with the column, the types and its
            position, never converted.
        transform: a function of each micro-batch's rows (``pa.Table`` -> ``pa.Table``).
        max_events, max_bytes, max_wait: the micro-batch bounds.
        task_options: retries, timeout, ... of the drain task, as ``@task`` takes them.

    Returns:
        A :class:`StreamSync`.
    """
    if destination.mode not in ("append", "merge"):
        raise DefinitionError(
            f"stream_sync {name!r}: mode={destination.mode!r}; a stream loads with "
            "'append' or 'merge' (a replace would drop what earlier batches loaded)"
        )
    decoder = decode if isinstance(decode, Decoder) else Decoder(decode, schema)
    return StreamSync(
        name, source=source, destination=destination, decode=decoder, transform=transform,
        limits=Limits(max_events, max_bytes, max_wait), task_options=task_options,
        site=caller_site(),
    )  # fmt: skip
