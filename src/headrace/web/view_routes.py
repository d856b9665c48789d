"""Pages of one pipeline (overview, grid, graph), run search, the audit log and a run's quarantine."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from headrace.errors import HeadraceError, did_you_mean
from headrace.observe.times import format_duration
from headrace.pipeline import Pipeline
from headrace.scheduler.loop import last_automated_run, timetable_of
from headrace.state.operations import RunQuery
from headrace.state.store_base import RunState
from headrace.web.action_routes import find_pipeline, shown_params
from headrace.web.api_routes import get_run_or_404, known_pipelines, parse_state, web_context
from headrace.web.grid import build_grid, collapse_mapped
from headrace.web.models import masked
from headrace.web.quarantine import read_quarantined, sync_loads
from headrace.web.task_graph_svg import NodeState, render_svg
from headrace.web.templating import render

router = APIRouter(include_in_schema=False)

#: Runs per page of the runs list.
PAGE_SIZE = 50
#: Columns of the grid.
GRID_RUNS = 25
#: Quarantined rows per page (of each load).
QUARANTINE_PAGE = 100


def _pipeline_or_none(request: Request, name: str) -> Pipeline | None:
    try:
        return find_pipeline(request, name)
    except (HTTPException, HeadraceError):
        return None


def _latest_states(request: Request, name: str) -> tuple[Any, dict[str, NodeState]]:
    store = web_context(request).store
    latest = store.list_runs(pipeline=name, limit=1)
    if not latest:
        return None, {}
    folded = collapse_mapped(store.get_task_instances(latest[0].run_id))
    return latest[0], {
        tid: NodeState(e.ti.state.value, len(e.elements) if e.elements else None)
        for tid, e in folded.items()
    }


def _next_run(request: Request, pipeline: Pipeline) -> tuple[datetime | None, bool]:
    """When the scheduler starts the pipeline's next run (its interval's end), and whether that is already due."""
    timetable = timetable_of(pipeline)
    if not timetable.periodic:
        return None, False
    last = last_automated_run(web_context(request).store, pipeline.name)
    now = datetime.now(UTC)
    try:
        interval = timetable.next_interval(
            last.data_interval_end if last else None,
            start_date=pipeline.start_date,
            end_date=pipeline.end_date,
            catchup=pipeline.catchup,
            now=now,
        )
    except HeadraceError:
        return None, False
    return (interval.end, interval.due(now)) if interval is not None else (None, False)


def _params(pipeline: Pipeline) -> list[dict[str, str]]:
    return [
        {
            "name": k,
            "type": type(v).__name__,
            "default": "" if v is None else str(shown_params({k: v})[k]),
        }
        for k, v in pipeline.params.items()
    ]


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(request: Request, name: str) -> HTMLResponse:
    """Doc, owner, tags, schedule, next run, SLAs, params with types, source; trigger/backfill/pause forms."""
    pipeline = find_pipeline(request, name)
    store = web_context(request).store
    slas = {tid: t.sla for tid, t in pipeline.tasks.items() if t.sla is not None}
    try:
        source = inspect.getsource(pipeline.fn)
        module_source = open(pipeline.file, encoding="utf-8").read()  # noqa: SIM115 - small file, read once
    except (OSError, TypeError):
        source, module_source = "", ""
    latest, _ = _latest_states(request, name)
    return render(
        request,
        "pipeline.html",
        title=f"Pipeline {name}",
        p=pipeline,
        params=_params(pipeline),
        slas=slas,
        next_run=_next_run(request, pipeline),
        paused=store.is_paused(name),
        source=source,
        module_source=module_source,
        runs=store.count_runs(pipeline=name),
        latest=latest,
        today=date.today().isoformat(),
        owners=sorted(
            {t.owner for t in pipeline.tasks.values() if t.owner} | ({pipeline.owner} - {None})
        ),
        flash=request.query_params.get("flash"),
    )


@router.get("/pipelines/{name}/graph", response_class=HTMLResponse)
def graph_page(request: Request, name: str) -> HTMLResponse:
    """The task graph as SVG, coloured by the latest run."""
    pipeline = find_pipeline(request, name)
    latest, states = _latest_states(request, name)
    svg = render_svg(pipeline, states)
    return render(request, "graph.html", title=f"Graph · {name}", name=name, svg=svg, latest=latest)


@router.get("/pipelines/{name}/grid", response_class=HTMLResponse)
def grid_page(
    request: Request, name: str, runs: Annotated[int, Query(ge=1, le=200)] = GRID_RUNS
) -> HTMLResponse:
    """Recent runs × tasks, state colours, hover details."""
    store = web_context(request).store
    recent = store.list_runs(pipeline=name, limit=runs)
    pipeline = _pipeline_or_none(request, name)
    if not recent and pipeline is None:
        raise HTTPException(404, f"no runs of pipeline {name!r} and no such pipeline file")
    grid = build_grid(
        recent,
        store.task_instances_of([r.run_id for r in recent]),
        pipeline.order if pipeline is not None else None,
    )
    return render(
        request,
        "grid.html",
        title=f"Grid · {name}",
        name=name,
        grid=grid,
        groups={t: pipeline.tasks[t].group for t in pipeline.order} if pipeline else {},
    )


def _day(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
    except ValueError:
        raise HTTPException(400, f"{field}={text!r}: expected a date such as 2024-01-31") from None


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request,
    pipeline: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> HTMLResponse:
    """Runs with search (pipeline, state, logical-date range, text in errors) and pagination."""
    ctx = web_context(request)
    end = _day(until, "until")
    query = RunQuery(
        pipeline=pipeline or None,
        states=parse_state(state) or (),
        since=_day(since, "since"),
        until=end + timedelta(days=1) if end else None,
        text=q or None,
    )
    runs, total = ctx.store.search_runs(query, limit=limit, offset=(page - 1) * limit)
    if not runs and pipeline and page == 1 and pipeline not in ctx.store.list_pipelines():
        raise HTTPException(
            404,
            f"No runs of pipeline {pipeline!r} in the state store."
            + did_you_mean(pipeline, known_pipelines(ctx.store)),
        )
    now = datetime.now(UTC)
    rows = [
        {
            "run": r,
            "duration": format_duration(r.started_at, r.ended_at, now),
            "error": _first_line(masked(r.error)),
        }
        for r in runs
    ]
    pages = max(1, -(-total // limit))
    keep = {
        k: v
        for k, v in {
            "pipeline": pipeline,
            "state": state,
            "since": since,
            "until": until,
            "q": q,
            "limit": limit if limit != PAGE_SIZE else None,
        }.items()
        if v
    }
    live = any(r.state.value in (RunState.QUEUED.value, RunState.RUNNING.value) for r in runs)
    return render(
        request,
        "runs.html",
        title="Runs",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        first=(page - 1) * limit + 1 if runs else 0,
        last=(page - 1) * limit + len(runs),
        keep=keep,
        pipeline=pipeline,
        state=state,
        since=since or "",
        until=until or "",
        q=q or "",
        states=[s.value for s in RunState],
        pipelines=ctx.store.list_pipelines(),
        refresh=ctx.refresh_seconds if live else 0,
    )


def _first_line(text: str | None, width: int = 160) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@router.get("/actions", response_class=HTMLResponse)
def actions_page(request: Request, page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    """The audit log: every action, who did it and when."""
    found, total = web_context(request).store.list_actions(100, (page - 1) * 100)
    return render(
        request,
        "actions.html",
        title="Actions",
        actions=found,
        total=total,
        page=page,
        pages=max(1, -(-total // 100)),
    )


@router.get("/runs/{run_id}/quarantine", response_class=HTMLResponse)
def quarantine_page(
    request: Request, run_id: str, page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = QUARANTINE_PAGE,
) -> HTMLResponse:  # fmt: skip
    """Rows of a run held back by quarantine checks, with the reasons.

    A sync's rows are read from its destination's ``<table>_quarantine`` table (those
    of its load, a page at a time); a task's quarantine checks show the samples kept
    with their results (the rows themselves stay in the run's staging folder).
    """
    ctx = web_context(request)
    store = ctx.store
    run = get_run_or_404(store, run_id)
    loads = []
    if ctx.settings is not None:
        offset = (page - 1) * limit
        for task_id, destination, load_id in sync_loads(store.get_task_instances(run.run_id)):
            loads.append(
                read_quarantined(
                    ctx.settings, task_id, destination, load_id, limit=limit, offset=offset
                )
            )
    synced = {load.task_id for load in loads}
    items = []
    for check in store.get_check_results(run.run_id):
        if check.severity != "quarantine" or not check.failed or check.task_id in synced:
            continue
        sample = check.details.get("sample") or []
        sample = sample if isinstance(sample, list) else []
        columns: list[str] = []
        for row in sample:
            for key in row if isinstance(row, dict) else []:
                if key not in columns:
                    columns.append(key)
        reason = str(check.details.get("reason") or check.expectation)
        items.append({"check": check, "reason": reason, "sample": sample, "columns": columns})
    pages = max([1, *(-(-load.total // limit) for load in loads)])
    return render(request, "quarantine.html", title=f"Quarantine · {run.run_id}", run=run, items=items,
                  loads=loads, page=page, pages=pages, limit=limit)  # fmt: skip
