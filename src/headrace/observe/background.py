"""Send things off the hot path: a bounded queue drained by one daemon thread.

The engine puts work on the queue and returns at once; the thread does the slow part
(build an event, POST it). When the receiver is slow or down and the queue is full,
new items are dropped: counted, with one warning for the sender's life, never an
error for the run. :meth:`BackgroundSender.flush` waits (bounded) for what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
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

    Attributes:
        sent, dropped, failed: how many items were sent, dropped (queue full) and failed.
    """

    def __init__(
        self, send: Callable[[Any], None], name: str, maxsize: int = 1000,
        log: logging.Logger | None = None,
    ) -> None:
        self._send = send
        self.name = name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self._log = log or logging.getLogger("headrace.observe")
        self.sent = self.dropped = self.failed = 0
        self._warned = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, item: Any) -> None:
        """Queue ``item``; drop it (counted, warned once) when the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._dropped(1, "its queue is full (the receiver is slow or down)")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued was handled, for ``timeout`` seconds at most."""
        if self._thread is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop the thread."""
        if self._thread is None:
            return
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"headrace-{self.name}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._send(item)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - a receiver's failure never reaches the run
                self.failed += 1
                self._dropped(0, f"sending failed: {type(exc).__name__}: {exc}")

    def _dropped(self, n: int, why: str) -> None:
        with self._lock:
            self.dropped += n
            warn, self._warned = not self._warned, True
        if warn:
            self._log.warning(
                "%s: events are being dropped, %s; the run goes on (further drops are only counted)",
                self.name, why,
            )
