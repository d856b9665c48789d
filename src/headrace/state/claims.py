"""Claiming a run: one conditional UPDATE, so two drivers never run the same run at once.

``headrace resume``, the scheduler, the MCP server's resume / retry tools and a second
trigger of the same logical date all reach :meth:`ClaimsMixin.claim_run` before any
task runs. The UPDATE matches only while the run still has the state and driver
(pid, host) the caller read: of two callers that read the same failed (or dead running)
run, one changes it to running with its own pid and the other matches no row and is
refused. Timestamps are not compared: on SQLite the fast write path and SQLAlchemy spell
a whole-second datetime differently (``00:00:00`` against ``00:00:00.000000``), so text
equality on them is not reliable.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import update
from sqlalchemy.engine import Connection

from headrace.state.schema import runs, utcnow
from headrace.state.store_base import RunRecord, RunState


class ClaimsMixin:
    """The run-claim method of :class:`headrace.state.sql_store.SqlStateStore`."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def claim_run(self, seen: RunRecord, pid: int, hostname: str) -> bool:
        """Make the run RUNNING, driven by (``pid``, ``hostname``), only if it is still as ``seen``.

        Args:
            seen: the run as the caller read it (its state, pid and hostname are compared).
            pid: process id of the new driver.
            hostname: its host.

        Returns:
            True when this call claimed the run; False when another caller changed it first.
        """
        stmt = (
            update(runs)
            .where(
                runs.c.run_id == seen.run_id,
                runs.c.state == RunState(seen.state).value,
                runs.c.pid.is_not_distinct_from(seen.pid),
                runs.c.hostname.is_not_distinct_from(seen.hostname),
            )
            .values(
                state=RunState.RUNNING.value,
                pid=pid,
                hostname=hostname,
                heartbeat_at=utcnow(),
                ended_at=None,
                error=None,
            )
        )
        with self._tx(f"claim run {seen.run_id!r}", atomic=False) as conn:
            return bool(conn.execute(stmt).rowcount == 1)
