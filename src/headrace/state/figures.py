"""Light reads for incremental aggregates (``/metrics``): run keys, and children of many runs at once.

A scraper keeps per-run figures and totals; on each scrape it reads only the key of
every run (id, pipeline, state, end) — one narrow query — and loads task instances and
check results of the runs that are new or changed, in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from headrace.state.base import CheckResultRecord
from headrace.state.rows import check_record
from headrace.state.schema import check_results, runs

__all__ = ["FiguresMixin", "RunKey"]

#: (run_id, pipeline, state, ended_at): changes whenever a run's figures may change.
RunKey = tuple[str, str, str, datetime | None]
_BATCH = 500


class FiguresMixin:
    """:meth:`run_keys` and :meth:`check_results_of` of :class:`headrace.state.sql.SqlStateStore`."""

    backend: str
    _read: Callable[[str], AbstractContextManager[Connection]]

    def run_keys(self) -> list[RunKey]:
        """(run_id, pipeline, state, ended_at) of every run, unordered."""
        query = select(runs.c.run_id, runs.c.pipeline, runs.c.state, runs.c.ended_at)
        with self._read("read the run keys") as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]

    def check_results_of(self, run_ids: Sequence[str]) -> dict[str, list[CheckResultRecord]]:
        """Check results of several runs, keyed by run id (batched ``IN`` queries)."""
        found: dict[str, list[CheckResultRecord]] = {run_id: [] for run_id in run_ids}
        with self._read("read check results of runs") as conn:
            for start in range(0, len(run_ids), _BATCH):
                batch = list(run_ids[start : start + _BATCH])
                for row in conn.execute(select(check_results).where(check_results.c.run_id.in_(batch))):
                    found[row.run_id].append(check_record(row._mapping))
        return found
