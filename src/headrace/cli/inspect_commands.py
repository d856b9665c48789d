"""``headrace runs``, ``show`` and ``logs``: read the run-state store.

The store is found through :class:`headrace.config.Settings` (``HEADRACE_STATE_URL``
or ``.headrace/state.db``), read once per command. Times are shown in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.typer_app import app, load_settings, make_console, print_json
from headrace.errors import NotFoundError, did_you_mean, one_of
from headrace.observe.times import format_duration, format_logical, format_time

if TYPE_CHECKING:  # imported where used, so the command starts fast
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from headrace.state import LogRecord, RunRecord, SqlStateStore, TaskInstanceRecord
    from headrace.state.resource_pools import PoolSlot

#: Rich style per state, shared by runs and task instances.
STATE_STYLES = {
    "queued": "dim",
    "running": "cyan",
    "success": "green",
    "failed": "bold red",
    "up_for_retry": "yellow",
    "up_for_reschedule": "blue",
    "upstream_failed": "red",
    "skipped": "magenta",
}
#: Longest one-line error ``show`` prints (full text with --verbose).
ERROR_WIDTH = 200
_TASK_KEY = re.compile(r"^(?P<task>.+?)\[(?P<index>-?\d+)\]$")


@contextmanager
def _store() -> Iterator[SqlStateStore | None]:
    """The configured store, or None when the embedded SQLite file does not exist yet.

    Looking at runs must not create an empty state database as a side effect.
    """
    from headrace.state import open_store

    settings = load_settings()
    url = settings.state_url
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :].split("?", 1)[0])
        if not path.exists():
            yield None
            return
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def _console() -> Console:
    """A console built per command, so COLUMNS and colour settings are read at call time."""
    return make_console()


def _state_text(state: str) -> Text:
    from rich.text import Text

    return Text(state, style=STATE_STYLES.get(state, ""))


def one_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The last non-empty line of an error (where Python puts the message), cut to ``width``."""
    if not text:
        return ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return shorten(lines[-1] if lines else "", width)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters with "…".

    Only for display: stores keep error texts whole (``headrace show RUN --verbose``).
    """
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:") + "…"


def group_of(task_id: str) -> str | None:
    """The task group of a task id (``extract.users`` -> ``extract``), or None outside groups.

    Task groups prefix task ids with their path, so the id alone tells (the store keeps
    no graph); a task id the user wrote with a dot is shown as if grouped.
    """
    group, dot, _ = task_id.rpartition(".")
    return group if dot else None


def _task_label(ti: TaskInstanceRecord | LogRecord | PoolSlot) -> str:
    return ti.task_id if ti.map_index == -1 else f"{ti.task_id}[{ti.map_index}]"


def _parse_states(values: list[str] | None) -> list[Any] | None:
    from headrace.state import RunState

    if not values:
        return None
    known = [s.value for s in RunState]
    states = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name not in known:
                raise typer.BadParameter(
                    f"Unknown run state {part!r} for --state: {one_of(name, known)}"
                )
            states.append(RunState(name))
    return states


JSON_HELP = "Print one JSON document instead of a table (schema in the command's help)."


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run as JSON: the :class:`RunRecord` fields (dates ISO 8601 UTC, state a string)."""
    return asdict(run)


def task_json(ti: TaskInstanceRecord) -> dict[str, Any]:
    """A task instance as JSON: the :class:`TaskInstanceRecord` fields."""
    return asdict(ti)


@app.command("runs")
def runs_command(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only this pipeline's runs.")
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Only runs in this state (repeat or comma-separate)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List runs, newest logical date first.

    ``--json``: ``{"runs": [run]}``, each run with run_id, pipeline, logical_date,
    data_interval_start, data_interval_end, state, trigger, params, created_at,
    started_at, ended_at, error, ... (the RunRecord fields). Exit code 3 for an
    unknown --pipeline.
    """
    states = _parse_states(state)
    with _store() as store:
        found = store.list_runs(pipeline=pipeline, states=states, limit=limit) if store else []
        if not found and store is not None and pipeline is not None:
            known = store.list_pipelines()
            if pipeline not in known:
                raise NotFoundError(
                    f"no runs in the state store {store.location}." + did_you_mean(pipeline, known),
                    pipeline=pipeline,
                )
    if as_json:
        print_json({"runs": [run_json(r) for r in found]})
        return
    _print_runs(found, bool(pipeline or states))


def _print_runs(found: list[RunRecord], filtered: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not found:
        console.print("No runs match." if filtered else "No runs yet.")
        return
    table = Table(
        title=f"Runs ({len(found)}, times in UTC)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Run id", no_wrap=True, min_width=18)
    table.add_column("Pipeline", min_width=8, overflow="fold")
    table.add_column("Logical date", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    for run in found:
        table.add_row(
            run.run_id,
            Text(run.pipeline),
            format_logical(run.logical_date),
            _state_text(run.state.value),
            format_time(run.started_at),
            format_duration(run.started_at, run.ended_at),
        )
    console.print(table)


def _no_runs(run_id: str) -> NotFoundError:
    return NotFoundError(f"Unknown run id {run_id!r}: no runs yet (the state store is empty).")


@app.command("show")
def show_command(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of one).")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show full error texts.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one run: its header, its tasks (state, attempts, durations, rows, errors) and checks.

    ``--json``: ``{"run": run, "tasks": [task], "checks": [check]}`` with the
    RunRecord, TaskInstanceRecord and CheckResultRecord fields. Exit code 3 for an
    unknown run id.
    """
    with _store() as store:
        if store is None:
            raise _no_runs(run_id)
        run = store.get_run(store.resolve_run_id(run_id))
        tasks = store.get_task_instances(run.run_id)
        checks = store.get_check_results(run.run_id)
    if as_json:
        print_json(
            {
                "run": run_json(run),
                "tasks": [task_json(t) for t in tasks],
                "checks": [asdict(c) for c in checks],
            }
        )
        return
    _print_show(run, tasks, checks, verbose)


def _print_show(
    run: RunRecord, tasks: list[TaskInstanceRecord], checks: list[Any], verbose: bool
) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console()
    console.print(_run_header(run))
    if tasks:
        console.print(_task_table(tasks, verbose))
    else:
        console.print("No task instances yet.")
    if checks:
        table = Table(title="Checks", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("Task", "Expectation", "Column", "Severity", "Status", "Failed / total"):
            table.add_column(name)
        for c in checks:
            table.add_row(
                Text(c.task_id),
                Text(c.expectation),
                Text(c.column or "-"),
                c.severity,
                Text(c.status, style="green" if c.status == "passed" else "bold red"),
                f"{c.failed:,} / {c.total:,}",
            )
        console.print(table)
    failed = [t for t in tasks if t.error]
    if failed and verbose:
        for ti in failed:
            console.rule(Text(f"{_task_label(ti)}: error (attempt {ti.attempt})"), style="red")
            console.print(Text(ti.error or ""))
    elif failed:
        console.print(Text("Errors", style="bold"))
        for ti in failed:
            label = _task_label(ti)
            # One line per task, cut to the console so a traceback never floods the view.
            width = max(console.width - len(label) - 4, 20)
            line = Text(f"  {label}: ", style="bold")
            line.append(one_line(ti.error, width), style="red")
            console.print(line, no_wrap=True, overflow="ellipsis")
        console.print(Text(f"Full errors: headrace show {run.run_id} --verbose", style="dim"))


def _run_header(run: RunRecord) -> Table:
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("Run", Text(run.run_id)),
        ("Pipeline", Text(run.pipeline)),
        ("Logical date", f"{format_logical(run.logical_date)} (UTC)"),
        (
            "Data interval",
            f"{format_time(run.data_interval_start)} → {format_time(run.data_interval_end)}",
        ),
        ("State", _state_text(run.state.value)),
        ("Trigger", Text(run.trigger)),
        ("Started", format_time(run.started_at)),
        ("Ended", format_time(run.ended_at)),
        ("Duration", format_duration(run.started_at, run.ended_at)),
    ]
    if run.params:
        rows.append(("Params", Text(", ".join(f"{k}={v!r}" for k, v in run.params.items()))))
    if run.hostname or run.pid:
        where = [run.hostname or "", f"pid {run.pid}" if run.pid else ""]
        rows.append(("Process", Text(" ".join(part for part in where if part))))
    if run.error:
        rows.append(("Error", Text(run.error, style="red")))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _task_table(tasks: list[TaskInstanceRecord], verbose: bool) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from headrace.state import TaskState

    table = Table(
        title=f"Tasks ({len(tasks)})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("Task", min_width=8, overflow="fold")
    table.add_column("State", no_wrap=True)
    table.add_column("Attempts", justify="right")
    table.add_column("Started", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Rows", justify="right")
    waits = (TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE)
    retrying = any(t.state in waits and t.next_try_at for t in tasks)
    if retrying:
        table.add_column("Next try", no_wrap=True)
    # Engine order would be nicer, but the store does not know the graph: start time
    # first (what ran), then name, puts the run's story top to bottom. Tasks of one task
    # group stay together under a header row, groups in the order they started.
    never = datetime.max.replace(tzinfo=UTC)
    by_start = sorted(tasks, key=lambda t: (t.started_at or never, t.task_id, t.map_index))
    members: dict[str, list[TaskInstanceRecord]] = {}
    for ti in by_start:
        group = group_of(ti.task_id)
        if group is not None:
            members.setdefault(group, []).append(ti)
    ordered: list[TaskInstanceRecord] = []
    for ti in by_start:  # a group's tasks all at the place where its first task started
        group = group_of(ti.task_id)
        if group is None:
            ordered.append(ti)
        elif group in members:
            ordered.extend(members.pop(group))
    shown_group: str | None = None
    for ti in ordered:
        group = group_of(ti.task_id)
        if group is not None and group != shown_group:
            table.add_section()
            table.add_row(Text(f"▸ {group}", style="bold"))
        elif group is None and shown_group is not None:
            table.add_section()
        shown_group = group
        cells: list[Any] = [
            Text(_task_label(ti)),
            _state_text(ti.state.value),
            str(ti.attempt),
            format_time(ti.started_at),
            format_duration(ti.started_at, ti.ended_at),
            f"{ti.rows:,}" if ti.rows is not None else "-",
        ]
        if retrying:
            waiting = ti.state in waits and ti.next_try_at is not None
            cells.append(format_time(ti.next_try_at) if waiting else "")
        table.add_row(*cells)
    return table


@app.command("logs")
def logs_command(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of one).")],
    task: Annotated[
        str | None, typer.Argument(help="Only this task (name, or name[3] for a mapped one).")
    ] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", "-a", min=1, help="Only this attempt.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Print the logs captured for a run, per task and attempt, in the order they were written.

    ``--json``: ``{"run_id": id, "logs": [{"task_id", "map_index", "attempt", "text",
    "created_at"}]}``. Exit code 3 for an unknown run id or task.
    """
    task_id, map_index = _parse_task(task)
    with _store() as store:
        if store is None:
            raise _no_runs(run_id)
        resolved = store.resolve_run_id(run_id)
        if task_id is not None:
            known = {ti.task_id for ti in store.get_task_instances(resolved)}
            if task_id not in known:
                raise NotFoundError(
                    f"the run has no such task; its tasks: "
                    f"{', '.join(sorted(known)) or 'none yet'}." + did_you_mean(task_id, known),
                    run_id=resolved,
                    task=task_id,
                )
        logs = store.get_logs(resolved, task_id)
    logs = [
        log
        for log in logs
        if (map_index is None or log.map_index == map_index)
        and (attempt is None or log.attempt == attempt)
    ]
    if as_json:
        print_json({"run_id": resolved, "logs": [asdict(log) for log in logs]})
        return
    _print_logs(logs, resolved, bool(task or attempt))


def _print_logs(logs: list[LogRecord], run_id: str, filtered: bool) -> None:
    from rich.text import Text

    console = _console()
    if not logs:
        console.print("No logs match." if filtered else f"No logs for run {run_id}.")
        return
    current: tuple[str, int, int] | None = None
    for log in logs:
        key = (log.task_id, log.map_index, log.attempt)
        if key != current:
            title = f"{_task_label(log)} · attempt {log.attempt}"
            if console.is_terminal:
                console.rule(Text(title), align="left", style="cyan")
            else:  # a pipe or file: a plain header line, not a 10,000-column rule
                console.print(Text(f"{title} ──", style="cyan"))
            current = key
        console.print(Text(log.text.rstrip("\n")), soft_wrap=True)


def _parse_task(task: str | None) -> tuple[str | None, int | None]:
    if task is None:
        return None, None
    match = _TASK_KEY.match(task)
    if match:
        return match["task"], int(match["index"])
    return task, None


@app.command("pools")
def pools_command(
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the configured pools: size, slots taken now and the tasks holding them.

    ``--json``: ``{"pools": [{"name", "size", "taken", "held_by": [{"run_id",
    "task_id", "map_index"}]}]}`` (size null when not configured here).
    """
    settings = load_settings()
    with _store() as store:
        slots = store.list_pool_slots() if store is not None else []
    names = sorted(set(settings.pools) | {s.pool for s in slots})
    pools = []
    for name in names:
        held = [s for s in slots if s.pool == name]
        pools.append(
            {
                "name": name,
                "size": settings.pools.get(name),
                "taken": len(held),
                "held_by": [
                    {"run_id": s.run_id, "task_id": s.task_id, "map_index": s.map_index}
                    for s in held
                ],
            }
        )
    if as_json:
        print_json({"pools": pools})
        return
    _print_pools(pools)


def _print_pools(pools: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not pools:
        console.print(
            Text("No pools: size one with HEADRACE_POOL_<NAME>=N or [pools] in headrace.toml.")
        )
        return
    table = Table(title="Pools", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Pool", "Size", "Taken", "Held by"):
        table.add_column(column, overflow="fold")
    for pool in pools:
        held = ", ".join(
            f"{h['run_id']} {h['task_id']}"
            + ("" if h["map_index"] == -1 else f"[{h['map_index']}]")
            for h in pool["held_by"]
        )
        table.add_row(
            Text(pool["name"]),
            str(pool["size"]) if pool["size"] is not None else "not configured here",
            str(pool["taken"]),
            Text(held),
        )
    console.print(table)
