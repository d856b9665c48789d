"""Rows to records, update statements, and the lookups that explain a miss.

Kept apart from :mod:`headrace.state.sql_store` so the store class reads as its contract:
what each call writes or returns, not how a typo becomes a suggestion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, Update, and_, bindparam, select, update
from sqlalchemy.engine import Connection

from headrace.errors import NotFoundError, StateError, did_you_mean, one_of
from headrace.state.ids import new_run_id
from headrace.state.schema import runs, task_instances, utcnow
from headrace.state.store_base import (
    CheckResultRecord,
    LogRecord,
    RunRecord,
    RunState,
    TaskInstanceRecord,
    TaskState,
)

#: How many recent run ids are searched for a "did you mean" suggestion.
SUGGEST_FROM = 2000


def queued_run_row(
    pipeline: str,
    logical_date: datetime,
    data_interval_start: datetime,
    data_interval_end: datetime,
    params: dict[str, Any] | None,
    trigger: str,
) -> dict[str, Any]:
    """The ``runs`` row of a new queued run, with a fresh run id (create_run, admit_run)."""
    return {
        "run_id": new_run_id(),
        "pipeline": pipeline,
        "logical_date": logical_date,
        "data_interval_start": data_interval_start,
        "data_interval_end": data_interval_end,
        "state": RunState.QUEUED.value,
        "params": dict(params or {}),
        "trigger": trigger,
        "created_at": utcnow(),
    }


def run_record(row: Any) -> RunRecord:
    """A :class:`RunRecord` from a ``runs`` row mapping."""
    data = dict(row)
    data["state"] = RunState(data["state"])
    data["params"] = data.get("params") or {}
    return RunRecord(**data)


def task_record(row: Any) -> TaskInstanceRecord:
    """A :class:`TaskInstanceRecord` from a ``task_instances`` row mapping."""
    data = dict(row)
    data["state"] = TaskState(data["state"])
    return TaskInstanceRecord(**data)


def log_record(r: Any) -> LogRecord:
    """A :class:`LogRecord` from a ``task_logs`` row."""
    return LogRecord(
        run_id=r.run_id,
        task_id=r.task_id,
        map_index=r.map_index,
        attempt=r.attempt,
        text=r.text,
        created_at=r.created_at,
    )


def check_record(r: Any) -> CheckResultRecord:
    """A :class:`CheckResultRecord` from a ``check_results`` row."""
    return CheckResultRecord(
        run_id=r.run_id,
        task_id=r.task_id,
        expectation=r.expectation,
        severity=r.severity,
        status=r.status,
        total=r.total,
        failed=r.failed,
        column=r.column,
        details=r.details or {},
        created_at=r.created_at,
    )


def state_value(kind: type[RunState] | type[TaskState], value: Any, where: str) -> str:
    """The stored string of a run or task state; a StateError with a suggestion if invalid."""
    try:
        return kind(value).value
    except ValueError:
        known = [s.value for s in kind]
        raise StateError(
            f"Invalid state {value!r} for {where}: {one_of(str(value), known)}"
        ) from None


def build_update(key: tuple[str, ...], table: Table, allowed: frozenset[str]) -> Update:
    """An UPDATE of the fields ``key`` of one run or task-instance row, bound by name.

    Values bind as ``v_<field>``, the row key as ``k_run_id`` (``k_task_id``,
    ``k_map_index``): SQLAlchemy reserves the bare column names for the SET clause.
    """
    for name in key:
        if name not in allowed:
            raise StateError(
                f"Cannot set field {name!r} of {table.name}: settable fields are "
                f"{', '.join(sorted(allowed))}." + did_you_mean(name, allowed)
            )
    where = table.c.run_id == bindparam("k_run_id")
    if table is task_instances:
        where = and_(
            where,
            table.c.task_id == bindparam("k_task_id"),
            table.c.map_index == bindparam("k_map_index"),
        )
    return update(table).where(where).values({name: bindparam(f"v_{name}") for name in key})


def run_exists(conn: Connection, run_id: str) -> bool:
    """Whether a run with this id exists."""
    return conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is not None


def unknown_run(conn: Connection, run_id: str, where: str) -> StateError:
    """The error for an unknown run id, suggesting the closest recent one."""
    known = conn.execute(
        select(runs.c.run_id).order_by(runs.c.run_id.desc()).limit(SUGGEST_FROM)
    ).scalars()
    error = NotFoundError(
        f"Unknown run id {run_id!r} in the state store {where}; "
        f"list runs with `headrace runs`." + did_you_mean(run_id, list(known))
    )
    error.run_id = run_id  # a field too; the message names it already
    return error


def unknown_task(
    conn: Connection, run_id: str, task_id: str, map_index: int, where: str
) -> StateError:
    """The error for a missing task instance (or its run), suggesting the closest task."""
    if not run_exists(conn, run_id):
        return unknown_run(conn, run_id, where)
    known = conn.execute(
        select(task_instances.c.task_id).where(task_instances.c.run_id == run_id).distinct()
    ).scalars()
    index = "" if map_index == -1 else f" map index {map_index}"
    error = NotFoundError(
        f"Run {run_id!r} has no task instance {task_id!r}{index}; "
        f"see its tasks with `headrace show {run_id}`." + did_you_mean(task_id, list(known))
    )
    error.run_id, error.task = run_id, task_id  # fields too; the message names them already
    return error


def raise_first_missing(conn: Connection, batch: list[dict[str, Any]], where: str) -> None:
    """Raise :func:`unknown_task` for the first update of ``batch`` whose row is missing."""
    for params in batch:
        key = (params["k_run_id"], params["k_task_id"], params["k_map_index"])
        exists = conn.execute(
            select(task_instances.c.state).where(
                and_(
                    task_instances.c.run_id == key[0],
                    task_instances.c.task_id == key[1],
                    task_instances.c.map_index == key[2],
                )
            )
        ).first()
        if exists is None:
            raise unknown_task(conn, *key, where)
