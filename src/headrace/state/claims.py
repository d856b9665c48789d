"""Claiming a run: one conditional UPDATE, so two drivers never run the same run at once.

``headrace resume``, the scheduler, the MCP server's resume / retry tools and a second
trigger of the same logical date all reach :meth:`ClaimsMixin.claim_run` before any
task runs. The UPDATE matches only while the run still has the state and driver pid
the caller read: of two callers that read the same failed (or dead running) run, one
changes it to running with its own pid and the other matches no row and is refused.
Timestamps are not compared: SQLite keeps them as text whose spelling depends on the
writer, so equality on them is not reliable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import and_, update
from sqlalchemy.engine import Connection

from headrace.errors import StateError
from headrace.state.base import RunRecord, RunState, TaskState
from headrace.state.schema import RUN_UPDATABLE, runs, task_instances


class ClaimsMixin:
    """The run-claim method of :class:`headrace.state.sql.SqlStateStore`."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def claim_run(self, seen: RunRecord, rerun: Sequence[str] = (), **fields: Any) -> bool:
        """Set the run running (with ``fields``) only if its state and pid are still as ``seen``; atomic.

        Args:
            seen: the run as the caller read it.
            rerun: task ids whose instances are set back to queued in the same
                transaction (retrying a task and what depends on it).
            fields: more run fields to set (pid, hostname, heartbeat_at, started_at ...).

        Returns:
            True when this call claimed the run; False when another claimed or changed it first.
        """
        unknown = set(fields) - set(RUN_UPDATABLE)
        if unknown:
            raise StateError(f"claim run {seen.run_id!r}: unknown run fields {sorted(unknown)}")
        values = {**fields, "state": RunState.RUNNING.value}
        stmt = (
            update(runs)
            .where(
                and_(
                    runs.c.run_id == seen.run_id,
                    runs.c.state == RunState(seen.state).value,
                    runs.c.pid.is_not_distinct_from(seen.pid),
                )
            )
            .values(**values)
        )
        with self._tx(f"claim run {seen.run_id!r}") as conn:
            if conn.execute(stmt).rowcount != 1:
                return False
            if rerun:
                conn.execute(
                    update(task_instances)
                    .where(
                        and_(task_instances.c.run_id == seen.run_id, task_instances.c.task_id.in_(list(rerun)))
                    )
                    .values(
                        state=TaskState.QUEUED.value, error=None, error_kind=None, next_try_at=None,
                        ended_at=None,
                    )
                )
        return True
