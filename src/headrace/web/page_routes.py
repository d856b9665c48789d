"""Server-rendered HTML pages: runs, one run (tasks, timeline, checks, SLA misses), logs, pipelines.

Templates are Jinja2 with autoescaping on, so task ids, errors and logs are shown
as text whatever they contain; texts that may hold URLs pass through ``mask_url``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from headrace.observe.times import format_duration, format_seconds, format_time
from headrace.state.store_base import LogRecord, RunState, TaskInstanceRecord, TaskState
from headrace.web.api_routes import (
    get_run_or_404,
    read_pipelines,
    select_logs,
    web_context,
)
from headrace.web.grid import Span, attempt_spans, collapse_mapped, label_of
from headrace.web.models import group_of, masked
from headrace.web.templating import render

router = APIRouter(include_in_schema=False)

#: Longest error line shown in a task table cell.
ERROR_WIDTH = 160
_UNFINISHED = {RunState.QUEUED.value, RunState.RUNNING.value}


def first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The last non-empty line of an error (where Python puts the message), cut to ``width``."""
    if not text:
        return ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass
class TaskRow:
    """One line of a run's task table, with its timeline bar (percent of the run's span).

    A mapped task is one row; its elements (naturally sorted) fold under it in ``elements``.
    ``spans`` are the earlier attempts and retry waits drawn before the last attempt's bar.
    """

    ti: TaskInstanceRecord
    label: str
    started: str
    duration: str
    error: str
    bar_left: float | None
    bar_width: float | None
    spans: list[Span] = field(default_factory=list)
    elements: list[TaskRow] = field(default_factory=list)
    counts: list[tuple[str, int]] = field(default_factory=list)


def _row(
    ti: TaskInstanceRecord,
    t0: datetime | None,
    span: float | None,
    now: datetime,
    logs: Sequence[LogRecord],
) -> TaskRow:
    left = width = None
    spans: list[Span] = []
    if ti.started_at is not None and t0 is not None and span is not None:
        end = ti.ended_at or now
        left = round(100 * (ti.started_at - t0).total_seconds() / span, 2)
        # A visible sliver for instant tasks; never past the right edge.
        width = round(
            min(max(100 * (end - ti.started_at).total_seconds() / span, 0.6), 100 - left), 2
        )
        spans = attempt_spans(ti, logs, t0, span, now, last=False)
    started = format_time(ti.started_at)
    if ti.started_at is not None and t0 is not None and ti.started_at.date() == t0.date():
        started = started[11:]  # the day is in the run's header: the time is enough
    return TaskRow(
        ti=ti,
        label=label_of(ti),
        started=started,
        duration=format_duration(ti.started_at, ti.ended_at, now),
        error=first_line(masked(ti.error)),
        bar_left=left,
        bar_width=width,
        spans=spans,
    )


def task_groups(
    tasks: list[TaskInstanceRecord], now: datetime, logs: Sequence[LogRecord] = ()
) -> tuple[list[tuple[str | None, list[TaskRow]]], float | None]:
    """Tasks in the order they started, the tasks of one group together where its first started.

    Returns:
        ``(group, rows)`` pairs (``group`` is None for tasks outside task groups) and the
        seconds from the first task start to the last task end (None if none started).
    """
    never = datetime.max.replace(tzinfo=UTC)
    starts = [t.started_at for t in tasks if t.started_at is not None]
    attempts = {(t.task_id, t.map_index): t.attempt for t in tasks}
    # Earlier attempts (known from their log lines) start the timeline when they came first.
    starts += [
        log.created_at
        for log in logs
        if log.created_at is not None
        and log.attempt < attempts.get((log.task_id, log.map_index), 0)
    ]
    t0 = min(starts) if starts else None
    ends = [t.ended_at or now for t in tasks if t.started_at is not None]
    span = max((max(ends) - t0).total_seconds(), 1e-6) if t0 is not None and ends else None
    by_task: dict[tuple[str, int], list[LogRecord]] = {}
    for log in logs:
        by_task.setdefault((log.task_id, log.map_index), []).append(log)
    folded = collapse_mapped(tasks)
    ordered = sorted(folded.values(), key=lambda e: (e.ti.started_at or never, e.ti.task_id))
    out: list[tuple[str | None, list[TaskRow]]] = []
    index: dict[str, int] = {}
    for entry in ordered:
        ti = entry.ti
        row = _row(ti, t0, span, now, by_task.get((ti.task_id, ti.map_index), []))
        row.elements = [
            _row(e, t0, span, now, by_task.get((e.task_id, e.map_index), []))
            for e in entry.elements
        ]
        row.counts = entry.counts
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


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML page for an HTTP error (unknown run, bad filter)."""
    return render(
        request,
        "error.html",
        status_code=status_code,
        title=f"Error {status_code}",
        message=message,
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
    logs = [log for log in ctx.store.get_logs(run.run_id) if log.attempt > 0]
    groups, span = task_groups(tasks, now, logs)
    return render(
        request,
        "run.html",
        title=f"{run.pipeline} · {run.run_id}",
        run=run,
        duration=format_duration(run.started_at, run.ended_at, now),
        groups=groups,
        span=format_seconds(span) if span is not None else None,
        counts=sorted(counts.items()),
        checks=check_rows,
        checks_failed=sum(1 for c in checks if c.status != "passed"),
        misses=misses,
        waiting={TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value},
        refresh=ctx.refresh_seconds if unfinished else 0,
        flash=request.query_params.get("flash"),
        finished=run.state.value not in _UNFINISHED,
        quarantined=sum(c.failed for c in checks if c.severity == "quarantine"),
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
    return render(
        request, "logs.html", title=f"Logs · {run.run_id}", run=run, task=task, blocks=blocks
    )


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request) -> HTMLResponse:
    """Pipelines with their run counts and last run; load errors of the pipelines folder."""
    ctx = web_context(request)
    listing = read_pipelines(ctx.store, ctx.pipelines_dir)
    return render(request, "pipelines.html", title="Pipelines", listing=listing)
