"""Server-rendered HTML pages: runs, one run (tasks, timeline, checks, SLA misses), logs, pipelines.

Templates are Jinja2 with autoescaping on, so task ids, errors and logs are shown
as text whatever they contain; texts that may hold URLs pass through ``mask_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

import headrace
from headrace.state.base import RunState, TaskInstanceRecord, TaskState
from headrace.web.api import (
    MAX_LIMIT,
    get_run_or_404,
    read_pipelines,
    select_logs,
    select_runs,
    web_context,
)
from headrace.web.models import group_of, masked

_env = Environment(
    loader=PackageLoader("headrace.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)
router = APIRouter(include_in_schema=False)

#: Longest error line shown in a task table cell.
ERROR_WIDTH = 160
_UNFINISHED = {RunState.QUEUED.value, RunState.RUNNING.value}


def fmt_time(value: datetime | None) -> str:
    """``2024-01-31 02:00:00`` in UTC, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def fmt_logical(value: datetime) -> str:
    """A logical date: the day alone at midnight UTC, else the full time."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d") if utc.time() == datetime.min.time() else fmt_time(utc)


def fmt_duration(started: datetime | None, ended: datetime | None, now: datetime | None = None) -> str:
    """``0.42s``, ``12.3s``, ``3m05s`` or ``1h02m``; ``…`` appended while running; ``-`` if never started."""
    if started is None:
        return "-"
    end = ended or now or datetime.now(UTC)
    return fmt_seconds((end - started).total_seconds()) + ("…" if ended is None else "")


def fmt_seconds(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``3m05s`` or ``1h02m``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        text = f"{seconds:.2f}s"
    elif seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return text


def first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The last non-empty line of an error (where Python puts the message), cut to ``width``."""
    if not text:
        return ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


_env.filters.update(time=fmt_time, logical=fmt_logical, masked=masked)


@dataclass
class TaskRow:
    """One line of a run's task table, with its timeline bar (percent of the run's span)."""

    ti: TaskInstanceRecord
    label: str
    started: str
    duration: str
    error: str
    bar_left: float | None
    bar_width: float | None


def task_groups(
    tasks: list[TaskInstanceRecord], now: datetime
) -> tuple[list[tuple[str | None, list[TaskRow]]], float | None]:
    """Tasks in the order they started, the tasks of one group together where its first started.

    Returns:
        ``(group, rows)`` pairs (``group`` is None for tasks outside task groups) and the
        seconds from the first task start to the last task end (None if none started).
    """
    never = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(tasks, key=lambda t: (t.started_at or never, t.task_id, t.map_index))
    starts = [t.started_at for t in tasks if t.started_at is not None]
    t0 = min(starts) if starts else None
    ends = [t.ended_at or now for t in tasks if t.started_at is not None]
    span = max((max(ends) - t0).total_seconds(), 1e-6) if t0 is not None and ends else None
    out: list[tuple[str | None, list[TaskRow]]] = []
    index: dict[str, int] = {}
    for ti in ordered:
        left = width = None
        if ti.started_at is not None and t0 is not None and span is not None:
            end = ti.ended_at or now
            left = round(100 * (ti.started_at - t0).total_seconds() / span, 2)
            # A visible sliver for instant tasks; never past the right edge.
            width = round(min(max(100 * (end - ti.started_at).total_seconds() / span, 0.6), 100 - left), 2)
        started = fmt_time(ti.started_at)
        if ti.started_at is not None and t0 is not None and ti.started_at.date() == t0.date():
            started = started[11:]  # the day is in the run's header: the time is enough
        row = TaskRow(
            ti=ti,
            label=ti.task_id if ti.map_index == -1 else f"{ti.task_id}[{ti.map_index}]",
            started=started,
            duration=fmt_duration(ti.started_at, ti.ended_at, now) if ti.started_at else "-",
            error=first_line(masked(ti.error)),
            bar_left=left,
            bar_width=width,
        )
        group = group_of(ti.task_id)
        if group is not None and group in index:
            out[index[group]][1].append(row)
            continue
        if group is not None:
            index[group] = len(out)
        out.append((group, [row]))
    # Consecutive ungrouped tasks share one section.
    merged: list[tuple[str | None, list[TaskRow]]] = []
    for group, rows in out:
        if group is None and merged and merged[-1][0] is None:
            merged[-1][1].extend(rows)
        else:
            merged.append((group, rows))
    return merged, span


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    ctx = web_context(request)
    base = {"store": ctx.location, "version": headrace.__version__, "refresh": 0}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML page for an HTTP error (unknown run, bad filter)."""
    return _render(request, "error.html", status_code=status_code, title=f"Error {status_code}", message=message)


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request,
    pipeline: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> HTMLResponse:
    """Runs, newest logical date first, with state colours and durations."""
    ctx = web_context(request)
    runs, total = select_runs(ctx.store, pipeline, state, limit)
    now = datetime.now(UTC)
    rows = [
        {
            "run": run,
            "duration": fmt_duration(run.started_at, run.ended_at, now) if run.started_at else "-",
            "error": first_line(masked(run.error)),
        }
        for run in runs
    ]
    live = any(run.state.value in _UNFINISHED for run in runs)
    return _render(
        request,
        "runs.html",
        title="Runs",
        rows=rows,
        total=total,
        pipeline=pipeline,
        state=state,
        states=[s.value for s in RunState],
        refresh=ctx.refresh_seconds if live else 0,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    """One run: header, tasks by group with a timeline, checks and SLA misses."""
    ctx = web_context(request)
    run = get_run_or_404(ctx.store, run_id)
    tasks = ctx.store.get_task_instances(run.run_id)
    checks = ctx.store.get_check_results(run.run_id)
    misses = ctx.store.list_sla_misses(run_ids=[run.run_id])
    now = datetime.now(UTC)
    check_rows = []
    for check in checks:
        sample = check.details.get("sample") or []
        columns: list[str] = []
        for row in sample if isinstance(sample, list) else []:
            for key in row if isinstance(row, dict) else []:
                if key not in columns:
                    columns.append(key)
        check_rows.append({"check": check, "sample": sample if columns else [], "columns": columns})
    counts: dict[str, int] = {}
    for ti in tasks:
        counts[ti.state.value] = counts.get(ti.state.value, 0) + 1
    unfinished = run.state.value in _UNFINISHED or any(not ti.state.finished for ti in tasks)
    groups, span = task_groups(tasks, now)
    return _render(
        request,
        "run.html",
        title=f"{run.pipeline} · {run.run_id}",
        run=run,
        duration=fmt_duration(run.started_at, run.ended_at, now),
        groups=groups,
        span=fmt_seconds(span) if span is not None else None,
        counts=sorted(counts.items()),
        checks=check_rows,
        checks_failed=sum(1 for c in checks if c.status != "passed"),
        misses=misses,
        waiting={TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value},
        refresh=ctx.refresh_seconds if unfinished else 0,
    )


@router.get("/runs/{run_id}/logs", response_class=HTMLResponse)
def logs_page(
    request: Request, run_id: str, task: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    """Captured logs of a run (of one task if ``task`` is given), one block per task and attempt."""
    ctx = web_context(request)
    run = get_run_or_404(ctx.store, run_id)
    blocks: list[dict[str, Any]] = []
    for log in select_logs(ctx.store, run.run_id, task):
        label = log.task_id if log.map_index == -1 else f"{log.task_id}[{log.map_index}]"
        key = (label, log.attempt)
        if not blocks or blocks[-1]["key"] != key:
            blocks.append({"key": key, "label": label, "attempt": log.attempt, "lines": []})
        blocks[-1]["lines"].append(log.text.rstrip("\n"))
    return _render(
        request, "logs.html", title=f"Logs · {run.run_id}", run=run, task=task, blocks=blocks
    )


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request) -> HTMLResponse:
    """Pipelines with their run counts and last run; load errors of the pipelines folder."""
    ctx = web_context(request)
    listing = read_pipelines(ctx.store, ctx.pipelines_dir)
    return _render(request, "pipelines.html", title="Pipelines", listing=listing)
