"""Benchmark: 100,000 small JSON events through each broker into DuckDB, headrace vs hand-written.

For each broker (Redis Streams, NATS JetStream, Kinesis on a local moto server) the
same events are produced once per contender into a fresh stream, then consumed into a
fresh DuckDB file in batches of ``--batch`` events:

* headrace: ``stream_sync`` drained by ``StreamLoader`` — exactly-once on: decode with
  quarantine, the position map committed in the load's transaction (fenced), the
  ledger row, ack after commit;
* hand-written: the broker's client reading a batch (redis-py XREADGROUP, nats-py pull
  fetch, boto3 get_records), ``json.loads`` per event, ``pa.Table.from_pylist``, one
  DuckDB ``INSERT ... SELECT`` in a transaction, then the ack — no checkpoint, no
  dedupe, no quarantine.

Events/s is end to end (first read to last commit); commit latency is the time of each
batch's load transaction (p99 over batches). The machine is shared: figures vary.

Each broker runs ``--repeat`` rounds; the contenders alternate who goes first, and
the figures reported are the medians over the rounds.

Run:  .venv/bin/python bench/streams.py [--events 100000] [--batch 10000] [--repeat 3]
      [--brokers redis,nats,kinesis]
Last line: one JSON object with headrace_<broker>_events_per_s,
handwritten_<broker>_events_per_s, handwritten_over_headrace_<broker> and
*_p99_commit_ms (medians) for each broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import logging  # noqa: E402

from headrace.config import Settings  # noqa: E402
from headrace.streams import kinesis_stream, nats_stream, redis_stream, stream_sync  # noqa: E402
from headrace.streams.stream_loader import StreamLoader  # noqa: E402
from headrace.sync import destination  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server request lines
REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"


def events(n: int) -> list[bytes]:
    """Small JSON events (~70 bytes)."""
    return [json.dumps({"id": i, "user": f"u{i % 997}", "page": f"/p/{i % 31}", "ms": i}).encode()
            for i in range(n)]  # fmt: skip


def p99(values: list[float]) -> float:
    """99th percentile in milliseconds."""
    ordered = sorted(values)
    return (
        round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)
        if ordered
        else 0.0
    )


def insert(conn: Any, rows: list[dict[str, Any]]) -> float:
    """The hand-written load: one transaction, INSERT of an Arrow table; its seconds."""
    t0 = time.perf_counter()
    batch_rows = pa.Table.from_pylist(rows)  # noqa: F841  (read by DuckDB's replacement scan)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE IF NOT EXISTS events AS SELECT * FROM batch_rows LIMIT 0")
    conn.execute("INSERT INTO events SELECT * FROM batch_rows")
    conn.execute("COMMIT")
    return time.perf_counter() - t0


# -- brokers: make a stream and produce, per contender ---------------------------------


class Redis:
    name = "redis"

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS)

    def fresh(self, payloads: list[bytes]) -> str:
        key = f"hrbench:{uuid.uuid4().hex[:8]}"
        for i in range(0, len(payloads), 10_000):
            pipe = self.client.pipeline(transaction=False)
            for p in payloads[i : i + 10_000]:
                pipe.xadd(key, {"data": p})
            pipe.execute()
        return key

    def spec(self, key: str) -> Any:
        return redis_stream(key, url=REDIS, group="bench")

    def handwritten(self, key: str, n: int, batch: int, conn: Any) -> list[float]:
        self.client.xgroup_create(key, "hand", id="0")
        commits: list[float] = []
        done = 0
        while done < n:
            reply = self.client.xreadgroup("hand", "c", {key: ">"}, count=batch, block=1000)
            entries = reply[0][1]
            commits.append(insert(conn, [json.loads(f[b"data"]) for _, f in entries]))
            self.client.xack(key, "hand", *[i for i, _ in entries])
            done += len(entries)
        return commits

    def drop(self, key: str) -> None:
        self.client.delete(key)


class Nats:
    name = "nats"

    def __init__(self) -> None:
        import nats

        self.nats = nats
        self.loop = asyncio.new_event_loop()

    def fresh(self, payloads: list[bytes]) -> str:
        stream = f"HRBENCH_{uuid.uuid4().hex[:8]}"

        async def go() -> None:
            nc = await self.nats.connect(NATS)
            js = nc.jetstream()
            await js.add_stream(name=stream, subjects=[f"hrbench.{stream}"])
            for i in range(0, len(payloads), 2000):
                await asyncio.gather(*(js.publish(f"hrbench.{stream}", p)
                                       for p in payloads[i : i + 2000]))  # fmt: skip
            await nc.close()

        self.loop.run_until_complete(go())
        return stream

    def spec(self, stream: str) -> Any:
        return nats_stream(stream, url=NATS, durable="bench")

    def handwritten(self, stream: str, n: int, batch: int, conn: Any) -> list[float]:
        from nats.js.api import AckPolicy, ConsumerConfig

        async def go() -> list[float]:
            nc = await self.nats.connect(NATS)
            js = nc.jetstream()
            await js.add_consumer(stream, ConsumerConfig(durable_name="hand",
                                                         ack_policy=AckPolicy.ALL))  # fmt: skip
            sub = await js.pull_subscribe_bind("hand", stream=stream)
            commits, done = [], 0
            while done < n:
                msgs = await sub.fetch(batch, timeout=0.2)  # the same max wait as headrace
                commits.append(insert(conn, [json.loads(m.data) for m in msgs]))
                await msgs[-1].ack_sync()
                done += len(msgs)
            await nc.close()
            return commits

        return self.loop.run_until_complete(go())

    def drop(self, stream: str) -> None:
        async def go() -> None:
            nc = await self.nats.connect(NATS)
            await nc.jetstream().delete_stream(stream)
            await nc.close()

        self.loop.run_until_complete(go())


class Kinesis:
    name = "kinesis"

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
            os.environ.setdefault(k, v)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"
        self.client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=self.url)

    def fresh(self, payloads: list[bytes]) -> str:
        name = f"hrbench-{uuid.uuid4().hex[:8]}"
        self.client.create_stream(StreamName=name, ShardCount=2)
        self.client.get_waiter("stream_exists").wait(StreamName=name)
        for i in range(0, len(payloads), 500):
            self.client.put_records(StreamName=name, Records=[
                {"Data": p, "PartitionKey": str(j % 8)} for j, p in enumerate(payloads[i : i + 500])
            ])  # fmt: skip
        return name

    def spec(self, name: str) -> Any:
        return kinesis_stream(name, application="bench", endpoint_url=self.url)

    def handwritten(self, name: str, n: int, batch: int, conn: Any) -> list[float]:
        shards = [s["ShardId"] for s in self.client.list_shards(StreamName=name)["Shards"]]
        its = {s: self.client.get_shard_iterator(StreamName=name, ShardId=s,
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
               for s in shards}  # fmt: skip
        commits, done = [], 0
        while done < n:
            rows: list[dict[str, Any]] = []
            for s in shards:
                reply = self.client.get_records(ShardIterator=its[s], Limit=batch - len(rows))
                its[s] = reply["NextShardIterator"]
                rows.extend(json.loads(r["Data"]) for r in reply["Records"])
                if len(rows) >= batch:
                    break
            if rows:
                commits.append(insert(conn, rows))  # Kinesis has no ack: the position is ours
            done += len(rows)
        return commits

    def drop(self, name: str) -> None:
        self.client.delete_stream(StreamName=name)


def run_headrace(broker: Any, key: str, n: int, batch: int, tmp: Path) -> tuple[float, list[float]]:
    spec = stream_sync("bench", source=broker.spec(key), max_events=batch, max_wait=0.2,
                       destination=destination(f"duckdb:///{tmp}/hr.duckdb", table="events"))  # fmt: skip
    settings = Settings.load(cwd=tmp, environ={"HEADRACE_HOME": str(tmp / "home")})
    marks: dict[str, float] = {}

    def on_batch(stats: Any) -> None:
        if stats.loaded >= n and "end" not in marks:
            marks["end"] = time.perf_counter()

    loader = StreamLoader(spec, settings, on_batch=on_batch)
    t0 = time.perf_counter()
    stats = loader.run(drain=True)
    assert stats.loaded == n, f"headrace loaded {stats.loaded} of {n}"
    return n / (marks["end"] - t0), stats.commit_seconds


def run_handwritten(
    broker: Any, key: str, n: int, batch: int, tmp: Path
) -> tuple[float, list[float]]:
    conn = duckdb.connect(str(tmp / "hand.duckdb"))
    t0 = time.perf_counter()
    commits = broker.handwritten(key, n, batch, conn)
    elapsed = time.perf_counter() - t0
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == n
    conn.close()
    return n / elapsed, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--brokers", default="redis,nats,kinesis")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds per broker; the contenders alternate who goes first")  # fmt: skip
    args = parser.parse_args()
    payloads = events(args.events)
    pa.array(["warm"])  # pyarrow imports pandas on its first list conversion: not timed
    out: dict[str, Any] = {"events": args.events, "batch": args.batch, "repeat": args.repeat}
    contenders = {"headrace": run_headrace, "handwritten": run_handwritten}
    for name in args.brokers.split(","):
        broker = {"redis": Redis, "nats": Nats, "kinesis": Kinesis}[name]()
        rates: dict[str, list[float]] = {who: [] for who in contenders}
        p99s: dict[str, list[float]] = {who: [] for who in contenders}
        for round_ in range(args.repeat):
            order = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
            for who in order:  # interleaved: a busy spell on the shared machine hits both
                key = broker.fresh(payloads)
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        rate, commits = contenders[who](broker, key, args.events, args.batch,
                                                        Path(tmp))  # fmt: skip
                    finally:
                        broker.drop(key)
                rates[who].append(rate)
                p99s[who].append(p99(commits))
                print(f"{name:8} {who:12} round {round_ + 1}: {rate:10,.0f} events/s  "
                      f"p99 commit {p99(commits)} ms", flush=True)  # fmt: skip
        for who in contenders:
            out[f"{who}_{name}_events_per_s"] = round(statistics.median(rates[who]))
            out[f"{who}_{name}_p99_commit_ms"] = round(statistics.median(p99s[who]), 1)
        out[f"handwritten_over_headrace_{name}"] = round(
            out[f"handwritten_{name}_events_per_s"] / out[f"headrace_{name}_events_per_s"], 2
        )
        if name == "kinesis":
            broker.server.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
