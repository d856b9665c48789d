"""Operator actions in the state store: atomic claims, paused schedules, the audit log, run search.

What the web UI, the CLI and the MCP server share when a person (or an assistant)
operates runs:

* :meth:`OperationsMixin.claim_run` — the atomic compare-and-set that makes resume and
  retry exclusive: two clicks, or a click and ``headrace resume``, race on one UPDATE
  and exactly one wins.
* :meth:`OperationsMixin.set_paused` / :meth:`is_paused` — a paused pipeline gets no
  new scheduled runs (the scheduler asks on every tick).
* :meth:`OperationsMixin.record_action` / :meth:`list_actions` — who did what, when.
* :meth:`OperationsMixin.search_runs` — filtered, paginated run listing for the UI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from headrace.state.rows import run_record, task_record
from headrace.state.schema import audit_log, paused_pipelines, runs, task_instances, utcnow
from headrace.state.store_base import RunRecord, RunState, TaskInstanceRecord

__all__ = ["ActionRecord", "OperationsMixin", "RunQuery"]


@dataclass(frozen=True)
class ActionRecord:
    """One recorded operator action.

    Attributes:
        at: when it was done (UTC).
        actor: who did it (user name, ``token``, ``cli``, ``mcp``).
        action: what (``trigger``, ``resume``, ``retry``, ``mark``, ``backfill``, ``pause``, ...).
        target: on what (pipeline name, run id, ``run_id/task``).
        detail: parameters of the action (params, dates, state), secrets already masked.
        outcome: ``ok``, ``refused`` or ``failed``.
    """

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class RunQuery:
    """Filters of :meth:`OperationsMixin.search_runs`; every field is optional.

    Attributes:
        pipeline: only this pipeline.
        states: only these states.
        since, until: logical date in ``[since, until)``.
        text: a substring of the run's error or of one of its tasks' errors (case-insensitive).
        trigger: manual, scheduled or backfill.
    """

    pipeline: str | None = None
    states: Sequence[RunState] = field(default_factory=tuple)
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    trigger: str | None = None


class OperationsMixin:
    """Claims, pauses, the audit log and run search of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _where: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _read: Callable[[str], AbstractContextManager[Connection]]

    # ------------------------------------------------------------------ claims

    def task_instances_of(self, run_ids: Sequence[str]) -> dict[str, list[TaskInstanceRecord]]:
        """Task instances of several runs in one query (for the grid), keyed by run id."""
        found: dict[str, list[TaskInstanceRecord]] = {run_id: [] for run_id in run_ids}
        with self._read("read task instances of runs") as conn:
            for start in range(0, len(run_ids), 500):
                batch = list(run_ids[start : start + 500])
                for row in conn.execute(
                    select(task_instances).where(task_instances.c.run_id.in_(batch))
                ):
                    found[row.run_id].append(task_record(row._mapping))
        return found

    # ------------------------------------------------------------------ paused schedules

    def set_paused(self, pipeline: str, paused: bool, actor: str = "unknown") -> bool:
        """Pause (or unpause) the schedule of ``pipeline``.

        Returns:
            Whether anything changed (False when it already was in that state).
        """
        what = f"{'pause' if paused else 'unpause'} pipeline {pipeline!r}"
        with self._tx(what, atomic=False) as conn:
            if not paused:
                return (
                    conn.execute(
                        delete(paused_pipelines).where(paused_pipelines.c.pipeline == pipeline)
                    ).rowcount
                    > 0
                )
            insert_fn = postgresql.insert if self.backend == "postgresql" else sqlite.insert
            stmt = insert_fn(paused_pipelines).on_conflict_do_nothing(index_elements=["pipeline"])
            row = {"pipeline": pipeline, "paused_by": actor, "paused_at": utcnow()}
            return conn.execute(stmt, row).rowcount > 0

    def is_paused(self, pipeline: str) -> bool:
        """Whether the schedule of ``pipeline`` is paused."""
        query = select(paused_pipelines.c.pipeline).where(paused_pipelines.c.pipeline == pipeline)
        with self._read(f"read whether {pipeline!r} is paused") as conn:
            return conn.execute(query).first() is not None

    def paused_pipelines(self) -> dict[str, tuple[str, datetime]]:
        """Paused pipelines: name -> (who paused it, when)."""
        with self._read("list paused pipelines") as conn:
            rows = conn.execute(select(paused_pipelines)).all()
        return {r.pipeline: (r.paused_by, r.paused_at) for r in rows}

    # ------------------------------------------------------------------ audit log

    def record_action(
        self,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> None:
        """Append one operator action to the audit log (``detail`` must hold no secret)."""
        row = {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail or {},
            "outcome": outcome,
        }
        with self._tx(f"record action {action!r} on {target!r}", atomic=False) as conn:
            conn.execute(insert(audit_log), row)

    def list_actions(self, limit: int = 100, offset: int = 0) -> tuple[list[ActionRecord], int]:
        """Recorded actions, newest first, and how many there are in all."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
        with self._read("list actions") as conn:
            rows = conn.execute(query).all()
            total = int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
        return [ActionRecord(**{**r._mapping, "detail": r.detail or {}}) for r in rows], total

    # ------------------------------------------------------------------ search

    def search_runs(
        self, query: RunQuery, limit: int = 50, offset: int = 0
    ) -> tuple[list[RunRecord], int]:
        """Runs matching ``query``, newest logical date first, one page of them, and the total.

        Args:
            query: the filters.
            limit: page size.
            offset: runs skipped before the page.
        """
        where = list(_conditions(query))
        listing = (
            select(runs)
            .where(and_(True, *where))
            .order_by(runs.c.logical_date.desc(), runs.c.created_at.desc(), runs.c.run_id.desc())
            .limit(limit)
            .offset(offset)
        )
        counting = select(func.count()).select_from(runs).where(and_(True, *where))
        with self._read("search runs") as conn:
            found = [run_record(r._mapping) for r in conn.execute(listing)]
            total = int(conn.execute(counting).scalar_one())
        return found, total


def _conditions(query: RunQuery) -> Iterable[Any]:
    if query.pipeline:
        yield runs.c.pipeline == query.pipeline
    if query.states:
        yield runs.c.state.in_([RunState(s).value for s in query.states])
    if query.since is not None:
        yield runs.c.logical_date >= query.since
    if query.until is not None:
        yield runs.c.logical_date < query.until
    if query.trigger:
        yield runs.c.trigger == query.trigger
    if query.text:
        # The pattern is a bound parameter; % and _ typed by the user match themselves.
        escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        in_tasks = select(task_instances.c.run_id).where(
            task_instances.c.run_id == runs.c.run_id,
            task_instances.c.error.ilike(pattern, escape="\\"),
        )
        yield or_(runs.c.error.ilike(pattern, escape="\\"), in_tasks.exists())
