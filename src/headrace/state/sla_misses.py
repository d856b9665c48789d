"""SLA misses in the state store: recorded once per (run, task), listed for alerts and views."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from headrace.state.rows import unknown_run
from headrace.state.schema import sla_misses
from headrace.state.store_base import SlaMissRecord


class SlaMissesMixin:
    """The SLA-miss methods of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _where: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _read: Callable[[str], AbstractContextManager[Connection]]

    def record_sla_miss(self, miss: SlaMissRecord) -> bool:
        """Record ``miss``; False when that (run, task) was already recorded, by anyone.

        Raises:
            StateError: the run does not exist (closest run id suggested).
        """
        insert_fn = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        # RETURNING tells whether the row was inserted (rowcount is not reliable for DO NOTHING).
        stmt = (
            insert_fn(sla_misses)
            .on_conflict_do_nothing(index_elements=["run_id", "task_id"])
            .returning(sla_misses.c.run_id)
        )
        values = {
            "run_id": miss.run_id,
            "task_id": miss.task_id,
            "pipeline": miss.pipeline,
            "logical_date": miss.logical_date,
            "deadline": miss.deadline,
            "sla_seconds": int(miss.sla.total_seconds()),
            "detected_at": miss.detected_at,
        }
        what = f"record the SLA miss of task {miss.task_id!r} of run {miss.run_id!r}"
        try:
            with self._tx(what, atomic=False) as conn:
                return conn.execute(stmt, values).first() is not None
        except IntegrityError:  # the foreign key: no such run
            with self._read(what) as conn:
                raise unknown_run(conn, miss.run_id, self._where) from None

    def list_sla_misses(
        self, pipeline: str | None = None, run_ids: Iterable[str] | None = None
    ) -> list[SlaMissRecord]:
        """Recorded misses, newest deadline first.

        Args:
            pipeline: only this pipeline's.
            run_ids: only these runs' (an empty list gives none).
        """
        query = select(sla_misses).order_by(sla_misses.c.deadline.desc(), sla_misses.c.task_id)
        if pipeline is not None:
            query = query.where(sla_misses.c.pipeline == pipeline)
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return []
            query = query.where(sla_misses.c.run_id.in_(ids))
        with self._read("list SLA misses") as conn:
            return [
                SlaMissRecord(
                    pipeline=r.pipeline,
                    run_id=r.run_id,
                    task_id=r.task_id,
                    logical_date=r.logical_date,
                    deadline=r.deadline,
                    sla=timedelta(seconds=r.sla_seconds),
                    detected_at=r.detected_at,
                )
                for r in conn.execute(query)
            ]
