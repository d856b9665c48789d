"""The in-process executor: tasks run one after another in the driving process.

Meant for debugging (breakpoints and tracebacks work as usual) and for pipelines
of many tiny tasks, where it is the fastest. Timeouts are best effort: SIGALRM
interrupts Python code when the run is driven from the main thread; a call blocked
in C code finishes first, and off the main thread a timeout is not enforced.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from headrace.executors.executor_base import AttemptFn, Event, EventSink, Outcome, WorkItem

if TYPE_CHECKING:
    from headrace.pipeline import Pipeline


class _ItemSink:
    """Collects an attempt's log lines and forwards them (and progress) as events."""

    __slots__ = ("emit", "item", "lines")

    def __init__(self, emit: EventSink, item: WorkItem) -> None:
        self.emit, self.item = emit, item
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)
        self.emit(Event.from_log(self.item, text))

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self.emit(Event.from_progress(self.item, done, total, message))


class InProcessExecutor:
    """Runs work items in this process, in submission order.

    Args:
        batch: how many ready items the engine may hand over at once; they run one
            by one, and their state changes are written in one transaction per batch.
        flush_every: seconds after which :meth:`wait` returns what finished so far,
            so the state store and live view stay current during long batches.
    """

    def __init__(self, batch: int = 64, flush_every: float = 0.25) -> None:
        self.capacity = batch
        self.flush_every = flush_every
        self._queue: deque[WorkItem] = deque()
        self._emit: EventSink = lambda event: None
        self._pipeline: Pipeline | None = None
        self._run_item: AttemptFn | None = None

    def start(self, emit: EventSink, pipeline: Pipeline, run_item: AttemptFn) -> None:
        self._emit, self._pipeline, self._run_item = emit, pipeline, run_item

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)

    def wait(self, timeout: float | None) -> list[Outcome]:
        run_item = self._run_item
        assert self._pipeline is not None and run_item is not None, "start() first"
        outcomes: list[Outcome] = []
        until = time.monotonic() + self.flush_every
        while self._queue:
            item = self._queue.popleft()
            sink = _ItemSink(self._emit, item)
            outcome = run_item(item, sink, self._pipeline, soft_timeout=True)
            outcome.log = "\n".join(sink.lines)
            outcomes.append(outcome)
            if time.monotonic() >= until:
                break
        return outcomes

    def shutdown(self, kill: bool = False) -> None:
        self._queue.clear()
