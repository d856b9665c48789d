"""NATS JetStream through a durable pull consumer (nats-py).

The durable identity is (stream, durable consumer name). The consumer acknowledges with
``AckPolicy.ALL``: acknowledging a batch's last message acknowledges the batch. On
``open`` the consumer is bound as it stands when the server's acknowledged position
equals the warehouse's committed one; otherwise (a crash between commit and ack, or
before commit with deliveries outstanding) it is recreated to deliver from the committed
position + 1. The warehouse is the source of truth, and re-deliveries come in order,
before anything new, instead of after ``ack_wait`` mixed with new messages. A batch
whose load failed is nak'ed (re-delivered at once). A position is the stream sequence;
the partition is the stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from headrace.errors import ConnectorError
from headrace.extras import require
from headrace.streams.stream_base import Batch, Limits, StreamSource


class NatsStreamSource(StreamSource):
    """A JetStream stream read by a durable pull consumer.

    Args:
        url: the NATS server (``nats://127.0.0.1:4222``).
        stream: the JetStream stream (it must exist; producers create it).
        durable: the durable consumer's name (keep it across restarts).
        subject: a filter subject (default: every subject of the stream).
        ack_wait: seconds before the server re-delivers an unacknowledged message.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        durable: str = "headrace",
        *,
        subject: str | None = None,
        ack_wait: float = 60.0,
    ) -> None:
        self.nats = require("streams", "nats", "NATS JetStream source")
        self.api = require("streams", "nats.js.api", "NATS JetStream source")
        self.url, self.stream, self.durable = url, stream, durable
        self.subject, self.ack_wait = subject, ack_wait
        self.dataset = f"nats:{stream}/{durable}"
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._sub: Any = None
        self.recreated = False

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def open(self, committed: dict[str, int]) -> None:
        """Connect, and bind the durable consumer at the committed position."""
        self._run(self._open(committed.get(self.stream)))

    async def _open(self, last: int | None) -> None:
        api = self.api
        self._nc = await self.nats.connect(self.url, max_reconnect_attempts=3)
        js = self._nc.jetstream()
        try:
            await js.stream_info(self.stream)
        except Exception as exc:
            raise ConnectorError(f"NATS JetStream stream {self.stream!r}: {exc}") from exc
        info = None
        try:
            info = await js.consumer_info(self.stream, self.durable)
        except self.nats.js.errors.NotFoundError:
            info = None
        at = last or 0
        in_step = (
            info is not None
            and info.ack_floor.stream_seq == at
            and info.delivered.stream_seq == info.ack_floor.stream_seq
        )
        if not in_step:
            if info is not None:
                await js.delete_consumer(self.stream, self.durable)
            config = api.ConsumerConfig(
                durable_name=self.durable,
                ack_policy=api.AckPolicy.ALL,
                ack_wait=self.ack_wait,
                filter_subject=self.subject,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if at else api.DeliverPolicy.ALL,
                opt_start_seq=at + 1 if at else None,
                max_ack_pending=-1,
            )
            await js.add_consumer(self.stream, config)
            self.recreated = True
        self._js = js
        self._sub = await js.pull_subscribe_bind(self.durable, stream=self.stream)

    def read(self, limits: Limits) -> Batch:
        """Up to ``limits`` messages, waiting at most ``limits.max_wait`` for the first."""
        return self._run(self._read(limits))

    async def _read(self, limits: Limits) -> Batch:
        deadline = time.monotonic() + limits.max_wait
        msgs: list[Any] = []
        size = 0
        while len(msgs) < limits.max_events and size < limits.max_bytes:
            wait = deadline - time.monotonic()
            if wait <= 0 and msgs:
                break
            try:
                got = await self._sub.fetch(
                    min(limits.max_events - len(msgs), 5000), timeout=max(wait, 0.05)
                )
            except (TimeoutError, self.nats.errors.TimeoutError):
                break
            msgs.extend(got)
            size += sum(len(m.data) for m in got)
            if time.monotonic() >= deadline:
                break
        seqs = [m.metadata.sequence.stream for m in msgs]
        return Batch.of(
            [self.stream] * len(msgs), [str(s) for s in seqs], seqs,
            [m.data for m in msgs], token=msgs,
        )  # fmt: skip

    def ack(self, batch: Batch) -> None:
        """Acknowledge the batch's last message (AckPolicy.ALL: all before it too)."""
        if batch.token:
            self._run(batch.token[-1].ack_sync())

    def nak(self, batch: Batch) -> None:
        """Ask for immediate re-delivery of a batch whose load failed."""
        if batch.token:
            self._run(batch.token[0].nak())

    def lag(self) -> int | None:
        """Messages of the stream not yet delivered to the consumer."""
        try:
            info = self._run(self._js.consumer_info(self.stream, self.durable))
            return int(info.num_pending)
        except Exception:  # lag is shown, never needed
            return None

    def close(self) -> None:
        """Drain the connection and close the event loop."""
        if self._nc is not None:
            try:
                self._run(self._nc.close())
            finally:
                self._nc = None
        if not self._loop.is_closed():
            self._loop.close()
