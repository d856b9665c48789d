"""Prometheus metrics read from the run-state store on each scrape.

The store is the truth about runs, so the metrics are computed from it when
Prometheus scrapes, not counted in process-global counters: every process that
serves ``/metrics`` over the same store reports the same numbers, and a restart
loses nothing.

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> registry.register(StoreCollector(open_store(settings.state_url)))
    >>> print(generate_latest(registry).decode())
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from headrace.errors import HeadraceError
from headrace.state.base import RunRecord, RunState, StateStore, TaskState

#: Upper bounds (seconds) of the task-duration histogram: sub-second tasks to 4-hour loads.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400)

_FINISHED_TASK = (TaskState.SUCCESS, TaskState.FAILED)


@dataclass
class RunFigures:
    """What one run adds to the metrics; cached for finished runs, which do not change."""

    key: tuple[str, datetime | None]  # (state, ended_at): a resume changes it
    task_states: Counter[str] = field(default_factory=Counter)
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    retries: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[tuple[str, str]] = field(default_factory=Counter)
    checks: Counter[tuple[str, str, str]] = field(default_factory=Counter)


class StoreCollector(Collector):
    """A prometheus-client Collector over a :class:`~headrace.state.base.StateStore`.

    Exposes, per pipeline: runs by state, task instances by state, a histogram of
    finished task-instance durations, retries, rows quarantined by checks, check
    results by severity and status, and SLA misses. Only Protocol reads are used
    (``list_runs``, ``get_task_instances``, ``get_check_results``,
    ``list_sla_misses``); figures of finished runs are cached, so a scrape reads the
    task instances and checks of new or unfinished runs only.

    Args:
        store: the state store to read.
        namespace: prefix of every metric name.
    """

    def __init__(self, store: StateStore, namespace: str = "headrace") -> None:
        self.store = store
        self.namespace = namespace
        self._cache: dict[str, RunFigures] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        # Nothing at registration time: describing would read the store (collect()).
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the store and yield the metric families (``<ns>_state_store_up`` 0 if it fails)."""
        ns = self.namespace
        up = GaugeMetricFamily(f"{ns}_state_store_up", "1 if the run-state store could be read.")
        try:
            with self._lock:
                families = self._families()
        except HeadraceError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _figures(self, run: RunRecord) -> RunFigures:
        key = (run.state.value, run.ended_at)
        cached = self._cache.get(run.run_id)
        if cached is not None and cached.key == key:
            return cached
        figures = RunFigures(key=key)
        for ti in self.store.get_task_instances(run.run_id):
            figures.task_states[ti.state.value] += 1
            if ti.attempt > 1:
                figures.retries[ti.task_id] += ti.attempt - 1
            if ti.state in _FINISHED_TASK and ti.started_at and ti.ended_at:
                seconds = max((ti.ended_at - ti.started_at).total_seconds(), 0.0)
                figures.durations[ti.task_id].append(seconds)
        for check in self.store.get_check_results(run.run_id):
            figures.checks[(check.task_id, check.severity, check.status)] += 1
            if check.severity == "quarantine" and check.failed:
                figures.quarantined[(check.task_id, check.expectation)] += check.failed
        if run.state.finished:
            self._cache[run.run_id] = figures
        else:
            self._cache.pop(run.run_id, None)
        return figures

    def _families(self) -> list[Metric]:
        ns = self.namespace
        runs = self.store.list_runs(limit=None)
        run_states: Counter[tuple[str, str]] = Counter()
        task_states: Counter[tuple[str, str]] = Counter()
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        retries: Counter[tuple[str, str]] = Counter()
        quarantined: Counter[tuple[str, str, str]] = Counter()
        checks: Counter[tuple[str, str, str, str]] = Counter()
        for run in runs:
            run_states[(run.pipeline, run.state.value)] += 1
            figures = self._figures(run)
            for state, n in figures.task_states.items():
                task_states[(run.pipeline, state)] += n
            for task_id, values in figures.durations.items():
                durations[(run.pipeline, task_id)].extend(values)
            for task_id, n in figures.retries.items():
                retries[(run.pipeline, task_id)] += n
            for (task_id, expectation), n in figures.quarantined.items():
                quarantined[(run.pipeline, task_id, expectation)] += n
            for (task_id, severity, status), n in figures.checks.items():
                checks[(run.pipeline, task_id, severity, status)] += n
        # Runs deleted from the store (retention) must not stay in the cache forever.
        alive = {run.run_id for run in runs}
        for run_id in [r for r in self._cache if r not in alive]:
            del self._cache[run_id]

        runs_family = GaugeMetricFamily(
            f"{ns}_runs", "Runs in the state store by pipeline and state.", labels=["pipeline", "state"]
        )
        pipelines = sorted({p for p, _ in run_states})
        for pipeline in pipelines:
            # Every state of a known pipeline, zeros included, so alerts on e.g. failed > 0 see a series.
            for state in RunState:
                runs_family.add_metric([pipeline, state.value], float(run_states[(pipeline, state.value)]))
        tasks_family = GaugeMetricFamily(
            f"{ns}_task_instances",
            "Task instances by pipeline and state.",
            labels=["pipeline", "state"],
        )
        for (pipeline, state), n in sorted(task_states.items()):
            tasks_family.add_metric([pipeline, state], float(n))
        duration_family = HistogramMetricFamily(
            f"{ns}_task_duration_seconds",
            "Durations of finished (success or failed) task instances: their last attempt, start to end.",
            labels=["pipeline", "task"],
        )
        for (pipeline, task_id), values in sorted(durations.items()):
            duration_family.add_metric(
                [pipeline, task_id], _buckets(values), sum_value=sum(values)
            )
        retries_family = CounterMetricFamily(
            f"{ns}_task_retries", "Attempts beyond the first, by pipeline and task.", labels=["pipeline", "task"]
        )
        for (pipeline, task_id), n in sorted(retries.items()):
            retries_family.add_metric([pipeline, task_id], float(n))
        quarantine_family = CounterMetricFamily(
            f"{ns}_quarantined_rows",
            "Rows failing quarantine-severity expectations, by pipeline, task and expectation "
            "(a row failing two expectations counts under both).",
            labels=["pipeline", "task", "expectation"],
        )
        for (pipeline, task_id, expectation), n in sorted(quarantined.items()):
            quarantine_family.add_metric([pipeline, task_id, expectation], float(n))
        checks_family = CounterMetricFamily(
            f"{ns}_check_results",
            "Expectation results stored by checks, by pipeline, task, severity and status.",
            labels=["pipeline", "task", "severity", "status"],
        )
        for key, n in sorted(checks.items()):
            checks_family.add_metric(list(key), float(n))
        sla_family = CounterMetricFamily(
            f"{ns}_sla_misses", "Tasks not done by their SLA deadline, by pipeline and task.", labels=["pipeline", "task"]
        )
        misses = Counter((m.pipeline, m.task_id) for m in self.store.list_sla_misses())
        for (pipeline, task_id), n in sorted(misses.items()):
            sla_family.add_metric([pipeline, task_id], float(n))
        return [
            runs_family,
            tasks_family,
            duration_family,
            retries_family,
            quarantine_family,
            checks_family,
            sla_family,
            *self._custom(),
        ]

    def _custom(self) -> list[Metric]:
        """``ctx.metric`` values: one gauge family ``<ns>_custom_<name>`` per name, the latest
        value per (pipeline, task, tags); labels pipeline, task and the tag keys."""
        latest = getattr(self.store, "latest_task_metrics", None)
        if latest is None:
            return []
        by_name: dict[str, list[Any]] = defaultdict(list)
        for m in latest():
            by_name[m.name].append(m)
        families: list[Metric] = []
        for name, values in sorted(by_name.items()):
            keys = sorted({k for m in values for k in m.tags if k not in ("pipeline", "task")})
            family = GaugeMetricFamily(
                f"{self.namespace}_custom_{name}", f"ctx.metric({name!r}): the latest value per task and tags.",
                labels=["pipeline", "task", *keys],
            )
            for m in values:
                family.add_metric([m.pipeline, m.task_id, *(m.tags.get(k, "") for k in keys)], m.value)
            families.append(family)
        return families


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs over :data:`DURATION_BUCKETS`, ending with ``+Inf``."""
    ordered = sorted(values)
    out: list[tuple[str, float]] = []
    i = 0
    for bound in DURATION_BUCKETS:
        while i < len(ordered) and ordered[i] <= bound:
            i += 1
        out.append((_le(bound), float(i)))
    out.append(("+Inf", float(len(ordered))))
    return out


def _le(bound: float) -> str:
    return str(float(bound))
