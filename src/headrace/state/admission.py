"""Admission of runs: ``max_active_runs`` held for any number of schedulers and backfills.

Creating a run under a cap is one transaction serialised per pipeline: on PostgreSQL by
a transaction-scoped advisory lock keyed by (schema, pipeline), on SQLite by the
database write lock (``BEGIN IMMEDIATE``). Inside it the pipeline's active runs are
counted and the run is inserted only while fewer than the cap are active, so two
processes counting at the same instant can no longer both take the last slot.

Which runs hold a slot:

- RUNNING runs whose driving process is alive (a dead driver's run holds none; the
  scheduler marks it failed);
- QUEUED runs created within ``queued_grace`` (their driver is starting), and QUEUED
  scheduled runs of any age (a scheduler relaunches them); an older driverless
  manual or backfill run holds none until something drives it again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from headrace.errors import StateError
from headrace.state.liveness import driver_alive
from headrace.state.rows import queued_run_row, run_record
from headrace.state.schema import runs, utcnow
from headrace.state.store_base import RunRecord, RunState

#: A driver on another host whose heartbeat is older than this is dead.
STALE_AFTER = timedelta(seconds=60)
#: A QUEUED run younger than this holds a slot: its driver is being started.
QUEUED_GRACE = timedelta(minutes=2)
_ACTIVE = (RunState.QUEUED.value, RunState.RUNNING.value)


@dataclass(frozen=True)
class Admission:
    """What :meth:`AdmissionMixin.admit_run` decided.

    Attributes:
        run: the created run, the existing run of that key, or None when refused.
        created: True when this call created the run.
        active: the pipeline's runs holding a slot when the decision was made.
    """

    run: RunRecord | None
    created: bool
    active: int

    @property
    def refused(self) -> bool:
        """No slot was free: nothing was created."""
        return self.run is None


class AdmissionMixin:
    """The run-admission method of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _find: Callable[[Connection, str, datetime], RunRecord | None]

    def admit_run(
        self,
        pipeline: str,
        logical_date: datetime,
        data_interval_start: datetime,
        data_interval_end: datetime,
        params: dict[str, Any] | None = None,
        trigger: str = "scheduled",
        *,
        max_active: int,
        queued_grace: timedelta = QUEUED_GRACE,
        stale_after: timedelta = STALE_AFTER,
        now: datetime | None = None,
    ) -> Admission:
        """Create the run only if fewer than ``max_active`` runs of the pipeline are active.

        Atomic across processes and hosts sharing the store. A run that exists already
        for (pipeline, logical_date) is returned as is (``created`` False), whatever the cap.

        Args:
            pipeline, logical_date, data_interval_start, data_interval_end, params, trigger:
                as for ``create_run``.
            max_active: the pipeline's ``max_active_runs``.
            queued_grace: how long a driverless QUEUED run holds its slot.
            stale_after: a driver on another host whose heartbeat is older is dead.
            now: the time the grace periods are measured from (default: now; the
                scheduler passes its clock's).

        Example:
            >>> admission = store.admit_run("etl", day, day, day + timedelta(days=1), max_active=2)
            >>> admission.refused  # True: two runs of etl are active, try again later
        """
        if max_active < 1:
            raise StateError(f"max_active_runs must be >= 1, got {max_active}", pipeline=pipeline)
        what = f"admit a run for {logical_date.isoformat()}"
        loc = {"pipeline": pipeline}
        for _ in range(3):
            try:
                with self._tx(what, location=loc) as conn:
                    self._lock_pipeline(conn, pipeline)
                    found = self._find(conn, pipeline, logical_date)
                    active = self._count_active(
                        conn, pipeline, now or utcnow(), queued_grace, stale_after
                    )
                    if found is not None:
                        return Admission(found, False, active)
                    if active >= max_active:
                        return Admission(None, False, active)
                    conn.execute(
                        insert(runs),
                        queued_run_row(
                            pipeline,
                            logical_date,
                            data_interval_start,
                            data_interval_end,
                            params,
                            trigger,
                        ),
                    )
                    created = self._find(conn, pipeline, logical_date)
            except IntegrityError:
                continue  # a run-id collision: the key itself is guarded by the lock
            assert created is not None  # inserted in the same transaction
            return Admission(created, True, active + 1)
        raise StateError(f"{what}: could not allocate a unique run id after 3 tries.", **loc)

    def _lock_pipeline(self, conn: Connection, pipeline: str) -> None:
        """Serialise admissions of one pipeline until commit (SQLite: BEGIN IMMEDIATE did)."""
        if self.backend == "postgresql":
            conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || :key, 0))"
                ),
                {"key": f"headrace.run_admission/{pipeline}"},
            )

    def _count_active(
        self,
        conn: Connection,
        pipeline: str,
        now: datetime,
        queued_grace: timedelta,
        stale_after: timedelta,
    ) -> int:
        rows = conn.execute(
            select(runs).where(and_(runs.c.pipeline == pipeline, runs.c.state.in_(_ACTIVE)))
        ).all()
        count = 0
        for row in rows:
            run = run_record(row._mapping)
            if run.state == RunState.RUNNING:
                count += driver_alive(run, now, stale_after)
            elif run.trigger == "scheduled" or (
                run.created_at is not None and now - run.created_at < queued_grace
            ):
                count += 1
        return count
