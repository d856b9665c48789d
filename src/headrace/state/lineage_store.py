"""Lineage and task metrics in the state store: what each load read and wrote, and the
values tasks published with ``ctx.metric``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from headrace.state.schema import lineage, task_metrics, utcnow

__all__ = ["LineageEdge", "LineageMixin", "TaskMetric"]


@dataclass(frozen=True)
class LineageEdge:
    """One dataset a task of a run read (``input``) or wrote (``output``)."""

    run_id: str
    pipeline: str
    task_id: str
    direction: str
    namespace: str
    name: str
    rows: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class TaskMetric:
    """One value a task published with ``ctx.metric``."""

    run_id: str
    pipeline: str
    task_id: str
    name: str
    value: float
    tags: dict[str, str]
    recorded_at: datetime


class LineageMixin:
    """The lineage and task-metric methods of :class:`headrace.state.sql_store.SqlStateStore`."""

    _tx: Callable[..., AbstractContextManager[Connection]]
    _read: Callable[[str], AbstractContextManager[Connection]]

    def record_lineage(
        self,
        run_id: str,
        pipeline: str,
        task_id: str,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Mapping[str, Any]],
    ) -> None:
        """Store the datasets (``{namespace, name, rows?}``) a task read and wrote."""
        now = utcnow()
        rows = [
            {
                "run_id": run_id,
                "pipeline": pipeline,
                "task_id": task_id,
                "direction": direction,
                "namespace": d["namespace"],
                "name": d["name"],
                "rows": d.get("rows"),
                "recorded_at": now,
            }
            for direction, found in (("input", inputs), ("output", outputs))
            for d in found
        ]
        if rows:
            with self._tx(f"record lineage of {pipeline}.{task_id}", atomic=False) as conn:
                conn.execute(insert(lineage), rows)

    def list_lineage(self, pipeline: str | None = None) -> list[LineageEdge]:
        """Every recorded dataset of every task (or of one pipeline), oldest first."""
        query = select(lineage).order_by(lineage.c.id)
        if pipeline is not None:
            query = query.where(lineage.c.pipeline == pipeline)
        with self._read("read lineage") as conn:
            return [
                LineageEdge(**{k: v for k, v in row._mapping.items() if k != "id"})
                for row in conn.execute(query)
            ]

    def record_task_metrics(
        self, run_id: str, pipeline: str, task_id: str, metrics: Sequence[Mapping[str, Any]]
    ) -> None:
        """Store ``ctx.metric`` values (``{name, value, tags}``) of one attempt."""
        now = utcnow()
        rows = [
            {
                "run_id": run_id,
                "pipeline": pipeline,
                "task_id": task_id,
                "name": m["name"],
                "value": float(m["value"]),
                "tags": dict(m.get("tags") or {}),
                "recorded_at": now,
            }
            for m in metrics
        ]
        if rows:
            with self._tx(f"record metrics of {pipeline}.{task_id}", atomic=False) as conn:
                conn.execute(insert(task_metrics), rows)

    def latest_task_metrics(self) -> list[TaskMetric]:
        """The latest value of each (pipeline, task, name, tags)."""
        query = select(task_metrics).order_by(task_metrics.c.id)
        latest: dict[tuple[Any, ...], TaskMetric] = {}
        with self._read("read task metrics") as conn:
            for row in conn.execute(query):
                m = TaskMetric(**{k: v for k, v in row._mapping.items() if k != "id"})
                latest[(m.pipeline, m.task_id, m.name, tuple(sorted(m.tags.items())))] = m
        return list(latest.values())
