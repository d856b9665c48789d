"""The local process pool (the default executor): ready tasks run in parallel workers.

Each worker is a process with its own pipe to the driver. A work item names the
pipeline file and task id; the worker imports the file once (with the ``fork`` start
method it is already imported) and runs the task. A task that passes its timeout has
its worker killed (SIGKILL), which stops its work whatever it is doing, and a fresh
worker takes the slot. A worker that dies on its own is reported as ``worker_died``.

Start method: ``forkserver`` where available. Plain ``fork`` is unsafe here: once the
driving process has used Polars or pyarrow, their thread pools exist, and a forked
child that touches them can deadlock (measured: the table tests hung with fork). The
fork server is a fresh single-threaded process that imports headrace, pyarrow and
Polars once; each worker is forked from it, so starting one stays cheap. Pass
``start_method="fork"`` only when the driver has started no threads.

Warm pool: with ``keep_warm=True`` the workers outlive a run. :meth:`shutdown` leaves
idle workers waiting (each has already imported headrace, pyarrow, Polars and the
pipeline files it ran), and the next run of the same driver (a Runner running many
runs, a backfill, an inline scheduler, ``headrace worker``) reuses them; :meth:`close`
stops them. Workers start lazily, one per concurrent task actually submitted, so a
chain of tasks uses one worker however large ``concurrency`` is.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready
from typing import TYPE_CHECKING, Any

from headrace.executors.executor_base import AttemptFn, Event, EventSink, Outcome, WorkItem

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from headrace.pipeline import Pipeline


class _PipeSink:
    """Worker side: log lines and progress go to the driver as they happen."""

    __slots__ = ("conn", "key")

    def __init__(self, conn: Connection, key: tuple[str, int]) -> None:
        self.conn, self.key = conn, key

    def log(self, text: str) -> None:
        self.conn.send(("log", self.key, text))

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self.conn.send(("progress", self.key, (done, total, message)))


def _watch_driver(driver_pid: int) -> None:
    """Exit when the driving process is gone (killed with -9 it cannot tell us)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(driver_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # pragma: no cover - pid reused by another user
            os._exit(1)


def worker_main(conn: Connection, driver_pid: int, run_item: AttemptFn) -> None:
    """Loop of one worker process: receive a work item, run it, send the outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # not the driver's live display
    threading.Thread(target=_watch_driver, args=(driver_pid,), daemon=True).start()
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        conn.send(("done", run_item(item, _PipeSink(conn, item.key))))


class _Worker:
    __slots__ = ("conn", "deadline", "item", "lines", "process")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn
        self.item: WorkItem | None = None
        self.deadline: float | None = None
        self.lines: list[str] = []


class ProcessExecutor:
    """Runs work items in a pool of local worker processes.

    Args:
        concurrency: most workers at once (default: the number of CPU cores).
        start_method: ``forkserver`` (default where available), ``spawn`` or ``fork``.
        keep_warm: keep idle workers across runs until :meth:`close` (see the module doc).

    Example:
        >>> pool = ProcessExecutor(concurrency=4, keep_warm=True)
        >>> runner = Runner(store, executor=pool, settings=settings)  # runs share the workers
        >>> pool.close()
    """

    def __init__(
        self,
        concurrency: int | None = None,
        start_method: str | None = None,
        keep_warm: bool = False,
    ) -> None:
        self.capacity = max(1, concurrency or os.cpu_count() or 1)
        methods = mp.get_all_start_methods()
        self.start_method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self.keep_warm = keep_warm
        self._ctx: Any = None
        self._workers: list[_Worker] = []
        self._emit: EventSink = lambda event: None
        self._run_item: AttemptFn | None = None

    def start(self, emit: EventSink, pipeline: Pipeline, run_item: AttemptFn) -> None:
        """Get ready for a run; workers start when tasks are submitted (or are still warm)."""
        self._emit = emit
        if self._run_item is not run_item:  # workers run the function they were started with
            self.close()
            self._run_item = run_item
        if self._ctx is None:
            self._ctx = mp.get_context(self.start_method)
            if self.start_method == "forkserver":
                # Imported once by the fork server, so each worker starts with them loaded.
                self._ctx.set_forkserver_preload([run_item.__module__, "pyarrow", "polars"])
        self._workers = [w for w in self._workers if w.process.is_alive()]

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, os.getpid(), self._run_item),
            name="headrace-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def submit(self, item: WorkItem) -> None:
        worker = next((w for w in self._workers if w.item is None), None)
        if worker is None and len(self._workers) < self.capacity:
            worker = self._spawn()
            self._workers.append(worker)
        if worker is None:
            raise RuntimeError(
                f"process pool full ({self.capacity} workers busy); the engine over-submitted"
            )
        worker.item, worker.lines = item, []
        worker.deadline = time.monotonic() + item.timeout if item.timeout else None
        worker.conn.send(item)

    def wait(self, timeout: float | None) -> list[Outcome]:
        end = None if timeout is None else time.monotonic() + timeout
        outcomes: list[Outcome] = []
        while not outcomes:
            busy = [w for w in self._workers if w.item is not None]
            if not busy:
                return outcomes
            now = time.monotonic()
            limits = [w.deadline for w in busy if w.deadline is not None]
            if end is not None:
                limits.append(end)
            block = max(0.0, min(limits) - now) if limits else None
            handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            ready = set(wait_ready(handles, block))
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    # A dead worker may have sent its outcome first: read that before judging.
                    open_pipe = self._drain(worker, outcomes)
                    if worker.item is not None and (
                        not open_pipe or worker.process.sentinel in ready
                    ):
                        outcomes.append(self._lost(worker, "worker_died"))
            now = time.monotonic()
            for worker in busy:
                if (
                    worker.item is not None
                    and worker.deadline is not None
                    and now >= worker.deadline
                ):
                    outcomes.append(self._lost(worker, "timeout"))
            if end is not None and now >= end:
                break
        return outcomes

    def _drain(self, worker: _Worker, outcomes: list[Outcome]) -> bool:
        """Read every message the worker has sent so far; False when its pipe is closed."""
        try:
            while worker.item is not None and worker.conn.poll():
                kind, *payload = worker.conn.recv()
                item = worker.item
                if kind == "done":
                    outcome: Outcome = payload[0]
                    outcome.log = "\n".join(worker.lines)
                    worker.item, worker.deadline, worker.lines = None, None, []
                    outcomes.append(outcome)
                elif kind == "log":
                    worker.lines.append(payload[1])
                    self._emit(Event.from_log(item, payload[1]))
                elif kind == "progress":
                    self._emit(Event.from_progress(item, *payload[1]))
        except (EOFError, OSError):
            return False  # the worker died
        return True

    def _lost(self, worker: _Worker, kind: str) -> Outcome:
        """End a worker whose attempt timed out or died; a fresh worker takes its slot."""
        item = worker.item
        assert item is not None
        process = worker.process
        if process.is_alive():
            process.kill()  # SIGKILL: stops the task's work, even inside C code
        process.join(5)
        if kind == "timeout":
            error = f"task {item.task_id!r} exceeded its timeout of {item.timeout:g} s; its worker was killed"
        else:
            error = f"worker process {process.pid} exited with code {process.exitcode} while running task {item.task_id!r}"
        outcome = Outcome(
            item.task_id,
            item.map_index,
            item.attempt,
            ok=False,
            error=error,
            error_kind=kind,
            retryable=True,
            log="\n".join(worker.lines + [error]),
            pid=process.pid,
        )
        worker.conn.close()
        worker.item, worker.deadline = None, None  # reported once, even if it also timed out
        if worker in self._workers:
            self._workers.remove(worker)  # a fresh worker starts when a task needs the slot
        return outcome

    def shutdown(self, kill: bool = False) -> None:
        """End a run: a warm pool keeps its idle workers (``kill`` ends the busy ones)."""
        if not self.keep_warm:
            self.close(kill)
            return
        for worker in [w for w in self._workers if w.item is not None or not w.process.is_alive()]:
            self._stop(worker, kill=True)
            self._workers.remove(worker)

    def _stop(self, worker: _Worker, kill: bool) -> None:
        try:
            if kill:
                worker.process.kill()
            else:
                worker.conn.send(None)
        except (OSError, ValueError):
            pass
        worker.process.join(5 if kill else 2)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5)
        worker.conn.close()

    def close(self, kill: bool = False) -> None:
        """Stop every worker; ``kill`` stops running attempts at once (their outcomes are lost)."""
        for worker in self._workers:
            try:
                if kill and worker.item is not None:
                    worker.process.kill()
                else:
                    worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._workers:
            worker.process.join(2 if not kill else 5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
            worker.conn.close()
        self._workers = []
