"""Broker fixtures of the stream tests (defined in ``stream_brokers``)."""

from stream_brokers import (  # noqa: F401  (fixtures)
    broker,
    kinesis_broker,
    moto_endpoint,
    nats_broker,
    redis_broker,
)
