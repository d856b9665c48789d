"""The one interface every stream source meets, and the micro-batch it reads.

A source is subscribed under a durable consumer identity (a Redis consumer group and
consumer name, a NATS durable consumer, a Kinesis application name), told where the
warehouse says it stands (``open(committed)``: the committed position per partition),
then read micro-batch by micro-batch (:meth:`StreamSource.read`, bounded by count,
bytes and time) and acknowledged up to a batch once that batch committed
(:meth:`StreamSource.ack`).

Positions are integers per partition (a Redis stream key and consumer, a JetStream
stream, a Kinesis shard), increasing in delivery order within a partition; that is
what lets the loader skip re-delivered events that are already loaded (position ≤ the
committed one) and store the whole position map as the load's checkpoint.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: Columns of :attr:`Batch.events` (and of the metadata a loaded row keeps).
PARTITION, POSITION, PAYLOAD = "_hr_partition", "_hr_position", "_hr_payload"

EVENTS_SCHEMA = pa.schema(
    [pa.field(PARTITION, pa.string()), pa.field(POSITION, pa.string()),
     pa.field(PAYLOAD, pa.binary())]
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """How large a micro-batch may grow before it is loaded.

    Args:
        max_events: events per batch.
        max_bytes: payload bytes per batch.
        max_wait: seconds to wait for a batch to fill (a partial batch is loaded then).
    """

    max_events: int = 10_000
    max_bytes: int = 16 * 1024 * 1024
    max_wait: float = 1.0


@dataclass
class Batch:
    """One micro-batch: the events as Arrow and, per event, its numeric position.

    Attributes:
        events: ``_hr_partition`` (string), ``_hr_position`` (the broker's own id as
            text), ``_hr_payload`` (bytes; null when the event carried none).
        partitions: the partition of each event (same order as ``events``).
        positions: the integer position of each event within its partition.
        token: what :meth:`StreamSource.ack` needs to acknowledge this batch.
    """

    events: pa.Table
    partitions: list[str]
    positions: list[int]
    token: Any = None
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions)

    @classmethod
    def of(
        cls,
        partitions: list[str],
        native: list[str] | pa.Array,
        positions: list[int],
        payloads: list[builtins.bytes | None],
        token: Any = None,
    ) -> Batch:
        """Build a batch from parallel lists (one entry per event)."""
        payload = pa.array(payloads, pa.binary())
        events = pa.table(
            [pa.array(partitions, pa.string()),
             native if isinstance(native, pa.Array) else pa.array(native, pa.string()), payload],
            schema=EVENTS_SCHEMA,
        )  # fmt: skip
        size = pc.sum(pc.binary_length(payload)).as_py() or 0
        return cls(events, partitions, positions, token, size)


class StreamSource(ABC):
    """A stream read in micro-batches under a durable consumer identity.

    Lifecycle: ``open(committed)`` once, then ``read``/``ack`` until ``close``. A batch
    is acknowledged only after the load carrying it committed; a source must deliver
    the events of one partition in position order after ``open`` (re-deliveries of
    unacknowledged events first), so positions at or below the committed one are
    exactly the events already loaded.
    """

    #: The source's name in checkpoints, the load ledger, metrics and lineage.
    dataset: str = ""
    #: True when ``read`` may run in another thread while ``ack``/``lag`` run (the
    #: loader then reads the next batch while the current one loads).
    prefetch: bool = False

    @abstractmethod
    def open(self, committed: dict[str, int]) -> None:
        """Subscribe, resuming after ``committed`` (partition -> last loaded position)."""

    @abstractmethod
    def read(self, limits: Limits) -> Batch:
        """The next micro-batch (possibly empty after ``limits.max_wait`` seconds)."""

    @abstractmethod
    def ack(self, batch: Batch) -> None:
        """Acknowledge every event of ``batch`` (called after its load committed)."""

    def lag(self) -> int | None:
        """Events in the stream not yet delivered to this consumer (None: unknown)."""
        return None

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> StreamSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
