"""Streaming sources into the exactly-once sink: Redis Streams, NATS JetStream, Kinesis.

A stream is declared like a batch sync (:func:`stream_sync` with a source from
:func:`redis_stream`, :func:`nats_stream` or :func:`kinesis_stream` and a
``headrace.sync.destination``) and runs either long-lived (``headrace stream
FILE[:NAME]``: backpressure, SIGTERM finishes the batch, live rate and lag, Prometheus
metrics) or as a bounded task in a scheduled pipeline that loads what is there.

The guarantee is the batch sync's: the stream position per partition/shard is the
checkpoint, committed in the destination's load transaction with the batch and its
quarantined events, fenced on the position the batch started from; the broker is
acknowledged only after the commit, and events re-delivered after a crash are skipped
by position. Modules: ``base`` (the source interface and micro-batch), one per broker
(``redis_streams``, ``nats_jetstream``, ``kinesis``; ``kafka`` says what adding it
takes), ``decode`` (JSON, Avro, raw; bad events quarantined), ``spec`` (declaration),
``runner`` (the load loop), ``live`` (live view and metrics).
"""

from __future__ import annotations

from headrace.streams.decode import Decoder
from headrace.streams.stream_base import Batch, Limits, StreamSource
from headrace.streams.stream_spec import (
    KinesisStreamSpec,
    NatsStreamSpec,
    RedisStreamSpec,
    StreamSync,
    kinesis_stream,
    nats_stream,
    redis_stream,
    stream_sync,
)

__all__ = [
    "Batch",
    "Decoder",
    "KinesisStreamSpec",
    "Limits",
    "NatsStreamSpec",
    "RedisStreamSpec",
    "StreamSource",
    "StreamSync",
    "kinesis_stream",
    "nats_stream",
    "redis_stream",
    "stream_sync",
]
