"""Actions: trigger, resume, retry a task, mark a task, backfill, pause/unpause — API and forms.

Each action is one function taking the actor (already authenticated, see
:func:`headrace.web.security.require_actor`) and recording itself in the store's audit
log, whatever its outcome. The JSON routes (``/api/...``, in ``/openapi.json``) and
the HTML forms (``/actions/...``, answering with a redirect) call the same functions,
so they follow the same rules.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from headrace.engine.loader import discover, load_pipelines, pick_pipeline
from headrace.errors import HeadraceError, did_you_mean
from headrace.pipeline import Pipeline
from headrace.state.store_base import TaskState
from headrace.state.variable_store import MASK, looks_secret
from headrace.web.api_routes import get_run_or_404, web_context
from headrace.web.jobs import Jobs
from headrace.web.security import require_actor

api = APIRouter(prefix="/api", tags=["actions"])
forms = APIRouter(prefix="/actions", include_in_schema=False)


class TriggerIn(BaseModel):
    """A manual run: its params (strings are converted to the defaults' types) and logical date."""

    params: dict[str, Any] = Field(default_factory=dict)
    logical_date: datetime | None = None


class RetryIn(BaseModel):
    downstream: bool = True


class MarkIn(BaseModel):
    state: Literal["success", "failed"]


class BackfillIn(BaseModel):
    """Every interval from ``start`` to ``end`` (both days included)."""

    start: date
    end: date


class ActionOut(BaseModel):
    """What an action did."""

    action: str
    target: str
    actor: str
    message: str
    run_id: str | None = None


class ActionRecordOut(BaseModel):
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


class ActionListOut(BaseModel):
    actions: list[ActionRecordOut]
    total: int


# ---------------------------------------------------------------------- helpers


def jobs_of(request: Request) -> Jobs:
    return request.app.state.jobs


def find_pipeline(request: Request, name: str) -> Pipeline:
    """The pipeline ``name`` from the pipelines folder, else from the file its latest run recorded."""
    ctx = web_context(request)
    known: list[str] = []
    if ctx.pipelines_dir is not None:
        defined, _ = discover(Path(ctx.pipelines_dir))  # the errors are on the pipelines page
        if name in defined:
            return defined[name]
        known += list(defined)
    for run in ctx.store.list_runs(pipeline=name, limit=1):
        if run.source_file:
            return pick_pipeline(load_pipelines(run.source_file), name, run.source_file)
    raise HTTPException(
        404,
        f"pipeline {name!r} is not defined in the pipelines folder "
        f"({ctx.pipelines_dir or 'none given: headrace web --pipelines DIR'})."
        + did_you_mean(name, known),
    )


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params as they may be recorded and shown: values of secret-looking names masked."""
    return {k: MASK if looks_secret(k) else v for k, v in params.items()}


def _act(
    request: Request, actor: str, action: str, target: str, detail: dict[str, Any], work: Any
) -> ActionOut:
    """Run ``work()`` (returning (message, run_id)); record the outcome; errors become 404/409."""
    store = web_context(request).store
    try:
        message, run_id = work()
    except HTTPException as exc:
        store.record_action(actor, action, target, {**detail, "error": str(exc.detail)}, "refused")
        raise
    except HeadraceError as exc:
        store.record_action(actor, action, target, {**detail, "error": str(exc)}, "refused")
        raise HTTPException(409, str(exc)) from None  # the answer is the message; no cause to show
    store.record_action(actor, action, target, {**detail, **({"run_id": run_id} if run_id else {})})
    return ActionOut(action=action, target=target, actor=actor, message=message, run_id=run_id)


# ---------------------------------------------------------------------- the actions


def trigger(request: Request, actor: str, name: str, body: TriggerIn) -> ActionOut:
    def work() -> tuple[str, str]:
        pipeline = find_pipeline(request, name)
        params = pipeline.resolve_params(body.params)
        run_id = jobs_of(request).start(
            lambda runner: runner.run(pipeline, body.logical_date, params), f"trigger of {name!r}"
        )
        return f"run {run_id} of {name} started", run_id

    detail = {
        "params": shown_params(body.params),
        "logical_date": body.logical_date.isoformat() if body.logical_date else None,
    }
    return _act(request, actor, "trigger", name, detail, work)


def resume(request: Request, actor: str, run_id: str) -> ActionOut:
    run = get_run_or_404(web_context(request).store, run_id)

    def work() -> tuple[str, str]:
        started = jobs_of(request).start(
            lambda runner: runner.resume(run.run_id), f"resume of {run.run_id}"
        )
        return f"run {started} resumed", started

    return _act(request, actor, "resume", run.run_id, {}, work)


def retry(request: Request, actor: str, run_id: str, task_id: str, downstream: bool) -> ActionOut:
    run = get_run_or_404(web_context(request).store, run_id)

    def work() -> tuple[str, str]:
        started = jobs_of(request).start(
            lambda runner: runner.retry(run.run_id, task_id, downstream),
            f"retry of {task_id} in {run.run_id}",
        )
        return (
            f"task {task_id}{' and downstream' if downstream else ''} of run {started} running again",
            started,
        )

    return _act(
        request, actor, "retry", f"{run.run_id}/{task_id}", {"downstream": downstream}, work
    )


def mark(request: Request, actor: str, run_id: str, task_id: str, state: str) -> ActionOut:
    run = get_run_or_404(web_context(request).store, run_id)

    def work() -> tuple[str, str]:
        after = jobs_of(request).runner().mark(run.run_id, task_id, TaskState(state))
        return f"task {task_id} marked {state}; run is {after.state.value}", run.run_id

    return _act(request, actor, "mark", f"{run.run_id}/{task_id}", {"state": state}, work)


def backfill(request: Request, actor: str, name: str, body: BackfillIn) -> ActionOut:
    if body.end < body.start:
        raise HTTPException(400, f"backfill end {body.end} is before start {body.start}")
    if (body.end - body.start).days > 3660:
        raise HTTPException(400, "backfill of more than ten years: split it")

    def work() -> tuple[str, None]:
        pipeline = find_pipeline(request, name)
        first = datetime.combine(body.start, time.min)
        last = datetime.combine(body.end, time.min) + timedelta(days=1) - timedelta(microseconds=1)
        jobs_of(request).backfill(pipeline, first, last)
        return f"backfill of {name} from {body.start} to {body.end} started", None

    return _act(
        request, actor, "backfill", name, {"start": str(body.start), "end": str(body.end)}, work
    )


def pause(request: Request, actor: str, name: str, paused: bool) -> ActionOut:
    def work() -> tuple[str, None]:
        changed = web_context(request).store.set_paused(name, paused, actor)
        word = "paused" if paused else "unpaused"
        return f"schedule of {name} {word}" + ("" if changed else f" (it already was {word})"), None

    return _act(request, actor, "pause" if paused else "unpause", name, {}, work)


# ---------------------------------------------------------------------- JSON API


@api.post("/pipelines/{pipeline}/runs", response_model=ActionOut)
def api_trigger(request: Request, pipeline: str, body: TriggerIn) -> ActionOut:
    """Trigger a run of ``pipeline`` with params; answers once the run is created and started."""
    return trigger(request, require_actor(request, None), pipeline, body)


@api.post("/runs/{run_id}/resume", response_model=ActionOut)
def api_resume(request: Request, run_id: str) -> ActionOut:
    """Resume a failed run (tasks that did not succeed run again); 409 if someone else just did."""
    return resume(request, require_actor(request, None), run_id)


@api.post("/runs/{run_id}/tasks/{task_id}/retry", response_model=ActionOut)
def api_retry(
    request: Request, run_id: str, task_id: str, body: RetryIn | None = None
) -> ActionOut:
    """Run one task again, with its downstream tasks unless ``downstream`` is false."""
    return retry(
        request, require_actor(request, None), run_id, task_id, (body or RetryIn()).downstream
    )


@api.post("/runs/{run_id}/tasks/{task_id}/mark", response_model=ActionOut)
def api_mark(request: Request, run_id: str, task_id: str, body: MarkIn) -> ActionOut:
    """Mark a task of a finished run success or failed; the run's state follows."""
    return mark(request, require_actor(request, None), run_id, task_id, body.state)


@api.post("/pipelines/{pipeline}/backfill", response_model=ActionOut)
def api_backfill(request: Request, pipeline: str, body: BackfillIn) -> ActionOut:
    """Backfill ``pipeline`` over the days ``start`` to ``end`` (in the background, one run at a time)."""
    return backfill(request, require_actor(request, None), pipeline, body)


@api.post("/pipelines/{pipeline}/pause", response_model=ActionOut)
def api_pause(request: Request, pipeline: str) -> ActionOut:
    """Pause the schedule of ``pipeline``: the scheduler starts no new run of it."""
    return pause(request, require_actor(request, None), pipeline, True)


@api.post("/pipelines/{pipeline}/unpause", response_model=ActionOut)
def api_unpause(request: Request, pipeline: str) -> ActionOut:
    """Unpause the schedule of ``pipeline``."""
    return pause(request, require_actor(request, None), pipeline, False)


@api.get("/actions", response_model=ActionListOut)
def api_actions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ActionListOut:
    """The audit log: who did what, when, newest first."""
    found, total = web_context(request).store.list_actions(limit, offset)
    return ActionListOut(
        actions=[
            ActionRecordOut(
                at=a.at,
                actor=a.actor,
                action=a.action,
                target=a.target,
                detail=a.detail,
                outcome=a.outcome,
            )
            for a in found
        ],
        total=total,
    )


# ---------------------------------------------------------------------- HTML forms


def _back(to: str, out: ActionOut) -> Response:
    joiner = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{joiner}flash={quote(out.message)}", status_code=303)


@forms.post("/trigger")
async def form_trigger(request: Request) -> Response:
    form = await request.form()
    actor = require_actor(request, str(form.get("csrf_token") or ""))
    params = {k[6:]: str(v) for k, v in form.items() if k.startswith("param.") and str(v) != ""}
    when = str(form.get("logical_date") or "").strip()
    try:
        logical = datetime.fromisoformat(when) if when else None
    except ValueError:
        raise HTTPException(
            400, f"logical date {when!r}: expected e.g. 2024-01-31 or 2024-01-31T02:00"
        ) from None
    out = trigger(
        request,
        actor,
        str(form.get("pipeline") or ""),
        TriggerIn(params=params, logical_date=logical),
    )
    return _back(f"/runs/{quote(out.run_id or '')}", out)


@forms.post("/resume")
def form_resume(
    request: Request, run_id: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = ""
) -> Response:
    out = resume(request, require_actor(request, csrf_token), run_id)
    return _back(f"/runs/{quote(run_id)}", out)


@forms.post("/retry")
def form_retry(
    request: Request,
    run_id: Annotated[str, Form()],
    task_id: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    downstream: Annotated[str, Form()] = "1",
) -> Response:
    out = retry(request, require_actor(request, csrf_token), run_id, task_id, downstream == "1")
    return _back(f"/runs/{quote(run_id)}", out)


@forms.post("/mark")
def form_mark(
    request: Request,
    run_id: Annotated[str, Form()],
    task_id: Annotated[str, Form()],
    state: Annotated[Literal["success", "failed"], Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    out = mark(request, require_actor(request, csrf_token), run_id, task_id, state)
    return _back(f"/runs/{quote(run_id)}", out)


@forms.post("/backfill")
def form_backfill(
    request: Request,
    pipeline: Annotated[str, Form()],
    start: Annotated[date, Form()],
    end: Annotated[date, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    out = backfill(
        request, require_actor(request, csrf_token), pipeline, BackfillIn(start=start, end=end)
    )
    return _back(f"/pipelines/{quote(pipeline)}", out)


@forms.post("/pause")
def form_pause(
    request: Request,
    pipeline: Annotated[str, Form()],
    paused: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    out = pause(request, require_actor(request, csrf_token), pipeline, paused == "1")
    return _back(f"/pipelines/{quote(pipeline)}", out)
