"""Send things off the hot path: a bounded queue drained by one daemon thread.

The engine puts work on the queue and returns at once; the thread does the slow part
(build an event, POST it). When the receiver is slow or down and the queue is full,
new items are dropped: counted, with one warning until a send succeeds again (one
an outage), never an error for the run. :meth:`BackgroundSender.flush` waits (bounded) for what is queued.

A put costs an append and never wakes the thread: the thread looks at the queue every
``linger`` seconds (0.25 by default; up to 2 s while nothing comes) and drains what
gathered in one pass (``batch``: hands the whole pass to ``send`` at once). Waking a
thread for every item costs the run's thread a context switch each time, which on a
busy machine can mean losing the CPU for a whole time slice (waking them at a run's
end, while the run still writes its last states, did not pay in the bench). A queue
half full, :meth:`~BackgroundSender.flush` and :meth:`~BackgroundSender.close` wake it
at once. A process that exits without closing its sender still sends what is queued:
an ``atexit`` hook flushes it (2 s at most).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

_STOP = object()


class BackgroundSender:
    """Calls ``send(item)`` for each queued item on a daemon thread.

    Args:
        send: does the slow work for one item; its exceptions are counted, not raised.
        name: for the thread's name and the warning.
        maxsize: items waiting at most; more are dropped.
        log: where the one warning goes.
        linger: seconds between the thread's looks at the queue while items come.
        batch: ``send`` takes the list of items of one pass instead of one item.

    Attributes:
        sent, dropped, failed: how many items were sent, dropped (queue full) and failed.
    """

    def __init__(
        self,
        send: Callable[[Any], None],
        name: str,
        maxsize: int = 1000,
        log: logging.Logger | None = None,
        linger: float = 0.25,
        batch: bool = False,
    ) -> None:
        self._send = send
        self.name = name
        self.maxsize = max(1, maxsize)
        self.linger = linger
        self.batch = batch
        self._items: deque[Any] = deque()  # appends and pops are atomic: no lock on the hot path
        self._now = threading.Event()  # drain at once: a flush, a close or a half-full queue
        self._log = log or logging.getLogger("headrace.observe")
        self.sent = self.dropped = self.failed = 0
        self._warned = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, item: Any) -> None:
        """Queue ``item``; drop it (counted, warned once) when the queue is full."""
        if self._thread is None:
            self._start()
        if len(self._items) >= self.maxsize:
            self._dropped(1, "its queue is full (the receiver is slow or down)")
            return
        self._items.append(item)
        if len(self._items) == self.maxsize // 2:  # a burst: drain before it overflows
            self._now.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued was handled, for ``timeout`` seconds at most."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._urgent(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop the thread."""
        if self._thread is None:
            return
        atexit.unregister(self._flush_at_exit)
        self.flush(timeout)
        self._urgent(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _flush_at_exit(self) -> None:
        self.flush(2.0)

    def _urgent(self, marker: Any) -> None:
        """Queue a marker (never dropped) and wake the thread."""
        self._items.append(marker)
        self._now.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"headrace-{self.name}", daemon=True
                )
                self._thread.start()
                atexit.register(self._flush_at_exit)  # a daemon thread dies with the process

    def _loop(self) -> None:
        items = self._items
        idle = self.linger
        while True:
            self._now.wait(idle)
            self._now.clear()  # before draining: a marker queued from here on wakes the next pass
            idle = self.linger if items else min(2 * idle, max(self.linger, 2.0))
            batch: list[Any] = []
            while items:
                item = items.popleft()
                if item is _STOP:
                    self._handle(batch)  # what came before the marker is handled first
                    return
                if isinstance(item, threading.Event):  # a flush: everything before it is handled
                    self._handle(batch)
                    batch = []
                    item.set()
                elif self.batch:
                    batch.append(item)
                else:
                    self._handle([item])
            self._handle(batch)

    def _handle(self, batch: list[Any]) -> None:
        if not batch:
            return
        try:
            self._send(batch if self.batch else batch[0])
            self.sent += len(batch)
            if self._warned:  # the receiver is back: its next outage is warned about again
                self._warned = False
        except Exception as exc:  # noqa: BLE001 - a receiver's failure never reaches the run
            self.failed += len(batch)
            self._dropped(0, f"sending failed: {type(exc).__name__}: {exc}")

    def _dropped(self, n: int, why: str) -> None:
        with self._lock:
            self.dropped += n
            warn, self._warned = not self._warned, True
        if warn:
            self._log.warning(
                "%s: events are being dropped, %s; the run goes on (further drops are only counted)",
                self.name,
                why,
            )
