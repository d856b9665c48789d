"""Pool slots: how many tasks of a named pool run at once, across runs and processes.

A task of a pool holds a row of ``pool_slots`` while it runs. Taking a slot is one
transaction serialised per pool: on PostgreSQL by the row lock of the pool's row in
``pools`` (an upsert takes it), on SQLite by the database write lock
(``BEGIN IMMEDIATE``). Inside it the slots of dead drivers are given back before
counting, so a run killed with -9 does not keep its slots forever.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from headrace.errors import StateError
from headrace.state.liveness import driver_alive
from headrace.state.rows import run_record
from headrace.state.schema import pool_slots, pools, runs, utcnow
from headrace.state.store_base import RunRecord

#: A RUNNING run whose heartbeat is older than this, driven from another host, is dead.
STALE_AFTER = timedelta(seconds=60)


@dataclass
class PoolSlot:
    """One task instance holding a slot of ``pool``."""

    pool: str
    run_id: str
    task_id: str
    map_index: int
    acquired_at: datetime


class PoolSlotsMixin:
    """The pool-slot methods of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _where: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _read: Callable[[str], AbstractContextManager[Connection]]

    def acquire_pool_slot(
        self,
        pool: str,
        size: int,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        stale_after: timedelta = STALE_AFTER,
    ) -> bool:
        """Take a slot of ``pool`` for one task instance, if fewer than ``size`` are taken.

        Atomic across processes and hosts sharing the store. Slots held by runs that
        are no longer running, or whose driving process is dead, are given back first.

        Args:
            pool: the pool's name.
            size: how many slots the pool has (from the settings of the asking driver).
            run_id, task_id, map_index: the task instance.
            stale_after: a driver on another host whose heartbeat is older is dead.

        Returns:
            True when the instance holds a slot (also when it already held one).
        """
        if size < 1:
            raise StateError(f"pool {pool!r}: size must be >= 1, got {size}")
        what = f"take a slot of pool {pool!r} for task {task_id!r} of run {run_id!r}"
        now = utcnow()
        with self._tx(what) as conn:
            self._lock_pool(conn, pool, size, now)
            holders = conn.execute(
                select(
                    pool_slots.c.run_id.label("slot_run"),
                    pool_slots.c.task_id.label("slot_task"),
                    pool_slots.c.map_index.label("slot_index"),
                    runs,
                )
                .join(runs, runs.c.run_id == pool_slots.c.run_id)
                .where(pool_slots.c.pool == pool)
            ).all()
            if any(
                (h.slot_run, h.slot_task, h.slot_index) == (run_id, task_id, map_index)
                for h in holders
            ):
                return True
            if len(holders) >= size:
                dead = [h for h in holders if not driver_alive(_holder_run(h), now, stale_after)]
                if dead:
                    conn.execute(
                        delete(pool_slots).where(
                            tuple_(
                                pool_slots.c.run_id, pool_slots.c.task_id, pool_slots.c.map_index
                            ).in_([(h.slot_run, h.slot_task, h.slot_index) for h in dead])
                        )
                    )
                if len(holders) - len(dead) >= size:
                    return False
            conn.execute(
                insert(pool_slots),
                {
                    "run_id": run_id,
                    "task_id": task_id,
                    "map_index": map_index,
                    "pool": pool,
                    "acquired_at": now,
                },
            )
            return True

    def _lock_pool(self, conn: Connection, pool: str, size: int, now: datetime) -> None:
        """Create or update the pool's row; on PostgreSQL this holds its row lock until commit."""
        insert_fn: Any = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        stmt = insert_fn(pools).values(name=pool, size=size, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"], set_={"size": size, "updated_at": now}
            )
        )

    def release_pool_slot(self, run_id: str, task_id: str, map_index: int = -1) -> None:
        """Give back the slot a task instance holds (nothing happens if it holds none)."""
        with self._tx(
            f"give back the pool slot of task {task_id!r} of run {run_id!r}", atomic=False
        ) as conn:
            conn.execute(
                delete(pool_slots).where(
                    and_(
                        pool_slots.c.run_id == run_id,
                        pool_slots.c.task_id == task_id,
                        pool_slots.c.map_index == map_index,
                    )
                )
            )

    def release_pool_slots(self, run_id: str) -> int:
        """Give back every slot of a run (its driver stopped); returns how many."""
        with self._tx(f"give back the pool slots of run {run_id!r}", atomic=False) as conn:
            return int(
                conn.execute(delete(pool_slots).where(pool_slots.c.run_id == run_id)).rowcount or 0
            )

    def list_pool_slots(self, pool: str | None = None) -> list[PoolSlot]:
        """Slots held now (of one pool, or of all), oldest first."""
        query = select(pool_slots).order_by(pool_slots.c.acquired_at, pool_slots.c.run_id)
        if pool is not None:
            query = query.where(pool_slots.c.pool == pool)
        with self._read("list pool slots") as conn:
            return [
                PoolSlot(r.pool, r.run_id, r.task_id, r.map_index, r.acquired_at)
                for r in conn.execute(query)
            ]


def _holder_run(row: Any) -> RunRecord:
    data = {c.name: row._mapping[c] for c in runs.columns}
    return run_record(data)
