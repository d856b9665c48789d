"""The JSON API: runs, task instances, logs, checks, pipelines and health.

Every route reads the :class:`~headrace.state.store_base.StateStore` the app was built
with; unknown names answer 404 with the store's message (which names the id and
suggests the closest one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

import headrace
from headrace.config import Settings
from headrace.errors import HeadraceError, StateError, did_you_mean, one_of
from headrace.state.operations import RunQuery
from headrace.state.store_base import RunRecord, RunState, StateStore
from headrace.web.models import (
    CheckOut,
    HealthOut,
    LogOut,
    PipelineFileErrorOut,
    PipelineListOut,
    PipelineOut,
    RunDetailOut,
    RunListOut,
    RunOut,
    SlaMissOut,
    TaskInstanceOut,
)

_TASK_KEY = re.compile(r"^(?P<task>.+?)\[(?P<index>-?\d+)\]$")
#: Most runs one request may ask for.
MAX_LIMIT = 1000

router = APIRouter(prefix="/api", tags=["api"])


@dataclass(frozen=True)
class WebContext:
    """What the routes read, set on ``app.state.web`` by :func:`headrace.web.application.create_app`.

    Args:
        store: the run-state store.
        location: the store's URL with its password masked.
        pipelines_dir: folder of pipeline files to list, or None.
        refresh_seconds: how often pages showing unfinished runs reload (0: never).
        settings: the app's settings (the warehouse connections quarantined rows are read from).
    """

    store: StateStore
    location: str
    pipelines_dir: Path | None = None
    refresh_seconds: int = 5
    settings: Settings | None = None


def web_context(request: Request) -> WebContext:
    return request.app.state.web


def parse_state(value: str | None) -> list[RunState] | None:
    """The run states of a ``state=`` filter (comma-separated); unknown names are a 400."""
    if not value:
        return None
    known = [s.value for s in RunState]
    states = []
    for part in value.split(","):
        name = part.strip().lower()
        if name not in known:
            raise HTTPException(
                400,
                f"Unknown run state {part!r} in state=: {one_of(name, known)}",
            )
        states.append(RunState(name))
    return states


def known_pipelines(store: StateStore) -> list[str]:
    """Names of the pipelines that have runs in the store."""
    lister = getattr(store, "list_pipelines", None)
    if lister is not None:
        return list(lister())
    return sorted({run.pipeline for run in store.list_runs(limit=None)})


def get_run_or_404(store: StateStore, run_id: str) -> RunRecord:
    """The run, or a 404 carrying the store's message (closest id suggested)."""
    try:
        return store.get_run(run_id)
    except StateError as exc:
        raise HTTPException(404, str(exc)) from None  # an unknown run: the message says which


def select_runs(
    store: StateStore,
    pipeline: str | None,
    state: str | None,
    limit: int,
    offset: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
) -> tuple[list[RunRecord], int]:
    """One page of the runs matching the filters (newest first) and how many match in all.

    Args:
        store: the state store.
        pipeline, state: the pipeline; states, comma-separated.
        limit, offset: the page.
        since, until: logical dates in ``[since, until)`` (naive ones are UTC).
        text: a substring of the run's or its tasks' errors.

    An unknown pipeline is a 404 suggesting the closest known one.
    """
    since, until = (
        d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d for d in (since, until)
    )
    query = RunQuery(
        pipeline=pipeline,
        states=parse_state(state) or (),
        since=since,
        until=until,
        text=text or None,
    )
    runs, total = store.search_runs(query, limit=limit, offset=offset)
    if not runs and pipeline is not None and offset == 0:
        known = known_pipelines(store)
        if pipeline not in known:
            raise HTTPException(
                404,
                f"No runs of pipeline {pipeline!r} in the state store."
                + did_you_mean(pipeline, known),
            )
    return runs, total


def run_detail(store: StateStore, run_id: str) -> RunDetailOut:
    run = get_run_or_404(store, run_id)
    tasks = store.get_task_instances(run.run_id)
    misses = store.list_sla_misses(run_ids=[run.run_id])
    return RunDetailOut(
        run=RunOut.of(run),
        tasks=[TaskInstanceOut.of(ti) for ti in tasks],
        sla_misses=[SlaMissOut.of(m) for m in misses],
    )


def select_logs(store: StateStore, run_id: str, task: str | None) -> list[LogOut]:
    """Logs of a run, of one task (``name`` or ``name[3]`` for a mapped element) if given."""
    run = get_run_or_404(store, run_id)
    task_id, map_index = task, None
    match = _TASK_KEY.match(task or "")
    if match:
        task_id, map_index = match["task"], int(match["index"])
    if task_id is not None:
        known = {ti.task_id for ti in store.get_task_instances(run.run_id)}
        if task_id not in known:
            raise HTTPException(
                404,
                f"Run {run.run_id!r} has no task {task_id!r}; its tasks: "
                f"{', '.join(sorted(known)) or 'none yet'}." + did_you_mean(task_id, known),
            )
    logs = store.get_logs(run.run_id, task_id)
    return [LogOut.of(log) for log in logs if map_index is None or log.map_index == map_index]


def read_pipelines(store: StateStore, folder: Path | None) -> PipelineListOut:
    """Pipelines with runs in the store, merged with those defined under ``folder``.

    ``folder`` is searched as every command does (engine/loader.py ``discover``). A file
    that fails to load is reported in ``errors`` (file:line and message), not raised:
    one broken file must not hide the others. Files are imported once per process.
    """
    from headrace.engine.loader import discover

    found: dict[str, PipelineOut] = {}
    for name in known_pipelines(store):
        last = store.list_runs(pipeline=name, limit=1)
        found[name] = PipelineOut(
            name=name,
            runs=store.count_runs(pipeline=name),
            last_run=RunOut.of(last[0]) if last else None,
        )
    errors: list[PipelineFileErrorOut] = []
    if folder is not None:
        defined, failed = discover(folder)
        for file, exc in failed:  # import errors arrive as DefinitionError naming file:line
            errors.append(
                PipelineFileErrorOut(
                    file=str(file),
                    error=str(exc),
                    kind=type(exc).__name__,
                    location=exc.path,
                    pipeline=exc.pipeline,
                    task=exc.task,
                )
            )
        for name, pipeline in defined.items():
            entry = found.get(name) or PipelineOut(name=name, runs=0, last_run=None)
            entry.file = pipeline.file
            entry.schedule = pipeline.schedule_text
            entry.tasks = list(pipeline.order)
            entry.doc = pipeline.doc
            entry.description = pipeline.description
            found[name] = entry
    return PipelineListOut(pipelines=[found[n] for n in sorted(found)], errors=errors)


@router.get("/runs", response_model=RunListOut)
def api_runs(
    request: Request,
    pipeline: Annotated[str | None, Query(description="Only this pipeline's runs.")] = None,
    state: Annotated[str | None, Query(description="Only these states, comma-separated.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, description="Runs skipped before this page.")] = 0,
    since: Annotated[datetime | None, Query(description="Logical date on or after (ISO).")] = None,
    until: Annotated[datetime | None, Query(description="Logical date before (ISO).")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the run's or its tasks' errors.")
    ] = None,
) -> RunListOut:
    """Runs, newest logical date first, one page of them; ``total`` counts all that match."""
    runs, total = select_runs(
        web_context(request).store, pipeline, state, limit, offset, since, until, q
    )
    return RunListOut(runs=[RunOut.of(r) for r in runs], total=total)


@router.get("/runs/{run_id}", response_model=RunDetailOut)
def api_run(request: Request, run_id: str) -> RunDetailOut:
    """One run with its task instances and SLA misses."""
    return run_detail(web_context(request).store, run_id)


@router.get("/runs/{run_id}/logs", response_model=list[LogOut])
def api_logs(
    request: Request,
    run_id: str,
    task: Annotated[str | None, Query(description="Only this task (name, or name[3]).")] = None,
) -> list[LogOut]:
    """Captured logs of a run in the order they were written."""
    return select_logs(web_context(request).store, run_id, task)


@router.get("/runs/{run_id}/checks", response_model=list[CheckOut])
def api_checks(request: Request, run_id: str) -> list[CheckOut]:
    """Data-quality results of a run."""
    store = web_context(request).store
    run = get_run_or_404(store, run_id)
    return [CheckOut.of(c) for c in store.get_check_results(run.run_id)]


@router.get("/pipelines", response_model=PipelineListOut)
def api_pipelines(request: Request) -> PipelineListOut:
    """Pipelines seen in the store, plus those of the configured pipelines folder."""
    ctx = web_context(request)
    return read_pipelines(ctx.store, ctx.pipelines_dir)


@router.get("/health", response_model=HealthOut)
def api_health(request: Request) -> HealthOut:
    """``ok`` and the number of runs when the store answers; HTTP 503 naming the store when not."""
    ctx = web_context(request)
    try:
        runs = ctx.store.count_runs()
    except HeadraceError as exc:
        raise HTTPException(503, f"state store {ctx.location} is not readable: {exc}") from exc
    return HealthOut(status="ok", store=ctx.location, runs=runs, version=headrace.__version__)
