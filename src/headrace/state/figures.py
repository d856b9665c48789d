"""Light reads for incremental aggregates (``/metrics``): run keys, and children of many runs at once.

A scraper keeps per-run figures and totals; on each scrape it reads only the key of
every run (id, pipeline, state, end) — one narrow query — and loads task instances and
check results of the runs that are new or changed, in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Integer, String, case, cast, func, literal_column, select, text
from sqlalchemy.engine import Connection

from headrace.state.rows import check_record
from headrace.state.schema import check_results, runs, task_instances
from headrace.state.store_base import CheckResultRecord

__all__ = ["FiguresMixin", "FinishedFigures", "RunKey", "TaskRow"]

#: (run_id, pipeline, state, ended_at as stored text): changes whenever a run's figures may change.
RunKey = tuple[str, str, str, str | None]
#: (task_id, state, attempt, duration in microseconds or None) of one task instance.
TaskRow = tuple[str, str, int, int | None]
_BATCH = 500


@dataclass
class FinishedFigures:
    """The metrics' figures of every finished run at once, summed by the database.

    Attributes:
        keys: run id -> (state, ended_at as stored) of the runs summed: a scraper keeps
            them to notice a summed run that changed (resumed) or went (retention).
        task_states: (pipeline, task state, count).
        retries: (pipeline, task id, attempts beyond the first).
        durations: (pipeline, task id, bucket, count, sum of microseconds) of finished
            task instances; bucket: index of the first bound a duration is within
            (``len(bounds)``: above the last).
        checks: (pipeline, task id, severity, status, count).
        quarantined: (pipeline, task id, expectation, failed rows) of quarantine checks.
    """

    keys: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    task_states: list[tuple[str, str, int]] = field(default_factory=list)
    retries: list[tuple[str, str, int]] = field(default_factory=list)
    durations: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    checks: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    quarantined: list[tuple[str, str, str, int]] = field(default_factory=list)


class FiguresMixin:
    """:meth:`run_keys`, :meth:`task_rows_of` and :meth:`check_results_of` of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _read: Callable[[str], AbstractContextManager[Connection]]
    _tx: Callable[..., AbstractContextManager[Connection]]

    def run_keys(self) -> list[RunKey]:
        """(run_id, pipeline, state, ended_at) of every run, unordered.

        ``ended_at`` is the stored text, only good for telling whether it changed (parsing
        10,000 timestamps on every scrape would cost more than the query).
        """
        query = select(runs.c.run_id, runs.c.pipeline, runs.c.state, cast(runs.c.ended_at, String))
        with self._read("read the run keys") as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]

    def _micros(self) -> Any:
        """SQL for a task instance's duration in whole microseconds (NULL unless started and ended)."""
        ti = task_instances.c
        if self.backend == "sqlite":
            # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'. julianday() keeps milliseconds only, so the
            # whole seconds come from it and the microseconds from the text.
            seconds = func.round(
                (
                    func.julianday(func.substr(ti.ended_at, 1, 19))
                    - func.julianday(func.substr(ti.started_at, 1, 19))
                )
                * 86400
            )
            micros = cast(func.substr(ti.ended_at, 21), Integer) - cast(
                func.substr(ti.started_at, 21), Integer
            )
            return cast(seconds, Integer) * 1_000_000 + micros
        return cast(
            func.round(func.extract("epoch", ti.ended_at - ti.started_at) * 1_000_000), BigInteger
        )

    def task_rows_of(self, run_ids: Sequence[str]) -> dict[str, list[TaskRow]]:
        """(task_id, state, attempt, duration in microseconds or None) of several runs' task instances.

        The narrow form of ``task_instances_of`` for aggregates: the duration is computed
        by the database, so no timestamp is parsed in Python.
        """
        found: dict[str, list[TaskRow]] = {run_id: [] for run_id in run_ids}
        ti = task_instances.c
        micros = self._micros()
        with self._read("read task instances of runs") as conn:
            for start in range(0, len(run_ids), _BATCH):
                batch = list(run_ids[start : start + _BATCH])
                query = select(ti.run_id, ti.task_id, ti.state, ti.attempt, micros).where(
                    ti.run_id.in_(batch)
                )
                for run_id, task_id, state, attempt, duration in conn.execute(query):
                    found[run_id].append(
                        (task_id, state, attempt, None if duration is None else int(duration))
                    )
        return found

    def check_results_of(self, run_ids: Sequence[str]) -> dict[str, list[CheckResultRecord]]:
        """Check results of several runs, keyed by run id (batched ``IN`` queries)."""
        found: dict[str, list[CheckResultRecord]] = {run_id: [] for run_id in run_ids}
        with self._read("read check results of runs") as conn:
            for start in range(0, len(run_ids), _BATCH):
                batch = list(run_ids[start : start + _BATCH])
                for row in conn.execute(
                    select(check_results).where(check_results.c.run_id.in_(batch))
                ):
                    found[row.run_id].append(check_record(row._mapping))
        return found

    def finished_figures(
        self, finished: Sequence[str], task_states: Sequence[str], bounds_us: Sequence[int]
    ) -> FinishedFigures:
        """The figures of every run in a ``finished`` state, summed by the database (one snapshot).

        A first scrape over 10,000 runs would otherwise read 200,000 task instances into
        Python; grouped by the database — one pass over the task instances, one over the
        check results — the answer is a few hundred rows.

        Args:
            finished: run states whose figures no longer change.
            task_states: task states whose durations count.
            bounds_us: upper bounds of the duration buckets, in microseconds.
        """
        r, ti, cr = runs.c, task_instances.c, check_results.c
        done = r.state.in_(list(finished))
        rows = select(r.pipeline.label("pipeline"), ti.task_id.label("task_id"), ti.state.label("state"),
                      ti.attempt.label("attempt"), self._micros().label("micros")).select_from(
            task_instances.join(runs, ti.run_id == r.run_id)).where(done).cte("finished_tasks")  # fmt: skip
        rows = rows.prefix_with("MATERIALIZED") if self._materialize() else rows
        micros = rows.c.micros
        bucket = case(
            *((micros <= bound, i) for i, bound in enumerate(bounds_us)), else_=len(bounds_us)
        )
        timed = rows.c.state.in_(list(task_states)) & micros.is_not(None)
        tasks = select(
            rows.c.pipeline, rows.c.task_id, rows.c.state, case((timed, bucket), else_=-1).label("bucket"),
            func.count(), func.sum(case((rows.c.attempt > 1, rows.c.attempt - 1), else_=0)),
            func.sum(case((micros < 0, 0), else_=micros)),
        ).group_by(rows.c.pipeline, rows.c.task_id, rows.c.state, literal_column("bucket"))  # fmt: skip
        checks = select(
            r.pipeline, cr.task_id, cr.severity, cr.status, cr.expectation, func.count(), func.sum(cr.failed)
        ).select_from(check_results.join(runs, cr.run_id == r.run_id)).where(done).group_by(
            r.pipeline, cr.task_id, cr.severity, cr.status, cr.expectation)  # fmt: skip
        figures = FinishedFigures()
        states: dict[tuple[str, str], int] = {}
        retries: dict[tuple[str, str], int] = {}
        verdicts: dict[tuple[str, str, str, str], int] = {}
        with self._tx("sum the figures of finished runs", write=False) as conn:
            if self.backend == "postgresql":  # every query below sees the same runs
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            keys = select(r.run_id, r.state, cast(r.ended_at, String)).where(done)
            figures.keys = {row[0]: (row[1], row[2]) for row in conn.execute(keys)}
            for pipeline, task_id, state, slot, n, extra, total in conn.execute(tasks):
                states[(pipeline, state)] = states.get((pipeline, state), 0) + int(n)
                if extra:  # attempts beyond the first (PostgreSQL sums are Decimals)
                    retries[(pipeline, task_id)] = retries.get((pipeline, task_id), 0) + int(extra)
                if slot >= 0:
                    figures.durations.append(
                        (pipeline, task_id, int(slot), int(n), int(total or 0))
                    )
            for pipeline, task_id, severity, status, expectation, n, failed in conn.execute(checks):
                key = (pipeline, task_id, severity, status)
                verdicts[key] = verdicts.get(key, 0) + int(n)
                if severity == "quarantine" and failed:
                    figures.quarantined.append((pipeline, task_id, expectation, int(failed)))
        figures.task_states = [(p, state, n) for (p, state), n in states.items()]
        figures.retries = [(p, task_id, n) for (p, task_id), n in retries.items()]
        figures.checks = [(*key, n) for key, n in verdicts.items()]
        return figures

    def _materialize(self) -> bool:
        """Whether to compute each duration once (``AS MATERIALIZED``): SQLite 3.35+ would
        otherwise repeat it per CASE branch; PostgreSQL is faster inlined (a materialized
        CTE of unknown width makes it sort on disk)."""
        if self.backend != "sqlite":
            return False
        import sqlite3

        return sqlite3.sqlite_version_info >= (3, 35)
