"""Loading a stream exactly once: the position is the checkpoint, the ack comes last.

One loop, one micro-batch at a time (that is the backpressure: nothing more is read
until the batch before it committed):

1. read a batch (bounded by count, bytes, time);
2. drop events whose position is at or below the committed position of their
   partition: re-deliveries of events already loaded;
3. decode the rest (bad events become quarantine rows with reason and position),
   transform, and for merge keep the last event per key;
4. one destination transaction: rows, ``<table>_quarantine`` rows, and the new
   position map as the checkpoint, fenced on the map the batch started from (a second
   consumer of the same stream and table fails loudly instead of interleaving);
5. acknowledge the batch to the broker.

A crash before 5 re-delivers the batch: step 2 skips what step 4 committed. The load id
is derived from the positions covered, so a replayed load is a no-op as well.

Off the commit path: a source that may be read from another thread (``prefetch``)
reads the next batch while this one is decoded, and the load transaction waits (up to
:data:`QUIET_WAIT`) for that read to finish first: a reply being parsed holds the GIL,
and a transaction sharing it took 2-3 times longer to commit. The lag is asked at most
once a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headrace.config import Settings
from headrace.connectors.destinations import AnyDestination, open_destination
from headrace.connectors.destinations.destination_base import LoadResult
from headrace.connectors.incremental import Checkpoint
from headrace.connectors.naming import default_warehouse
from headrace.errors import ConnectorError
from headrace.streams.decode import QUARANTINE_SCHEMA
from headrace.streams.stream_base import PARTITION, POSITION, Batch, StreamSource

log_default = logging.getLogger("headrace.streams")

#: Seconds between two lag queries (the lag is shown and exported, never needed to load).
LAG_EVERY = 1.0
#: Seconds a load transaction waits for the read-ahead to finish before it starts (a
#: read waiting on an idle broker holds no GIL: the load need not wait it out).
QUIET_WAIT = 0.1


@dataclass
class StreamStats:
    """What a stream run did so far (the live view and metrics read it)."""

    batches: int = 0
    events: int = 0
    loaded: int = 0
    quarantined: int = 0
    skipped: int = 0
    lag: int | None = None
    last_commit_s: float = 0.0
    commit_seconds: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    positions: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events per second since the start."""
        return self.events / max(time.monotonic() - self.started, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        """The stats as a task result (JSON-friendly)."""
        out = asdict(self)
        out.pop("commit_seconds")
        out.pop("started")
        out["positions"] = {k: str(v) for k, v in self.positions.items()}
        return out


def open_stream_destination(spec: Any, settings: Settings) -> AnyDestination:
    """The destination by name (``warehouse``: the embedded DuckDB unless configured)."""
    name = spec.destination.connection
    if name == "warehouse" and not settings.has_connection(name):
        return open_destination(default_warehouse(settings))
    return open_destination(name, settings)


class StreamLoader:
    """Runs one :class:`~headrace.streams.stream_spec.StreamSync` against its broker and table.

    Args:
        spec: the streaming sync.
        settings: the configuration (connections, home).
        log: where progress goes.
        on_batch: called with the stats after every committed batch (live view, metrics).
    """

    def __init__(
        self,
        spec: Any,
        settings: Settings,
        *,
        log: Any = None,
        on_batch: Callable[[StreamStats], None] | None = None,
    ) -> None:
        self.spec, self.settings = spec, settings
        self.log = log or log_default
        self.on_batch = on_batch
        self.stop = threading.Event()
        self.stats = StreamStats()
        self.dataset = spec.dataset
        self.key = spec.name  # checkpoints are the sync's, whichever pipeline drains it
        self._table: pa.Schema | None = None
        self._table_known = False  # _table is the table's schema (None: no such table)

    def run(self, *, drain: bool = False, max_batches: int | None = None) -> StreamStats:
        """Consume until :attr:`stop` is set (or, with ``drain``, until a read is empty).

        Returns:
            The run's :class:`StreamStats`.
        """
        dest = open_stream_destination(self.spec, self.settings)
        source = self.spec.source.open()
        with dest.session(), source:
            start = dest.checkpoint(self.key, self.dataset)
            committed = dict((start.value or {}).get("positions", {})) if start else {}
            committed = {k: int(v) for k, v in committed.items()}
            fence = start or Checkpoint(self.key, self.dataset, None)
            source.open(committed)
            self.stats.positions = dict(committed)
            with ThreadPoolExecutor(1, thread_name_prefix="stream-read") as reader:
                self._consume(dest, source, reader, fence, committed, drain, max_batches)
        return self.stats

    def _consume(
        self,
        dest: AnyDestination,
        source: StreamSource,
        reader: ThreadPoolExecutor,
        fence: Checkpoint,
        committed: dict[str, int],
        drain: bool,
        max_batches: int | None,
    ) -> None:
        """Read, load, ack until stopped. A source with ``prefetch`` reads the next batch
        while this one loads (one batch ahead, never acknowledged before its own commit:
        an abandoned read-ahead is simply delivered again)."""
        limits = self.spec.limits
        ahead = reader.submit(source.read, limits) if source.prefetch else None
        asked = 0.0
        while not self.stop.is_set():
            if ahead is not None:
                batch = ahead.result()
                ahead = reader.submit(source.read, limits)
            else:
                batch = source.read(limits)
            if time.monotonic() - asked >= LAG_EVERY or len(batch) == 0:
                self.stats.lag, asked = source.lag(), time.monotonic()
            if len(batch) == 0:
                if drain:
                    break
                if self.on_batch:
                    self.on_batch(self.stats)
                continue
            fence, committed = self._load(dest, source, batch, fence, committed, ahead)
            if self.on_batch:
                self.on_batch(self.stats)
            if max_batches is not None and self.stats.batches >= max_batches:
                break
        if ahead is not None:
            ahead.result()  # let the read-ahead finish before the source closes

    def _load(
        self,
        dest: AnyDestination,
        source: StreamSource,
        batch: Batch,
        fence: Checkpoint,
        committed: dict[str, int],
        ahead: Future[Batch] | None = None,
    ) -> tuple[Checkpoint, dict[str, int]]:
        """Load one batch exactly once and acknowledge it; the new fence and positions."""
        keep, new = _new_events(batch, committed)
        skipped = 0 if keep is None else len(batch) - sum(keep)
        self.stats.events += len(batch)
        self.stats.skipped += skipped
        target = self.spec.destination
        if skipped == len(batch):  # everything was loaded before a crash: only ack
            source.ack(batch)
            return fence, committed
        rows, bad = self.spec.decode.decode(
            batch.events,
            pa.array(keep) if skipped else None,
            # with a transform the table holds its output, not the events' own fields
            None if self.spec.transform else lambda: self._table_schema(dest),
        )
        if self.spec.transform is not None and rows.num_rows:
            rows = self.spec.transform(rows)
        if target.mode == "merge" and rows.num_rows:
            rows = last_per_key(rows, list(target.keys), self.spec.name)
        expected = (rows.num_rows, bad.num_rows)
        value = {"positions": {k: str(v) for k, v in sorted(new.items())}}
        checkpoint = Checkpoint(self.key, self.dataset, value)
        if ahead is not None:
            wait([ahead], timeout=QUIET_WAIT)
        t0 = time.perf_counter()
        result = dest.write(
            rows, target.table, mode=target.mode, keys=list(target.keys),
            fence=fence, checkpoint=checkpoint,
            quarantine=bad if bad.num_rows else None,
            load_id=_load_id(self.key, self.dataset, fence.value, value),
            metadata=target.metadata, origin=(self.key, self.dataset),
            verify=lambda r: self._reconcile(r, expected, batch),
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        if self._table is None or set(rows.column_names) - set(self._table.names):
            self._table_known = False  # the write created the table or added columns
        source.ack(batch)  # only now: the batch and its positions are committed
        self.stats.batches += 1
        self.stats.loaded += result.rows_loaded
        self.stats.quarantined += result.rows_quarantined
        self.stats.last_commit_s = elapsed
        self.stats.commit_seconds.append(elapsed)
        self.stats.positions = dict(new)
        if bad.num_rows:
            self.log.warning(
                "stream %s: %d event(s) quarantined into %s_quarantine (first at %s %s: %s)",
                self.spec.name, bad.num_rows, target.table, bad.column(PARTITION)[0],
                bad.column(POSITION)[0], bad.column("_hr_reason")[0],
            )  # fmt: skip
        return Checkpoint(self.key, self.dataset, json.loads(json.dumps(value))), new

    def _table_schema(self, dest: AnyDestination) -> pa.Schema | None:
        """The destination table's schema, asked again only after a write that may have
        created the table or added columns (one consumer writes it: the fence says so)."""
        if not self._table_known:
            self._table = _table_schema(dest, self.spec.destination.table)
            self._table_known = True
        return self._table

    def _reconcile(self, result: LoadResult, expected: tuple[int, int], batch: Batch) -> None:
        """Before commit: every event decoded is loaded (or superseded) or quarantined."""
        rows, bad = expected
        loaded = result.rows_loaded + result.rows_superseded
        if result.already_loaded:
            return
        if loaded != rows or result.rows_quarantined < bad:
            raise ConnectorError(
                f"stream {self.spec.name}: batch of {len(batch)} events does not reconcile: "
                f"{rows} rows to load, {loaded} loaded; {bad} to quarantine, "
                f"{result.rows_quarantined} quarantined into {result.table}"
            )


def _new_events(
    batch: Batch, committed: dict[str, int]
) -> tuple[list[bool] | None, dict[str, int]]:
    """Which events are past the committed position of their partition (None: all of
    them), and the new position map."""
    new = dict(committed)
    parts = set(batch.partitions)
    if len(parts) == 1:  # one partition (a Redis stream, a JetStream stream): min and max do
        (part,) = parts
        last = committed.get(part)
        if last is None or min(batch.positions) > last:
            new[part] = max(batch.positions)
            return None, new
    keep: list[bool] = []
    for part, pos in zip(batch.partitions, batch.positions, strict=True):
        last = committed.get(part)
        keep.append(last is None or pos > last)
        if new.get(part) is None or pos > new[part]:
            new[part] = pos
    return keep, new


def _table_schema(dest: AnyDestination, table: str) -> pa.Schema | None:
    """The Arrow schema of the destination table's own columns (None: no such table, or
    a destination that cannot say), the contract a JSON batch's values must fit."""
    columns = getattr(dest, "columns", None)
    quote = getattr(dest, "q", None)
    if columns is None or quote is None or columns(table) is None:
        return None
    schema = dest.query(f"SELECT * FROM {quote(table)} WHERE 1 = 0").schema
    return pa.schema([f for f in schema if not f.name.startswith("_hr_")])


def _load_id(key: str, dataset: str, start: Any, end: Any) -> str:
    """The load's identity: the sync, the stream and the positions it covers."""
    text = json.dumps([key, dataset, start, end], sort_keys=True, default=str)
    return "stream-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def last_per_key(rows: pa.Table, keys: list[str], name: str) -> pa.Table:
    """For merge: keep the last event (in delivery order) of each key in the batch."""
    missing = [k for k in keys if k not in rows.column_names]
    if missing:
        raise ConnectorError(f"stream {name}: merge key(s) {missing} not in the events' fields")
    indexed = rows.append_column("_hr_row", pa.array(range(rows.num_rows), pa.int64()))
    last = indexed.group_by(keys, use_threads=False).aggregate([("_hr_row", "max")])
    order = pc.sort_indices(last.column("_hr_row_max"))
    return rows.take(pc.take(last.column("_hr_row_max"), order))


__all__ = ["QUARANTINE_SCHEMA", "StreamLoader", "StreamStats", "last_per_key"]
