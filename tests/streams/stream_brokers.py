"""Brokers for the stream tests: real Redis and NATS servers, Kinesis on a moto server.

Each fixture yields a :class:`Broker`: the ``source=`` expression a pipeline file
declares, and a producer of events. Every test gets its own Redis key, NATS stream and
Kinesis stream, deleted afterwards. With ``CI=true`` a missing server fails the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from live_services import service_missing

REDIS_URL = os.environ.get("HEADRACE_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("HEADRACE_TEST_NATS", "nats://127.0.0.1:4222")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@dataclass
class Broker:
    """One test's stream on one broker."""

    name: str
    source: str  # Python expression for the pipeline file (imports: redis/nats/kinesis_stream)
    produce: Any  # (list[bytes]) -> None
    env: dict[str, str] = field(default_factory=dict)


def event(i: int) -> bytes:
    """A small JSON event with id ``i``."""
    return json.dumps({"id": i, "user": f"u{i % 97}", "page": f"/p/{i % 13}", "ms": i}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_broker() -> Iterator[Broker]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        service_missing("Redis", exc)
    key = f"hrtest:stream:{uuid.uuid4().hex[:10]}"

    def produce(payloads: list[bytes]) -> None:
        for i in range(0, len(payloads), 5000):
            pipe = client.pipeline(transaction=False)
            for p in payloads[i : i + 5000]:
                pipe.xadd(key, {"data": p})
            pipe.execute()

    yield Broker("redis", f"redis_stream({key!r}, url={REDIS_URL!r}, group='wh')", produce)
    client.delete(key)
    client.close()


@pytest.fixture
def nats_broker() -> Iterator[Broker]:
    nats = pytest.importorskip("nats")
    stream = f"HRTEST_{uuid.uuid4().hex[:10]}"
    subject = f"hrtest.{stream}"

    async def make() -> None:
        nc = await nats.connect(NATS_URL, max_reconnect_attempts=1, connect_timeout=3)
        await nc.jetstream().add_stream(name=stream, subjects=[subject])
        await nc.close()

    try:
        asyncio.run(make())
    except Exception as exc:
        service_missing("NATS JetStream", exc)

    def produce(payloads: list[bytes]) -> None:
        async def send() -> None:
            nc = await nats.connect(NATS_URL)
            js = nc.jetstream()
            for i in range(0, len(payloads), 1000):
                await asyncio.gather(*(js.publish(subject, p) for p in payloads[i : i + 1000]))
            await nc.close()

        asyncio.run(send())

    yield Broker("nats", f"nats_stream({stream!r}, url={NATS_URL!r}, durable='wh')", produce)

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (AWS API emulator) on a free loopback port, for this session."""
    server_mod = pytest.importorskip("moto.server")
    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def kinesis_broker(moto_endpoint: str) -> Iterator[Broker]:
    boto3 = pytest.importorskip("boto3")
    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=moto_endpoint)
    name = f"hrtest-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name)

    def produce(payloads: list[bytes]) -> None:
        for i in range(0, len(payloads), 500):
            chunk = payloads[i : i + 500]
            client.put_records(StreamName=name, Records=[
                {"Data": p, "PartitionKey": str((i + j) % 16)} for j, p in enumerate(chunk)
            ])  # fmt: skip

    source = f"kinesis_stream({name!r}, application='wh', endpoint_url={moto_endpoint!r})"
    yield Broker("kinesis", source, produce, env=dict(AWS_ENV))
    client.delete_stream(StreamName=name)


@pytest.fixture(params=["redis", "nats", "kinesis"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn."""
    return request.getfixturevalue(f"{request.param}_broker")
