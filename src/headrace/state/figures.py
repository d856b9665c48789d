"""Light reads for incremental aggregates (``/metrics``): run keys, and children of many runs at once.

A scraper keeps per-run figures and totals; on each scrape it reads only the key of
every run (id, pipeline, state, end) — one narrow query — and loads task instances and
check results of the runs that are new or changed, in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import BigInteger, Integer, String, cast, func, select
from sqlalchemy.engine import Connection

from headrace.state.rows import check_record
from headrace.state.schema import check_results, runs, task_instances
from headrace.state.store_base import CheckResultRecord

__all__ = ["FiguresMixin", "RunKey", "TaskRow"]

#: (run_id, pipeline, state, ended_at as stored text): changes whenever a run's figures may change.
RunKey = tuple[str, str, str, str | None]
#: (task_id, state, attempt, duration in microseconds or None) of one task instance.
TaskRow = tuple[str, str, int, int | None]
_BATCH = 500


class FiguresMixin:
    """:meth:`run_keys`, :meth:`task_rows_of` and :meth:`check_results_of` of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _read: Callable[[str], AbstractContextManager[Connection]]

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
            seconds = func.round((func.julianday(func.substr(ti.ended_at, 1, 19))
                                  - func.julianday(func.substr(ti.started_at, 1, 19))) * 86400)
            micros = cast(func.substr(ti.ended_at, 21), Integer) - cast(func.substr(ti.started_at, 21), Integer)
            return cast(seconds, Integer) * 1_000_000 + micros
        return cast(func.round(func.extract("epoch", ti.ended_at - ti.started_at) * 1_000_000), BigInteger)

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
                query = select(ti.run_id, ti.task_id, ti.state, ti.attempt, micros).where(ti.run_id.in_(batch))
                for run_id, task_id, state, attempt, duration in conn.execute(query):
                    found[run_id].append((task_id, state, attempt, None if duration is None else int(duration)))
        return found

    def check_results_of(self, run_ids: Sequence[str]) -> dict[str, list[CheckResultRecord]]:
        """Check results of several runs, keyed by run id (batched ``IN`` queries)."""
        found: dict[str, list[CheckResultRecord]] = {run_id: [] for run_id in run_ids}
        with self._read("read check results of runs") as conn:
            for start in range(0, len(run_ids), _BATCH):
                batch = list(run_ids[start : start + _BATCH])
                for row in conn.execute(select(check_results).where(check_results.c.run_id.in_(batch))):
                    found[row.run_id].append(check_record(row._mapping))
        return found
