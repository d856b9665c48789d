"""The read tools' answers, built from the state store with the web API's response models.

Every text that may hold a secret (errors, logs, check samples) passes through
:meth:`McpContext.mask`; every list is cut to the context's limits.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from headrace.engine.loader import discover
from headrace.engine.staging import read_quarantine, staging_dir
from headrace.errors import ConfigError, DefinitionError, HeadraceError, StateError, did_you_mean
from headrace.mcp.mcp_context import McpContext
from headrace.pipeline import Pipeline
from headrace.scheduler.loop import last_automated_run, timetable_of
from headrace.state.store_base import RunRecord, RunState
from headrace.web.models import CheckOut, RunOut, TaskInstanceOut

_TASK_KEY = re.compile(r"^(?P<task>.+?)\[(?P<index>-?\d+)\]$")


def defined_pipelines(ctx: McpContext) -> tuple[dict[str, Pipeline], list[dict[str, str]]]:
    """Pipelines of the configured file or folder by name, and the files that failed to load."""
    if ctx.pipelines is None:
        return {}, []
    found, failed = discover(ctx.pipelines)  # the rules of every command (engine/loader.py)
    errors: list[dict[str, str]] = []
    for file, exc in failed:
        fields = {name: ctx.mask(str(value)) for name, value in exc.fields().items()}
        errors.append(
            {"file": str(file), "error": ctx.mask(str(exc)), "kind": type(exc).__name__, **fields}
        )
    return found, errors


def find_pipeline(ctx: McpContext, name: str) -> Pipeline:
    """The defined pipeline called ``name`` (closest name suggested)."""
    pipelines, _ = defined_pipelines(ctx)
    if name not in pipelines:
        where = ctx.pipelines or "(no --pipelines given)"
        raise DefinitionError(
            f"no such pipeline in {where}." + did_you_mean(name, list(pipelines)), pipeline=name
        )
    return pipelines[name]


def next_run(ctx: McpContext, pipeline: Pipeline, now: datetime) -> datetime | None:
    """When the scheduler would next start ``pipeline`` (end of its next data interval)."""
    if not pipeline.schedule:
        return None
    last = last_automated_run(ctx.store, pipeline.name)
    interval = timetable_of(pipeline).next_interval(
        last.data_interval_end if last is not None else None,
        start_date=pipeline.start_date,
        end_date=pipeline.end_date,
        catchup=pipeline.catchup,
        now=now,
    )
    return None if interval is None else interval.end


def list_pipelines(ctx: McpContext) -> dict[str, Any]:
    """Pipelines of the pipelines folder, with schedule, owner, tags, next run and last run."""
    defined, errors = defined_pipelines(ctx)
    now = datetime.now(UTC)
    names = sorted(set(defined) | set(ctx.store.list_pipelines()))
    out = []
    for name in names:
        last = ctx.store.list_runs(pipeline=name, limit=1)
        entry: dict[str, Any] = {
            "name": name,
            "runs": ctx.store.count_runs(pipeline=name),
            "last_run": _run(ctx, last[0]) if last else None,
        }
        p = defined.get(name)
        if p is not None:
            nxt = next_run(ctx, p, now)
            entry.update(
                file=p.file,
                schedule=p.schedule_text or "manual",
                owner=p.owner,
                tags=p.tags,
                tasks=list(p.order),
                next_run=nxt.isoformat() if nxt else None,
                doc=(p.doc or "").strip().splitlines()[0] if p.doc else None,
            )
        out.append(entry)
    return {"pipelines": out, "errors": errors}


def _run(ctx: McpContext, run: RunRecord) -> dict[str, Any]:
    data = RunOut.of(run).model_dump(mode="json")
    data["error"] = ctx.mask(run.error) or None
    data["params"] = ctx.masked_json(run.params)
    return data


def parse_states(text: str | None) -> list[RunState] | None:
    """Run states of a comma-separated filter; unknown names raise with the closest one."""
    if not text:
        return None
    known = [s.value for s in RunState]
    states = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in known:
            raise ConfigError(
                f"unknown run state {part!r}; use {', '.join(known)}." + did_you_mean(name, known)
            )
        states.append(RunState(name))
    return states


def list_runs(
    ctx: McpContext, pipeline: str | None, state: str | None, since: datetime | None, limit: int
) -> dict[str, Any]:
    """Runs, newest logical date first, filtered by pipeline, states and logical date >= ``since``."""
    states = parse_states(state)
    runs = ctx.store.list_runs(pipeline=pipeline, states=states, limit=limit)
    if since is not None:
        cut = since if since.tzinfo else since.replace(tzinfo=UTC)
        # newest first: the runs at or after ``since`` are a prefix of the list
        runs = [r for r in runs if r.logical_date >= cut]
    if not runs and pipeline is not None and pipeline not in ctx.store.list_pipelines():
        raise StateError(
            "no runs in the state store." + did_you_mean(pipeline, ctx.store.list_pipelines()),
            pipeline=pipeline,
        )
    total = ctx.store.count_runs(pipeline=pipeline, states=states)
    return {"runs": [_run(ctx, r) for r in runs], "shown": len(runs), "total_without_since": total}


def resolve_run(ctx: McpContext, run_id: str) -> RunRecord:
    """The run named by its id or a unique prefix of it."""
    resolver = getattr(ctx.store, "resolve_run_id", None)
    return ctx.store.get_run(resolver(run_id) if resolver else run_id)


def run_detail(ctx: McpContext, run_id: str) -> dict[str, Any]:
    """A run with each task's state, attempts, duration and error, and a summary of its checks."""
    run = resolve_run(ctx, run_id)
    tasks = []
    for ti in ctx.store.get_task_instances(run.run_id):
        data = TaskInstanceOut.of(ti).model_dump(mode="json")
        data["error"] = ctx.mask(ti.error) or None
        tasks.append(data)
    checks = ctx.store.get_check_results(run.run_id)
    return {
        "run": _run(ctx, run),
        "tasks": tasks[: ctx.max_rows],
        "tasks_total": len(tasks),
        "checks": {
            "total": len(checks),
            "failed": [
                f"{c.task_id}: {c.expectation}"
                + (f" on {c.column}" if c.column else "")
                + f" ({c.severity})"
                for c in checks
                if c.status != "passed"
            ],
        },
    }


def task_logs(ctx: McpContext, run_id: str, task: str, tail: int, attempt: int | None) -> str:
    """The last ``tail`` lines of a task's captured logs (``name`` or ``name[3]``), masked."""
    run = resolve_run(ctx, run_id)
    task_id, map_index = task, None
    match = _TASK_KEY.match(task)
    if match:
        task_id, map_index = match["task"], int(match["index"])
    known = {ti.task_id for ti in ctx.store.get_task_instances(run.run_id)}
    if task_id not in known:
        raise StateError(
            f"no such task in the run; its tasks: {', '.join(sorted(known)) or 'none yet'}."
            + did_you_mean(task_id, known),
            run_id=run.run_id,
            task=task_id,
        )
    lines: list[str] = []
    for log in ctx.store.get_logs(run.run_id, task_id):
        if map_index is not None and log.map_index != map_index:
            continue
        if attempt is not None and log.attempt != attempt:
            continue
        prefix = f"[attempt {log.attempt}{'' if log.map_index < 0 else f' #{log.map_index}'}] "
        lines.extend(prefix + line for line in log.text.splitlines())
    if not lines:
        return f"no logs captured for task {task} of run {run.run_id}"
    shown = lines[-tail:]
    head = f"{len(shown)} of {len(lines)} lines of {task} in run {run.run_id}\n"
    return ctx.bounded(head + "\n".join(shown))


def run_checks(ctx: McpContext, run_id: str, task: str | None) -> dict[str, Any]:
    """Check results of a run (of one task if given), failing samples masked."""
    run = resolve_run(ctx, run_id)
    results = ctx.store.get_check_results(run.run_id, task)
    out = []
    for check in results:
        data = CheckOut.of(check).model_dump(mode="json")
        details = ctx.masked_json(data["details"])
        size = len(json.dumps(details, default=str))
        # the failing-row samples may be long: over 4 kB they are returned as cut text
        data["details"] = (
            details
            if size <= 4000
            else {"cut": ctx.bounded(json.dumps(details, default=str), 4000)}
        )
        out.append(data)
    return {"run_id": run.run_id, "checks": out[: ctx.max_rows], "total": len(out)}


def staged_quarantine(ctx: McpContext, run: RunRecord, limit: int) -> dict[str, Any]:
    """Rows the run's checks quarantined, from its staged files, per task."""
    from headrace.mcp.sqlguard import text_table

    staging = staging_dir(ctx.home, run.pipeline, run.run_id)
    tasks: dict[str, Any] = {}
    for ti in ctx.store.get_task_instances(run.run_id):
        if ti.map_index >= 0 or ti.task_id in tasks:
            continue
        table = read_quarantine(staging, ti.task_id)
        if table is None:
            continue
        rows = table.slice(0, limit).to_pylist()
        text, shown = text_table(
            table.column_names, [tuple(r.values()) for r in rows], max_bytes=ctx.max_bytes // 2
        )
        tasks[ti.task_id] = {"rows": table.num_rows, "shown": shown, "table": ctx.mask(text)}
    return {"run_id": run.run_id, "source": f"staged files under {staging}", "tasks": tasks}


def lineage(ctx: McpContext, table: str, connection: str | None) -> dict[str, Any]:
    """Upstream and downstream of a dataset, from the lineage every load records in the state
    store (the graph ``headrace lineage`` shows), and the loads into it from the destination's
    ``_hr_loads`` ledger.

    Args:
        table: a dataset's URI, name or last parts (``people``, ``main.people``); with
            ``connection``, a table of that connection.
        connection: a configured connection name: the dataset is that connection's table
            (default: any recorded dataset ``table`` names; the ledger read is the warehouse's).
    """
    from headrace.mcp import warehouse_tools
    from headrace.observe.datasets import table_dataset
    from headrace.observe.lineage_graph import LineageGraph

    list_lineage = getattr(ctx.store, "list_lineage", None)
    graph = LineageGraph.from_edges(list_lineage() if list_lineage is not None else [])
    ledger_conn = warehouse_tools.warehouse_connection(
        ctx.settings, connection or warehouse_tools.DEFAULT_WAREHOUSE
    )
    own = table_dataset(ledger_conn, table)
    found = graph.find(table) if connection is None else [d for d in graph.datasets if d == own]
    if len(found) > 1:
        raise HeadraceError(
            f"matches {len(found)} recorded datasets; name one by its URI or give "
            "its connection: " + ", ".join(d.uri for d in found),
            table=table,
        )
    answer: dict[str, Any] = {
        "table": table,
        "connection": connection,
        "dataset": None,
        "upstream": None,
        "downstream": None,
        "loads": [],
    }
    if found:
        (ds,) = found
        answer["dataset"] = {**ds.to_dict(), "uri": ds.uri, "last_rows": graph.last_rows.get(ds)}
        answer["upstream"] = graph.walk(ds, "up").to_dict()
        answer["downstream"] = graph.walk(ds, "down").to_dict()
    if found and found[0] != own:
        return answer  # another database's table: the warehouse's ledger does not describe it
    try:
        result = warehouse_tools.loads_of(ledger_conn, table, ctx.max_rows, ctx.query_timeout)
    except HeadraceError:
        if not found:
            raise  # neither recorded lineage nor a ledger to read: say why
        return answer  # the graph answered; this destination keeps no ledger
    answer["loads"] = [
        {k: _plain(v) for k, v in zip(result.columns, row, strict=True)} for row in result.rows
    ]
    return answer


def _plain(value: Any) -> Any:
    """A database value as JSON has it: decimals as numbers, the rest as text when not JSON."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
