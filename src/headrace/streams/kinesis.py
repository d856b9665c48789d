"""Amazon Kinesis Data Streams through boto3: shards, shard iterators, resharding.

Kinesis has no broker-side acknowledgement: the committed position per shard in the
warehouse *is* the consumer's lease (what the KCL keeps in DynamoDB). On ``open`` each
shard is read ``AFTER_SEQUENCE_NUMBER`` its committed position, or from
``TRIM_HORIZON`` when nothing of it was loaded. Resharding: a shard whose iterator ends
(``NextShardIterator`` absent) is closed; its children (split or merge) are read only
once every parent is closed, so the events of a key stay in order across a reshard.
A position is the record's sequence number (a big integer); the partition is the shard.
"""

from __future__ import annotations

import time
from typing import Any

from headrace.errors import ConnectorError
from headrace.extras import require
from headrace.streams.stream_base import Batch, Limits, StreamSource


class KinesisStreamSource(StreamSource):
    """A Kinesis stream read shard by shard.

    Args:
        stream: the stream name.
        application: the consumer's name (its checkpoint key; keep it across restarts).
        region: the AWS region.
        endpoint_url: another endpoint (a local emulator such as moto); None: AWS.
        start: ``"TRIM_HORIZON"`` (everything retained) or ``"LATEST"`` for shards
            nothing was loaded from yet.
    """

    def __init__(
        self,
        stream: str,
        application: str = "headrace",
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        start: str = "TRIM_HORIZON",
    ) -> None:
        boto3 = require("streams", "boto3", "Kinesis source")
        self.client: Any = boto3.client("kinesis", region_name=region, endpoint_url=endpoint_url)
        self.stream, self.start = stream, start
        self.dataset = f"kinesis:{stream}/{application}"
        self.prefetch = True  # the client is thread-safe (a connection pool)
        self.iterators: dict[str, str] = {}  # open shards being read
        self.closed: set[str] = set()
        self.parents: dict[str, tuple[str, ...]] = {}
        self.committed: dict[str, int] = {}
        self.behind_ms: dict[str, int] = {}

    def _shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            try:
                reply = self.client.list_shards(**kwargs)
            except Exception as exc:
                raise ConnectorError(f"Kinesis stream {self.stream!r}: {exc}") from exc
            shards.extend(reply["Shards"])
            token = reply.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def open(self, committed: dict[str, int]) -> None:
        """List the shards and open an iterator on each readable one."""
        self.committed = dict(committed)
        self._refresh()

    def _refresh(self) -> None:
        """Open iterators on shards whose parents are all closed (or gone)."""
        shards = self._shards()
        known = {s["ShardId"] for s in shards}
        for shard in shards:
            sid = shard["ShardId"]
            self.parents[sid] = tuple(
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                if p and p in known
            )  # fmt: skip
        for shard in shards:
            sid = shard["ShardId"]
            if sid in self.iterators or sid in self.closed:
                continue
            if any(p not in self.closed for p in self.parents[sid]):
                continue
            kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": sid}
            if sid in self.committed:
                kwargs |= {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "StartingSequenceNumber": str(self.committed[sid]),
                }
            else:
                kwargs["ShardIteratorType"] = self.start
            self.iterators[sid] = self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, limits: Limits) -> Batch:
        """Records from every open shard in turn until ``limits`` or nothing new."""
        deadline = time.monotonic() + limits.max_wait
        parts: list[str] = []
        native: list[str] = []
        positions: list[int] = []
        payloads: list[bytes | None] = []
        size = 0
        while len(positions) < limits.max_events and size < limits.max_bytes:
            got_any = False
            for sid in list(self.iterators):
                want = min(10_000, limits.max_events - len(positions))
                if want <= 0:
                    break
                reply = self.client.get_records(ShardIterator=self.iterators[sid], Limit=want)
                self.behind_ms[sid] = int(reply.get("MillisBehindLatest", 0))
                for record in reply["Records"]:
                    seq = record["SequenceNumber"]
                    parts.append(sid)
                    native.append(seq)
                    positions.append(int(seq))
                    payloads.append(record["Data"])
                    size += len(record["Data"])
                got_any = got_any or bool(reply["Records"])
                following = reply.get("NextShardIterator")
                if following:
                    self.iterators[sid] = following
                else:  # the shard was closed by a reshard and is read to its end
                    del self.iterators[sid]
                    self.closed.add(sid)
                    self._refresh()
            if positions and not got_any:
                break
            if time.monotonic() >= deadline:
                break
            if not got_any:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return Batch.of(parts, native, positions, payloads, token=None)

    def ack(self, batch: Batch) -> None:
        """Nothing to tell Kinesis: the committed positions are the lease."""

    def lag(self) -> int | None:
        """Kinesis reports time, not events: milliseconds behind the tip (max of shards)."""
        return max(self.behind_ms.values(), default=None)
