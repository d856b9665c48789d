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
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from headrace.errors import HeadraceError
from headrace.state.figures import FinishedFigures, TaskRow
from headrace.state.store_base import (
    CheckResultRecord,
    RunState,
    StateStore,
    TaskState,
)

#: Upper bounds (seconds) of the task-duration histogram: sub-second tasks to 4-hour loads.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400)

_FINISHED_TASK = (TaskState.SUCCESS.value, TaskState.FAILED.value)
_BOUNDS_US = tuple(round(b * 1_000_000) for b in DURATION_BUCKETS)


@dataclass
class RunFigures:
    """What one run adds to the metrics; cached for finished runs, which do not change."""

    key: tuple[str, str | None]  # (state, ended_at as stored): a resume changes it
    pipeline: str = ""
    task_states: Counter[str] = field(default_factory=Counter)
    durations: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )  # microseconds
    retries: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[tuple[str, str]] = field(default_factory=Counter)
    checks: Counter[tuple[str, str, str]] = field(default_factory=Counter)


class StoreCollector(Collector):
    """A prometheus-client Collector over a :class:`~headrace.state.store_base.StateStore`.

    Exposes, per pipeline: runs by state, task instances by state, a histogram of
    finished task-instance durations, retries, rows quarantined by checks, check
    results by severity and status, and SLA misses.

    Incremental: the first scrape has the database sum the figures of every finished
    run (``finished_figures``: grouped queries, a few hundred rows back instead of every
    task instance) and keeps those runs' keys. Each scrape reads the key of every run
    (``run_keys``: id, pipeline, state, end — one narrow query) and loads, in bulk, the
    task instances and checks of the other runs that are new or changed only; totals are
    updated by taking out a run's old figures and adding its new ones. When a summed run
    changes (resumed) or goes (retention), the sums are taken again. With 10,000 runs
    kept a warm scrape stays in milliseconds.

    Args:
        store: the state store to read.
        namespace: prefix of every metric name.
    """

    def __init__(self, store: StateStore, namespace: str = "headrace") -> None:
        self.store = store
        self.namespace = namespace
        self._cache: dict[str, RunFigures] = {}
        self._totals = _Totals()
        #: (state, ended_at) of the runs the database summed; None: sum them (again).
        self._summed: dict[str, tuple[str, str | None]] | None = None
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

    def _figures(
        self,
        run_id: str,
        pipeline: str,
        key: tuple[str, str | None],
        tasks: list[TaskRow],
        checks: list[CheckResultRecord],
    ) -> RunFigures:
        figures = RunFigures(key=key, pipeline=pipeline)
        for task_id, state, attempt, micros in tasks:
            figures.task_states[state] += 1
            if attempt > 1:
                figures.retries[task_id] += attempt - 1
            if state in _FINISHED_TASK and micros is not None:
                # Whole microseconds: totals add and take out runs without float drift.
                figures.durations[task_id].append(max(micros, 0))
        for check in checks:
            figures.checks[(check.task_id, check.severity, check.status)] += 1
            if check.severity == "quarantine" and check.failed:
                figures.quarantined[(check.task_id, check.expectation)] += check.failed
        return figures

    def _sum_finished(self) -> None:
        """Start over from the database's sums over finished runs (or from nothing, when
        the store cannot sum: every run is then read one by one)."""
        self._cache.clear()
        self._totals = _Totals()
        aggregate = getattr(self.store, "finished_figures", None)
        if aggregate is None:
            self._summed = {}
            return
        figures = aggregate([s.value for s in RunState if s.finished], _FINISHED_TASK, _BOUNDS_US)
        self._totals.add_sums(figures)
        self._summed = figures.keys

    def _run_keys(self) -> list[tuple[str, str, str, str | None]]:
        """Every run's key, with the summed runs checked unchanged (else summed again)."""
        for _ in range(3):
            if self._summed is None:
                self._sum_finished()
            summed = self._summed or {}
            keys = self.store.run_keys()
            present = 0
            for run_id, _, state, ended_at in keys:
                was = summed.get(run_id)
                if was is not None:
                    if was != (state, ended_at):
                        break
                    present += 1
            else:
                if present == len(summed):
                    return keys
            self._summed = None  # a summed run changed or was deleted: its share is unknown
        # Runs keep changing under the sums: read every run one by one this time.
        self._cache.clear()
        self._totals = _Totals()
        self._summed = {}
        return self.store.run_keys()

    def _refresh(self) -> Counter[tuple[str, str]]:
        """Bring the cached figures and totals up to date; return runs by (pipeline, state)."""
        keys = self._run_keys()
        summed = self._summed or {}
        run_states: Counter[tuple[str, str]] = Counter()
        stale: dict[str, tuple[str, tuple[str, str | None]]] = {}
        for run_id, pipeline, state, ended_at in keys:
            run_states[(pipeline, state)] += 1
            if run_id in summed:
                continue
            cached = self._cache.get(run_id)
            if cached is None or cached.key != (state, ended_at) or not RunState(state).finished:
                stale[run_id] = (pipeline, (state, ended_at))
        # Runs deleted from the store (retention) leave the cache and the totals.
        alive = {key[0] for key in keys}
        for run_id in [r for r in self._cache if r not in alive]:
            self._totals.add(self._cache.pop(run_id), -1)
        ids = list(stale)
        tasks, checks = self.store.task_rows_of(ids), self.store.check_results_of(ids)
        for run_id, (pipeline, key) in stale.items():
            old = self._cache.pop(run_id, None)
            if old is not None:
                self._totals.add(old, -1)
            figures = self._figures(
                run_id, pipeline, key, tasks.get(run_id, []), checks.get(run_id, [])
            )
            self._totals.add(figures, +1)
            self._cache[run_id] = figures
        return run_states

    def _families(self) -> list[Metric]:
        ns = self.namespace
        run_states = self._refresh()
        totals = self._totals
        task_states, retries, quarantined, checks = (
            totals.task_states,
            totals.retries,
            totals.quarantined,
            totals.checks,
        )
        runs_family = GaugeMetricFamily(
            f"{ns}_runs",
            "Runs in the state store by pipeline and state.",
            labels=["pipeline", "state"],
        )
        pipelines = sorted({p for p, _ in run_states})
        for pipeline in pipelines:
            # Every state of a known pipeline, zeros included, so alerts on e.g. failed > 0 see a series.
            for state in RunState:
                runs_family.add_metric(
                    [pipeline, state.value], float(run_states[(pipeline, state.value)])
                )
        tasks_family = GaugeMetricFamily(
            f"{ns}_task_instances",
            "Task instances by pipeline and state.",
            labels=["pipeline", "state"],
        )
        for (pipeline, task_state), n in sorted(k for k in task_states.items() if k[1] > 0):
            tasks_family.add_metric([pipeline, task_state], float(n))
        duration_family = HistogramMetricFamily(
            f"{ns}_task_duration_seconds",
            "Durations of finished (success or failed) task instances: their last attempt, start to end.",
            labels=["pipeline", "task"],
        )
        for (pipeline, task_id), (counts, total) in sorted(totals.durations.items()):
            if counts[-1] <= 0:
                continue
            cumulative = [
                (_le(b), float(n)) for b, n in zip(DURATION_BUCKETS, counts, strict=False)
            ]
            duration_family.add_metric(
                [pipeline, task_id],
                [*cumulative, ("+Inf", float(counts[-1]))],
                sum_value=total / 1_000_000,
            )
        retries_family = CounterMetricFamily(
            f"{ns}_task_retries",
            "Attempts beyond the first, by pipeline and task.",
            labels=["pipeline", "task"],
        )
        for (pipeline, task_id), n in sorted(k for k in retries.items() if k[1] > 0):
            retries_family.add_metric([pipeline, task_id], float(n))
        quarantine_family = CounterMetricFamily(
            f"{ns}_quarantined_rows",
            "Rows failing quarantine-severity expectations, by pipeline, task and expectation "
            "(a row failing two expectations counts under both).",
            labels=["pipeline", "task", "expectation"],
        )
        for (pipeline, task_id, expectation), n in sorted(
            k for k in quarantined.items() if k[1] > 0
        ):
            quarantine_family.add_metric([pipeline, task_id, expectation], float(n))
        checks_family = CounterMetricFamily(
            f"{ns}_check_results",
            "Expectation results stored by checks, by pipeline, task, severity and status.",
            labels=["pipeline", "task", "severity", "status"],
        )
        for key, n in sorted(k for k in checks.items() if k[1] > 0):
            checks_family.add_metric(list(key), float(n))
        sla_family = CounterMetricFamily(
            f"{ns}_sla_misses",
            "Tasks not done by their SLA deadline, by pipeline and task.",
            labels=["pipeline", "task"],
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
                f"{self.namespace}_custom_{name}",
                f"ctx.metric({name!r}): the latest value per task and tags.",
                labels=["pipeline", "task", *keys],
            )
            for m in values:
                family.add_metric(
                    [m.pipeline, m.task_id, *(m.tags.get(k, "") for k in keys)], m.value
                )
            families.append(family)
        return families


class _Totals:
    """Running totals over every cached run's figures, keyed by pipeline."""

    def __init__(self) -> None:
        self.task_states: Counter[tuple[str, str]] = Counter()
        self.retries: Counter[tuple[str, str]] = Counter()
        self.quarantined: Counter[tuple[str, str, str]] = Counter()
        self.checks: Counter[tuple[str, str, str, str]] = Counter()
        # (pipeline, task) -> (count per bucket bound then the total count, sum of microseconds)
        self.durations: dict[tuple[str, str], tuple[list[int], int]] = {}

    def add_sums(self, sums: FinishedFigures) -> None:
        """Add the database's sums over finished runs."""
        for p, state, n in sums.task_states:
            self.task_states[(p, state)] += n
        for p, task_id, n in sums.retries:
            self.retries[(p, task_id)] += n
        for p, task_id, severity, status, n in sums.checks:
            self.checks[(p, task_id, severity, status)] += n
        for p, task_id, expectation, n in sums.quarantined:
            self.quarantined[(p, task_id, expectation)] += n
        for p, task_id, bucket, n, micros in sums.durations:
            counts, total = self.durations.get((p, task_id)) or (
                [0] * (len(DURATION_BUCKETS) + 1),
                0,
            )
            for i in range(bucket, len(DURATION_BUCKETS)):
                counts[i] += n  # cumulative: within this bound and every larger one
            counts[-1] += n
            self.durations[(p, task_id)] = (counts, total + micros)

    def add(self, figures: RunFigures, sign: int) -> None:
        """Add (sign +1) or take out (sign -1) one run's figures."""
        p = figures.pipeline
        for state, n in figures.task_states.items():
            self.task_states[(p, state)] += sign * n
        for task_id, n in figures.retries.items():
            self.retries[(p, task_id)] += sign * n
        for (task_id, expectation), n in figures.quarantined.items():
            self.quarantined[(p, task_id, expectation)] += sign * n
        for (task_id, severity, status), n in figures.checks.items():
            self.checks[(p, task_id, severity, status)] += sign * n
        for task_id, values in figures.durations.items():
            counts, total = self.durations.get((p, task_id)) or (
                [0] * (len(DURATION_BUCKETS) + 1),
                0,
            )
            for value in values:
                for i, bound in enumerate(_BOUNDS_US):
                    if value <= bound:
                        counts[i] += sign
                counts[-1] += sign
            self.durations[(p, task_id)] = (counts, total + sign * sum(values))


def _le(bound: float) -> str:
    return str(float(bound))
