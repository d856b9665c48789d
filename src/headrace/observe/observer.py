"""Watches one run's events and turns them into lineage and metrics.

The engine hands every run and task state change to :class:`RunObserver`, which
(1) records the datasets each sync task read and wrote in the state store's ``lineage``
table, (2) queues OpenLineage events (built and sent on a background thread) and
(3) queues StatsD metrics (sent packed into datagrams on a background thread; a mapped
task's element durations sampled). Nothing here can fail a run: every
error is logged and swallowed.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from headrace.config import MetricsSettings, Settings
from headrace.observe.openlineage import LineageNote, OpenLineageEmitter
from headrace.observe.sql_lineage import sql_lineage
from headrace.observe.statsd import QueuedStatsd, StatsdClient
from headrace.pipeline import Pipeline
from headrace.state.store_base import RunRecord, StateStore

log = logging.getLogger("headrace.observe")

#: Most element durations one mapped task sends to StatsD (a uniform sample beyond it).
ELEMENT_SAMPLES = 100


class Observers:
    """The emitters of a Runner, built from the settings: shared by every Runner of the
    process with the same ``[lineage]`` (or ``[metrics]``) settings, so a Runner made for
    one run (the web UI's, the scheduler's, an MCP tool's) starts no thread and opens no
    connection; the first event starts the sender's thread, which lives as long as the
    process (an ``atexit`` hook sends what is still queued).

    Args:
        settings: the ``[lineage]`` and ``[metrics]`` sections are used.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        lineage = settings.lineage
        self.lineage = (
            shared(("lineage", lineage), lambda: OpenLineageEmitter(lineage))
            if lineage.kind
            else None
        )
        metrics = settings.metrics
        self.statsd = (
            shared(("statsd", metrics), lambda: _statsd(metrics)) if metrics.statsd else None
        )

    def for_run(
        self,
        store: StateStore,
        pipeline: Pipeline,
        run: RunRecord,
        then: Callable[[Any], None] | None,
    ) -> RunObserver:
        return RunObserver(self, store, pipeline, run, then)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the events and metrics queued so far are sent (True), ``timeout`` s at most each."""
        done = self.lineage.flush(timeout) if self.lineage is not None else True
        return (self.statsd.flush(timeout) if self.statsd is not None else True) and done

    def close(self) -> None:
        """Send what is queued (the emitters stay, shared, for the process's next Runner)."""
        self.flush()


def _statsd(metrics: MetricsSettings) -> QueuedStatsd:
    client = StatsdClient.from_settings(metrics)
    assert client is not None  # metrics.statsd is set
    return QueuedStatsd(client, log)


_emitters: dict[Hashable, Any] = {}
_emitters_lock = threading.Lock()


def shared(key: Hashable, make: Callable[[], Any]) -> Any:
    """The process's emitter for ``key`` (settings), made by ``make`` the first time."""
    with _emitters_lock:
        emitter = _emitters.get(key)
        if emitter is None:
            emitter = _emitters[key] = make()
        return emitter


def _forget_shared() -> None:
    """A forked child has none of its parent's sender threads: it makes its own emitters."""
    global _emitters_lock
    _emitters.clear()
    _emitters_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_shared)


def is_sync_task(pipeline: Pipeline, task_id: str) -> bool:
    """A task a ``sync(...)`` declared (its result carries the load's lineage)."""
    return hasattr(pipeline.tasks[task_id].fn, "__headrace_sync__")


def sql_of(pipeline: Pipeline, task_id: str) -> tuple[str, tuple[str, ...]] | None:
    """(connection, statements) of a ``sql_task``, or None."""
    return getattr(pipeline.tasks[task_id].fn, "__headrace_sql__", None)


class RunObserver:
    """The ``on_event`` of one run: lineage rows, OpenLineage events, StatsD metrics.

    Args:
        observers: the process's emitters.
        store: the state store (lineage rows, check results).
        pipeline, run: the run observed.
        then: the caller's own ``on_event``, called first.
    """

    def __init__(
        self,
        observers: Observers,
        store: StateStore,
        pipeline: Pipeline,
        run: RunRecord,
        then: Callable[[Any], None] | None,
    ) -> None:
        self.observers, self.store, self.pipeline, self.run, self.then = (
            observers,
            store,
            pipeline,
            run,
            then,
        )
        self.tis: Mapping[tuple[str, int], Any] = {}
        self.started: set[tuple[str, int]] = set()
        self.nominal = (run.data_interval_start, run.data_interval_end)

    def bind(self, tis: Mapping[tuple[str, int], Any]) -> None:
        """The engine's live task instances (read for results and times)."""
        self.tis = tis

    def __call__(self, event: Any) -> None:
        if self.then is not None:
            self.then(event)
        try:
            if event.kind == "run":
                self._run(event)
            elif event.kind == "task":
                self._task(event)
        except Exception:  # noqa: BLE001 - observing never fails a run
            log.exception("run %s: lineage/metrics for %s failed", self.run.run_id, event)

    # ------------------------------------------------------------------ run

    def _run(self, event: Any) -> None:
        state = event.state
        lineage, statsd = self.observers.lineage, self.observers.statsd
        if state == "running":
            if lineage is not None:  # a resumed run started before: it goes on RUNNING
                lineage.note(self._note("RUNNING" if self.run.started_at is not None else "START"))
            return
        if state not in ("success", "failed"):
            return
        if lineage is not None:
            kind = (
                "COMPLETE"
                if state == "success"
                else "ABORT"
                if "interrupted" in (event.error or "")
                else "FAIL"
            )
            lineage.note(self._note(kind, error=event.error))
        if statsd is not None:
            statsd.count("runs", 1, {"pipeline": self.pipeline.name, "state": state})

    def _note(
        self, state: str, task_id: str | None = None, map_index: int = -1, **extra: Any
    ) -> LineageNote:
        if task_id is None:
            meta = {
                "doc": self.pipeline.doc,
                "owner": self.pipeline.owner,
                "tags": self.pipeline.tags,
            }
        else:
            task = self.pipeline.tasks[task_id]
            meta = {"doc": task.doc, "owner": task.owner, "tags": task.tags}
            sql = sql_of(self.pipeline, task_id)
            if sql is not None:
                meta["sql"] = ";\n".join(sql[1])
        return LineageNote(
            state,
            self.run.run_id,
            self.pipeline.name,
            task_id,
            map_index,
            self.nominal,
            job=meta,
            **extra,
        )

    # ------------------------------------------------------------------ task

    def _task(self, event: Any) -> None:
        state = event.state
        lineage, statsd = self.observers.lineage, self.observers.statsd
        if event.map_index >= 0:  # an element: its retries now, its duration at the end
            if state == "up_for_retry" and statsd is not None:
                statsd.count(
                    "task.retries", 1, {"pipeline": self.pipeline.name, "task": event.task_id}
                )
            return
        tags = {"pipeline": self.pipeline.name, "task": event.task_id}
        key = (event.task_id, event.map_index)
        if state == "running":
            if lineage is not None:
                again = (
                    key in self.started or (event.attempt or 1) > 1
                )  # a retry, or a resumed run's
                lineage.note(self._note("RUNNING" if again else "START", *key))
            self.started.add(key)
            return
        if state == "up_for_retry":
            if statsd is not None:
                statsd.count("task.retries", 1, tags)
            return
        if state not in ("success", "failed"):
            return
        if (event.task_id, 0) in self.tis:
            self._elements(event.task_id, state)
        ti = self.tis.get(key)
        result = getattr(ti, "result_json", None) if state == "success" else None
        sync = (
            isinstance(result, dict)
            and "lineage" in result
            and is_sync_task(self.pipeline, event.task_id)
        )
        sql = sql_of(self.pipeline, event.task_id)
        if sql is not None and state == "success":
            result = self._sql_result(sql, result)
            sync = result is not None
        if sync and result is not None:
            self._record(event.task_id, result)
        if lineage is not None and key in self.started:
            checks = self._checks(event.task_id, result) if sync else []
            lineage.note(
                self._note(
                    "COMPLETE" if state == "success" else "FAIL",
                    *key,
                    error=event.error,
                    result=result if sync else None,
                    checks=checks,
                )
            )
        if statsd is not None:
            statsd.count("task.finished", 1, {**tags, "state": state})
            if ti is not None and ti.started_at is not None and ti.ended_at is not None:
                statsd.timing(
                    "task.duration", (ti.ended_at - ti.started_at).total_seconds() * 1000, tags
                )
            if sync and result is not None:
                statsd.count("rows.loaded", int(result.get("loaded") or 0), tags)
                statsd.count("rows.quarantined", int(result.get("quarantined") or 0), tags)

    def _elements(self, task_id: str, state: str) -> None:
        """A mapped task ended: its elements' durations, every one up to
        :data:`ELEMENT_SAMPLES` elements, beyond that those of an evenly spread random sample
        of that many elements, each line carrying the sample's rate (``|@0.1``) so the agent scales counts
        back up (an element without both times, one never started, sends none).

        Elements are one OpenLineage job with their parent (which sends START when it
        expands and COMPLETE/FAIL when all elements ended); their events are not sent to
        the observer (but an element's ``up_for_retry``, counted in ``task.retries`` as it
        happens), so a 1,000-element map costs it a sample of 100 look-ups here, not 2,000
        calls nor a pass over every element. Every element's exact duration stays in the
        state store (and Prometheus ``/metrics``).
        """
        statsd = self.observers.statsd
        if statsd is None:
            return
        tis = self.tis
        n = self._element_count(task_id, state)
        rate = 1.0
        picked: range | list[int] = range(n)
        if n > ELEMENT_SAMPLES:
            # A systematic sample (every step-th element from a random start): each element
            # is in it with probability k/n, timed or not, so a timed one's line at rate k/n
            # stands for n/k timed elements; one random number instead of k draws.
            rate = ELEMENT_SAMPLES / n
            step = n / ELEMENT_SAMPLES
            start = random.random() * step
            picked = [int(start + j * step) for j in range(ELEMENT_SAMPLES)]
        durations = []
        for i in picked:
            ti = tis.get((task_id, i))
            if ti is not None and ti.started_at is not None and ti.ended_at is not None:
                durations.append((ti.ended_at - ti.started_at).total_seconds() * 1000)
        tags = {"pipeline": self.pipeline.name, "task": task_id}
        statsd.timings("task.duration", durations, tags, rate)

    def _element_count(self, task_id: str, state: str) -> int:
        """How many elements the mapped task has: its result says so when it succeeded;
        otherwise found by bisection (the engine makes elements 0..n-1 when it expands)."""
        tis = self.tis
        result = getattr(tis.get((task_id, -1)), "result_json", None)
        if (
            state == "success"
            and isinstance(result, dict)
            and isinstance(result.get("mapped"), int)
        ):
            return int(result["mapped"])
        if (task_id, 0) not in tis:
            return 0
        low, high = 0, 1  # element `low` exists; find one past the last
        while (task_id, high) in tis:
            low, high = high, 2 * high
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if (task_id, mid) in tis else (low, mid)
        return high

    def _checks(self, task_id: str, result: Any) -> list[Any]:
        """The task's check results for outputs that do not carry theirs: a sync's outputs
        carry the checks of the rows it loaded (then the store is not asked); a load of no
        rows and a SQL task's do not."""
        lineage = result.get("lineage") if isinstance(result, dict) else None
        outputs = (lineage.get("outputs") if isinstance(lineage, dict) else None) or []
        if outputs and all(o.get("checks") for o in outputs):
            return []
        return self.store.get_check_results(self.run.run_id, task_id)

    def _sql_result(self, sql: tuple[str, tuple[str, ...]], result: Any) -> dict[str, Any] | None:
        """A SQL task's lineage (parsed once per statement set) as a sync-like result."""
        lineage = sql_lineage(sql[0], sql[1], self.observers.settings)
        if lineage is None:
            return None
        loaded = result.get("rowcount") if isinstance(result, dict) else None
        return {
            "lineage": lineage,
            "loaded": loaded if isinstance(loaded, int) and loaded >= 0 else None,
        }

    def _record(self, task_id: str, result: dict[str, Any]) -> None:
        record = getattr(self.store, "record_lineage", None)
        if record is None:
            return
        lineage = result["lineage"]
        outputs = [{**d, "rows": result.get("loaded")} for d in lineage.get("outputs", [])]
        record(self.run.run_id, self.pipeline.name, task_id, lineage.get("inputs", []), outputs)
