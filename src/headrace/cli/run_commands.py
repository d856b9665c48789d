"""``headrace run``, ``resume``, ``list`` and ``cleanup``: run pipelines with a live view of their tasks.

Settings are read once here (``Settings.from_env``) and passed down; the store is
``headrace.state.open_store(settings.state_url)``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.inspect_commands import STATE_STYLES, group_of, shorten
from headrace.cli.typer_app import (
    app,
    check_executor,
    debug_enabled,
    load_settings,
    make_console,
    print_json,
)
from headrace.errors import UsageError

if TYPE_CHECKING:  # imported where used, so `headrace --help` and `list` start fast
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from headrace.config import Settings
    from headrace.engine import Event, RunResult
    from headrace.engine.retention import PurgeReport
    from headrace.pipeline import Pipeline

_RUN_LOG = logging.getLogger("headrace.run")
#: Task states after which a task does not run again in this run (TaskState.finished).
_FINISHED = {"success", "failed", "upstream_failed", "skipped"}


def split_target(target: str) -> tuple[str, str | None]:
    """``FILE[:PIPELINE]`` -> (file, pipeline or None)."""
    file, sep, name = target.rpartition(":")
    if sep and file and "/" not in name and not Path(target).exists():
        return file, name or None
    return target, None


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; the values stay strings, typed later by the pipeline's defaults."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(
                f"--param {pair!r}: expected NAME=VALUE, e.g. --param full_refresh=true"
            )
        params[key.strip()] = value
    return params


def parse_date(text: str | None) -> datetime | None:
    """``--date`` as an ISO date or datetime (naive = the pipeline's time zone)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--date {text!r}: expected an ISO date such as 2024-01-31 or 2024-01-31T02:00"
        ) from None


def _console() -> Console:
    return make_console()


class LiveView:
    """Task states, attempts and progress of one run, kept current from engine events.

    On a terminal it is a Rich live table; elsewhere (CI logs, pipes) each finished
    task prints one line.
    """

    def __init__(self, pipeline: Pipeline, console: Console) -> None:
        self.pipeline, self.console = pipeline, console
        self.lock = threading.Lock()
        self.rows: dict[str, dict[str, Any]] = {tid: {"state": "queued"} for tid in pipeline.order}
        self.elements: dict[str, dict[int, str]] = {}
        self.started = time.monotonic()
        self.live: Live | None = None
        from headrace.observe.logs import json_enabled

        self.json_logs = json_enabled()

    def __enter__(self) -> LiveView:
        from rich.live import Live

        if self.console.is_terminal:
            self.live = Live(self, console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def on_event(self, event: Event) -> None:
        """Engine callback (see :class:`headrace.executors.executor_base.Event`)."""
        if event.task_id is None or event.task_id not in self.rows:
            return
        with self.lock:
            row = self.rows[event.task_id]
            if event.kind == "task" and event.map_index >= 0:
                self.elements.setdefault(event.task_id, {})[event.map_index] = (
                    event.state or "queued"
                )
            elif event.kind == "task":
                row.update(state=event.state, attempt=event.attempt, error=event.error)
                if event.total is not None:
                    row["elements"] = int(event.total)
                if event.state == "running":
                    row["since"] = time.monotonic()
                    row.pop("progress", None)
            elif event.kind == "progress":
                row["progress"] = (event.done, event.total, event.message)
            elif event.kind == "log":
                row["last_log"] = event.message
        if (
            event.kind == "task"
            and event.map_index < 0
            and event.state in _FINISHED | {"up_for_retry"}
        ):
            # Structured logs (HEADRACE_LOG_FORMAT=json) get every task outcome as one record;
            # otherwise nothing is logged (a task capturing logs must not get these lines).
            if self.json_logs:
                _RUN_LOG.info(
                    "task %s %s",
                    event.task_id,
                    event.state,
                    extra={
                        "run_id": event.run_id,
                        "pipeline": self.pipeline.name,
                        "task_id": event.task_id,
                        "state": event.state,
                        "attempt": event.attempt,
                        "error": event.error,
                    },
                )
            if self.live is None:
                self._print_line(event)

    def _print_line(self, event: Event) -> None:
        from rich.markup import escape

        style = STATE_STYLES.get(event.state or "", "")
        error = (
            f"  {escape(_one_line(event.error))}"
            if event.error and event.state != "success"
            else ""
        )
        attempt = f" (attempt {event.attempt})" if event.attempt else ""
        self.console.print(
            f"[{style}]{event.state:>15}[/]  {escape(event.task_id or '')}{attempt}{error}"
        )

    def __rich__(self) -> Table:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            rows = {tid: dict(row) for tid, row in self.rows.items()}
            elements = {tid: dict(states) for tid, states in self.elements.items()}
        table = Table(
            box=box.SIMPLE, title=f"{self.pipeline.name} · {time.monotonic() - self.started:.1f}s"
        )
        for column in ("task", "state", "try", "progress"):
            table.add_column(column)
        shown_group: str | None = None
        for tid in grouped_order(self.pipeline):
            group = self.pipeline.tasks[tid].group
            if group != shown_group:
                table.add_section()
                if group is not None:
                    table.add_row(Text(f"▸ {group}", style="bold"))
                shown_group = group
            self._add_row(table, tid, rows[tid], elements)
        return table

    @staticmethod
    def _add_row(
        table: Table, tid: str, row: dict[str, Any], elements: dict[str, dict[int, str]]
    ) -> None:
        from rich.text import Text

        state = row.get("state") or "queued"
        table.add_row(
            tid,
            Text(state, style=STATE_STYLES.get(state, "")),
            str(row.get("attempt") or ""),
            _progress(row, elements.get(tid, {}) if "elements" in row else None),
        )


def grouped_order(pipeline: Pipeline) -> list[str]:
    """The pipeline's task order with each task group's tasks together, where its first task is."""
    groups = pipeline.groups
    order: list[str] = []
    seen: set[str] = set()
    for tid in pipeline.order:
        group = pipeline.tasks[tid].group
        if group is None:
            order.append(tid)
        elif group not in seen:
            seen.add(group)
            order.extend(groups[group])
    return order


def _progress(row: dict[str, Any], elements: dict[int, str] | None) -> str:
    if elements is not None:
        done = sum(state in _FINISHED for state in elements.values())
        running = sum(state == "running" for state in elements.values())
        return f"{done}/{row['elements']} elements done, {running} running"
    if "progress" in row:
        done, total, message = row["progress"]
        text = f"{done:g}/{total:g}" if total else f"{done:g}"
        return f"{text} {message}" if message else text
    if row.get("state") == "running":
        last = row.get("last_log")
        return shorten(last, 60) if last else f"{time.monotonic() - row['since']:.0f}s"
    return ""


def _one_line(text: str | None) -> str:
    return shorten(text or "", 200)


def summary(result: RunResult, console: Console, order: list[str] | None = None) -> None:
    """The closing table: every task with state, tries, duration, rows and error.

    Args:
        result: the finished run.
        console: where to print.
        order: task ids in the order to show (the pipeline's); default: the store's.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from headrace.state.store_base import TaskState

    table = Table(box=box.SIMPLE_HEAD)
    for column in ("task", "state", "tries", "duration", "rows", "error"):
        table.add_column(column, overflow="fold")
    position = {tid: i for i, tid in enumerate(order or [])}
    shown_group: str | None = None
    for ti in sorted(result.tasks, key=lambda t: position.get(t.task_id, len(position))):
        if ti.map_index >= 0:
            continue
        group = group_of(ti.task_id)
        if group != shown_group:
            table.add_section()
            if group is not None:
                table.add_row(Text(f"▸ {group}", style="bold"))
            shown_group = group
        elements = [t for t in result.tasks if t.task_id == ti.task_id and t.map_index >= 0]
        name = ti.task_id + (f" ×{len(elements)}" if elements else "")
        took = (
            f"{(ti.ended_at - ti.started_at).total_seconds():.2f}s"
            if ti.started_at and ti.ended_at
            else ""
        )
        state = str(ti.state)
        table.add_row(
            name,
            Text(state, style=STATE_STYLES.get(state, "")),
            str(ti.attempt or ""),
            took,
            "" if ti.rows is None else f"{ti.rows:,}",
            Text(_one_line(ti.error)),
        )
    run = result.run
    console.print(table)
    state = str(run.state)
    note = "" if result.executed else " (already finished: nothing ran; --rerun runs it again)"
    console.print(
        f"run [bold]{run.run_id}[/] of [bold]{escape(run.pipeline)}[/] for {run.logical_date:%Y-%m-%d %H:%M} UTC: "
        f"[{STATE_STYLES.get(state, '')}]{state}[/]{note}"
    )
    if state == "failed":
        for ti in result.tasks:  # the driver, IO or parse error a failed task's error wraps
            cause = _cause_of(ti.error) if ti.state == TaskState.FAILED else None
            if cause:
                label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                console.print(Text(f"{label}: caused by: {cause}"))
        failed = [
            t.task_id for t in result.tasks if t.state == TaskState.FAILED and t.map_index < 0
        ]
        hint = (
            f"headrace logs {run.run_id} {failed[0]}" if failed else f"headrace show {run.run_id}"
        )
        console.print(
            f"see why: [bold]{hint}[/]; after a fix: [bold]headrace resume {run.run_id}[/]"
        )


def _cause_of(error: str | None) -> str | None:
    """The ``caused by:`` line the engine adds to a task's error (see :func:`headrace.errors.describe`)."""
    for line in (error or "").splitlines():
        if line.startswith("caused by: "):
            return line.removeprefix("caused by: ")
    return None


def _print_tracebacks(store: Any, result: RunResult) -> None:
    """Under ``--debug``: the traceback (causes included) each failed task logged, on stderr."""
    from rich.text import Text

    from headrace.state.store_base import TaskState

    err = make_console(stderr=True)
    for ti in result.tasks:
        if ti.state != TaskState.FAILED:
            continue
        logged = [
            r.text
            for r in store.get_logs(result.run.run_id, ti.task_id)
            if r.map_index == ti.map_index and "Traceback (most recent call last)" in r.text
        ]
        if logged:
            err.print(
                Text(f"--- {ti.task_id}: traceback of attempt {ti.attempt} ---\n{logged[-1]}"),
                soft_wrap=True,
            )


def _drive(
    pipeline: Pipeline, settings: Settings, executor: str, concurrency: int | None, action: Any
) -> None:
    from headrace.engine import Runner
    from headrace.observe.alerts import alerter_from_settings
    from headrace.state import open_store

    console = _console()
    with open_store(settings.state_url) as store:
        view = LiveView(pipeline, console)
        # Failure (and opt-in retry) alerts as the scheduler sends them, when configured.
        alerter = alerter_from_settings(settings.alerts)
        # Closing the runner stops its warm worker processes and sends the lineage events
        # and metrics still queued, before the summary says the run is done.
        with (
            Runner(
                store,
                executor=executor,
                settings=settings,
                concurrency=concurrency,
                on_event=view.on_event,
                alerter=alerter if alerter.channels else None,
            ) as runner,
            view,
        ):
            result: RunResult = action(runner)
        summary(result, console, grouped_order(pipeline))
        if debug_enabled() and str(result.run.state) != "success":
            _print_tracebacks(store, result)
    if str(result.run.state) != "success":
        raise typer.Exit(1)
    final_results(pipeline, result, console)


def final_results(
    pipeline: Pipeline, result: RunResult, console: Console, width: int = 400
) -> None:
    """Print the small JSON results of the pipeline's last tasks (what the run produced)."""
    from rich.markup import escape

    for ti in result.tasks:
        if pipeline.downstream.get(ti.task_id) or ti.map_index >= 0 or ti.result_kind != "json":
            continue
        value = ti.result_json
        if value is None:
            continue
        if isinstance(
            value, dict
        ):  # the figures; nested parts (a sync's lineage) stay in `show --json`
            text = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, dict | list))
        else:
            text = str(value)
        if len(text) <= width:
            console.print(f"[bold]{escape(ti.task_id)}[/] → {escape(text)}", highlight=False)


#: ``--executor`` and ``--concurrency`` of ``run`` and ``resume``.
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="process (default), inprocess, or distributed (tasks run on `headrace worker` processes over Redis).",
    ),
]
ConcurrencyOption = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Worker processes (default: cores).")
]


@app.command("run")
def run_command(
    target: Annotated[str, typer.Argument(help="Pipeline file, optionally FILE:PIPELINE.")],
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Logical date (ISO): the run's key, so the same date never runs twice; default: now (a new run over the latest complete interval).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Run parameter NAME=VALUE (repeatable)."),
    ] = None,
    executor: ExecutorOption = "process",
    concurrency: ConcurrencyOption = None,
    rerun: Annotated[
        bool,
        typer.Option(
            "--rerun",
            help="With --date: run that date again even if its run finished (all its tasks are cleared).",
        ),
    ] = False,
) -> None:
    """Run a pipeline now, showing its tasks live; exit code 1 if the run failed."""
    from headrace.engine.loader import load_pipelines, pick_pipeline

    check_executor(executor)
    if rerun and date is None:
        raise UsageError(
            "--rerun needs --date: without a date every run is new, there is nothing to run again"
        )
    settings = load_settings()
    file, name = split_target(target)
    pipeline = pick_pipeline(load_pipelines(file), name, file)
    params = parse_params(param or [])
    logical = parse_date(date)
    _drive(
        pipeline,
        settings,
        executor,
        concurrency,
        lambda runner: runner.run(pipeline, logical, params, rerun=rerun),
    )


@app.command("resume")
def resume_command(
    run_id: Annotated[str, typer.Argument(help="The run to finish.")],
    file: Annotated[
        str | None, typer.Option("--file", help="Pipeline file, if it moved since the run started.")
    ] = None,
    executor: ExecutorOption = "process",
    concurrency: ConcurrencyOption = None,
) -> None:
    """Finish a failed, interrupted or dead run: only tasks that did not succeed run again."""
    from headrace.engine import Runner
    from headrace.engine.loader import load_pipelines, pick_pipeline
    from headrace.state import open_store

    check_executor(executor)
    settings = load_settings()
    with open_store(settings.state_url) as store:
        run = store.get_run(run_id)
        if file is not None:
            pipeline = pick_pipeline(load_pipelines(file), run.pipeline, file)
        else:
            with Runner(store, executor=executor, settings=settings) as runner:
                pipeline = runner.pipeline_of(run)
    _drive(
        pipeline, settings, executor, concurrency, lambda runner: runner.resume(run_id, pipeline)
    )


@app.command("list")
def list_command(
    path: Annotated[Path, typer.Argument(help="A pipeline file or a folder of them.")] = Path("."),
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: {"pipelines": [...], "errors": [...]}.')
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Import every file (default: only files changed since the last list).",
        ),
    ] = False,
) -> None:
    """List the pipelines in a file or folder: name, schedule, tasks, tags.

    ``--json`` prints ``{"pipelines": [{"name", "file", "schedule", "tasks", "tags",
    "owner"}], "errors": [message]}``; exit code 4 when a file could not be loaded.
    """
    from headrace.cli.listing import describe_files
    from headrace.engine.loader import duplicate_name, pipeline_files

    # The rules of engine/loader.py ``discover`` (as scheduler, docs, web and mcp), over
    # cached descriptions: a folder's file that defines none is skipped, a name in two
    # files is an error naming both.
    problems: list[str] = []
    found: list[dict[str, Any]] = []
    origin: dict[str, Path] = {}
    cache = None if no_cache else load_settings().home / "cache" / "pipelines.json"
    for file, described in describe_files(pipeline_files(path), cache):
        if isinstance(described, Exception):
            if path.is_file() or "defines no pipeline" not in str(described):
                problems.append(str(described))
            continue
        for p in described:
            first = origin.setdefault(p["name"], file)
            if first != file:
                problems.append(str(duplicate_name(p["name"], str(first), str(file))))
                continue
            found.append({**p, "file": str(file)})
    if as_json:
        print_json({"pipelines": found, "errors": problems})
    else:
        _print_pipelines(found, problems, path)
    if problems:
        raise typer.Exit(4)


def _print_pipelines(found: list[dict[str, Any]], problems: list[str], path: Path) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if found:
        table = Table(box=box.SIMPLE_HEAD)
        for column in ("pipeline", "file", "schedule", "tasks", "tags", "owner"):
            table.add_column(column, overflow="fold")
        for p in found:
            table.add_row(
                Text(p["name"]),
                Text(p["file"]),
                Text(p["schedule"] or "manual"),
                str(p["tasks"]),
                Text(", ".join(p["tags"])),
                Text(p["owner"] or ""),
            )
        console.print(table)
    else:
        console.print(Text(f"no pipelines found in {path}"))
    err = make_console(stderr=True)
    for problem in problems:
        err.print(Text("error: ", style="bold red") + Text(problem), soft_wrap=True)


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if match is None:
        raise UsageError(
            f"--older-than {text!r}: expected a number and a unit (s, m, h, d, w), e.g. 7d or 12h"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@app.command("cleanup")
def cleanup_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age from the run's end: 7d, 12h, 30m, 2w.")
    ],
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only this pipeline's runs.")
    ] = None,
    include_failed: Annotated[
        bool,
        typer.Option(
            "--include-failed", help="Also failed runs (a resume then reruns their tasks)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be removed.")
    ] = False,
    state: Annotated[
        bool,
        typer.Option(
            "--state",
            help="Also delete the runs themselves from the state store (task states, logs, check "
            "results); each pipeline's newest scheduled or backfill run stays for the scheduler.",
        ),
    ] = False,
) -> None:
    """Remove staged files of finished runs older than --older-than; failed runs are kept unless asked."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from headrace.engine.retention import clean_staging, purge_runs
    from headrace.state import open_store
    from headrace.state.store_base import RunState

    age = parse_age(older_than)
    settings = load_settings()
    console = _console()
    with (
        open_store(settings.state_url) as store,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress,
    ):
        total = store.count_runs(pipeline, states=[RunState.SUCCESS, RunState.FAILED])
        bar = progress.add_task("looking at finished runs", total=total)
        options: dict[str, Any] = {
            "include_failed": include_failed,
            "dry_run": dry_run,
            "pipeline": pipeline,
        }
        if state:
            purged = purge_runs(
                store,
                settings.home,
                age,
                datetime.now(UTC),
                on_run=lambda run: progress.advance(bar),
                **options,
            )
        else:
            cleaned = clean_staging(
                store,
                settings.home,
                age,
                datetime.now(UTC),
                on_folder=lambda run: progress.advance(bar),
                **options,
            )
    if state:
        _print_purge(console, purged, older_than)
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} the staged files of {len(cleaned.removed)} run(s) that ended over {older_than} ago "
        f"({cleaned.freed_bytes / 1e6:,.1f} MB)"
    )
    for run, folder, size in cleaned.removed:
        console.print(
            f"  {run.run_id}  {escape(run.pipeline)}  {run.state}  {size / 1e6:,.1f} MB  {folder}"
        )
    if cleaned.kept_failed:
        console.print(
            f"kept the staged files of {len(cleaned.kept_failed)} failed run(s) that may still be resumed "
            f"({_some_ids(cleaned.kept_failed)}); "
            "--include-failed removes them too (a resume then reruns their successful tasks)"
        )


def _some_ids(runs: list[Any]) -> str:
    """The first five run ids, then "..." if there are more."""
    return ", ".join(r.run_id for r in runs[:5]) + (", ..." if len(runs) > 5 else "")


def _print_purge(console: Console, report: PurgeReport, older_than: str) -> None:
    """What ``cleanup --state`` deleted and kept."""
    from rich.markup import escape

    verb = "would delete" if report.dry_run else "deleted"
    console.print(
        f"{verb} {len(report.removed)} run(s) that ended over {older_than} ago, with their task states, "
        f"logs and checks and {report.staged_bytes / 1e6:,.1f} MB of staged files"
    )
    for run in report.removed:
        console.print(
            f"  {run.run_id}  {escape(run.pipeline)}  {run.state}  {run.logical_date:%Y-%m-%d %H:%M} UTC"
        )
    if report.kept_anchors:
        names = ", ".join(sorted({escape(r.pipeline) for r in report.kept_anchors}))
        console.print(
            f"kept {len(report.kept_anchors)} run(s), each the newest scheduled or backfill run of its "
            f"pipeline, which the scheduler continues from ({names})"
        )
    if report.kept_failed:
        console.print(
            f"kept {len(report.kept_failed)} failed run(s) that may still be resumed "
            f"({_some_ids(report.kept_failed)}); --include-failed deletes them too"
        )
