"""``headrace scheduler`` and ``headrace backfill``."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from headrace.cli.typer_app import app, check_executor, console, load_settings, make_console
from headrace.config import mask_url
from headrace.errors import ConfigError, ScheduleError, UsageError
from headrace.pipeline import Pipeline


def _load_paths(paths: list[Path]) -> list[Pipeline]:
    """Pipelines of the given files and folders (engine/loader.py ``discover``).

    Like Airflow's scheduler with a broken DAG file: a folder's file that fails to load
    (or reuses a pipeline name) is reported on stderr and the others are scheduled; a
    file named on the command line must load, and so must at least one pipeline.
    """
    from headrace.engine.loader import discover

    found, errors = discover(paths)
    named = {p.resolve() for p in paths if p.is_file()}
    for failed in errors:
        if failed.file.resolve() in named or not failed.file.exists():
            raise failed.error
    err = make_console(stderr=True)
    for failed in errors:
        err.print(
            Text("error: ", style="bold red")
            + Text(f"{failed.error} (not scheduled; fix the file and restart the scheduler)"),
            soft_wrap=True,
        )
    if not found:
        raise ScheduleError(f"no pipelines found in {', '.join(map(str, paths))}")
    return list(found.values())


def _parse_date(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD or an ISO datetime "
            "(2024-01-31T02:00, read in the pipeline's time zone unless it has an offset)"
        ) from None


@app.command("scheduler")
def scheduler_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Pipeline files or folders (default: current folder)."),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between scheduling passes.")] = 5.0,
    executor: Annotated[
        str, typer.Option(help="Executor inside each run: process, inprocess or distributed.")
    ] = "process",
    inline: Annotated[
        bool, typer.Option("--inline", help="Drive runs one at a time in this process.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Do one scheduling pass and exit.")] = False,
    threads: Annotated[
        bool,
        typer.Option(
            "--threads",
            help="Drive runs in threads of this process on warm process pools (cheaper per run; "
            "on stop, the scheduler finishes its runs first).",
        ),
    ] = False,
) -> None:
    """Trigger runs of scheduled pipelines as their intervals become due, until stopped."""
    from headrace.observe.alerts import alerter_from_settings
    from headrace.scheduler import InlineLauncher, Scheduler, SubprocessLauncher, ThreadLauncher
    from headrace.state import open_store

    check_executor(executor)
    settings = load_settings()
    pipelines = _load_paths(paths or [Path.cwd()])
    alerter = alerter_from_settings(settings.alerts)
    store = open_store(settings.state_url)
    launcher: Any
    if inline:
        launcher = InlineLauncher(store, settings, executor=executor, alerter=alerter)
    elif threads:
        launcher = ThreadLauncher(store, settings, executor=executor, alerter=alerter)
    else:
        launcher = SubprocessLauncher(settings, executor=executor)

    launched: dict[str, str] = {}  # run id -> pipeline, until the run ends
    stopped_by: list[str] = []

    def started(run: Any) -> None:
        launched[run.run_id] = run.pipeline
        console.print(
            f"[green]started[/] {escape(run.pipeline)} {run.logical_date.isoformat()} run [bold]{escape(run.run_id)}[/]",
            highlight=False,
        )

    from headrace.observe.statsd import StatsdClient

    scheduler = Scheduler(
        pipelines,
        store,
        launcher=launcher,
        alerter=alerter,
        on_start=started,
        statsd=StatsdClient.from_settings(settings.metrics),
        settings=settings,
    )
    scheduled = [p for p in scheduler.pipelines]
    console.print(
        f"scheduler: {len(scheduled)} scheduled pipeline(s) "
        f"({escape(', '.join(f'{p.name} [{p.schedule}]' for p in scheduled) or 'none')}); "
        f"state {escape(mask_url(settings.state_url))}; pid {os.getpid()}",
        highlight=False,
    )

    def report(tick: Any) -> None:
        for miss in tick.sla_misses:
            console.print(
                f"[red]SLA miss[/] {escape(f'{miss.pipeline}.{miss.task_id}')} run {escape(miss.run_id)} "
                f"(deadline {miss.deadline.isoformat()})",
                highlight=False,
            )
        for run in tick.failed_dead:
            console.print(
                f"[red]dead[/] run {escape(run.run_id)} of {escape(run.pipeline)}: marked failed",
                highlight=False,
            )
        if _config_errors(store, launched, stopped_by):
            scheduler.stop()

    def _stop(signum: int, frame: Any) -> None:
        scheduler.stop()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        scheduler.serve(poll, max_ticks=1 if once else None, on_tick=report)
    except KeyboardInterrupt:
        scheduler.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
        # Runs already launched carry on in their own processes; they are not killed.
        # (--threads: the runs live in this process, so they are finished first.)
        launcher.shutdown(wait=once or threads)
        if once:
            _config_errors(store, launched, stopped_by)
        store.close()
    if stopped_by:
        raise ConfigError(
            f"scheduler stopped at a configuration error, which every later run would hit: {stopped_by[0]}. "
            "Fix it and start the scheduler again."
        )
    console.print("scheduler stopped")


def _config_errors(store: Any, launched: dict[str, str], found: list[str]) -> bool:
    """Forget runs that ended; add the configuration error of a failed one to ``found``."""
    from headrace.scheduler.backfill import config_error_of
    from headrace.state.store_base import RunState

    for run_id, pipeline in list(launched.items()):
        state = store.get_run(run_id).state
        if state not in (RunState.SUCCESS, RunState.FAILED):
            continue
        del launched[run_id]
        error = config_error_of(store, run_id) if state == RunState.FAILED else None
        if error is not None:
            found.append(f"pipeline {pipeline}, {error}")
    return bool(found)


@app.command("backfill")
def backfill_command(
    target: Annotated[str, typer.Argument(help="PIPELINE_FILE[:NAME]")],
    start: Annotated[
        str, typer.Option("--start", help="First logical date (YYYY-MM-DD or ISO datetime).")
    ],
    end: Annotated[str, typer.Option("--end", help="Last logical date, inclusive.")],
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run intervals that already succeeded again.")
    ] = False,
    max_active: Annotated[
        int,
        typer.Option(
            "--max-active", help="Runs at once (default: the pipeline's max_active_runs)."
        ),
    ] = 0,
    executor: Annotated[
        str, typer.Option(help="Executor inside each run: process, inprocess or distributed.")
    ] = "process",
) -> None:
    """Run PIPELINE once per interval from --start to --end, oldest first; resumable."""
    from headrace.engine import RunInterrupted, load_pipelines, pick_pipeline
    from headrace.observe.alerts import alerter_from_settings
    from headrace.scheduler import Backfill, InlineLauncher, SubprocessLauncher, ThreadLauncher
    from headrace.state import open_store

    check_executor(executor)
    file, _, name = target.partition(":")
    if ":" in target and Path(target).exists():
        file, name = target, ""
    pipeline = pick_pipeline(load_pipelines(file), name or None, file)
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    if len(end.strip()) == 10:
        # A bare date means the whole day: its 02:00 run belongs to the backfill.
        last += timedelta(days=1) - timedelta(microseconds=1)
    if last < first:
        raise UsageError(f"--end {end} is before --start {start}")
    settings = load_settings()
    alerter = alerter_from_settings(settings.alerts)
    active = max_active or pipeline.max_active_runs
    with open_store(settings.state_url) as store:
        launcher: Any
        if active == 1:
            launcher = InlineLauncher(store, settings, executor=executor, alerter=alerter)
        elif executor != "inprocess":
            # Runs side by side in threads, each on a warm process pool reused run after run.
            launcher = ThreadLauncher(store, settings, executor=executor, alerter=alerter)
        else:
            # Child output goes to files so it does not tear the progress bar.
            launcher = SubprocessLauncher(
                settings,
                executor=executor,
                log_dir=str(settings.home / "logs" / "backfill"),
            )
        backfill = Backfill(pipeline, store, launcher=launcher, max_active=active, console=console)
        try:
            report = backfill.run(first, last, rerun=rerun)
        except (KeyboardInterrupt, RunInterrupted):
            console.print(
                "[yellow]backfill interrupted[/]: run the same command again to resume "
                "(succeeded intervals are skipped)",
                highlight=False,
            )
            raise typer.Exit(130) from None
        finally:
            launcher.shutdown(wait=True)
    if report.stopped is not None:
        raise ConfigError(
            "backfill stopped at a configuration error, which every interval would hit: "
            f"{report.stopped}. {report.not_started} interval(s) not started; fix it and run the same "
            "command again (succeeded intervals are skipped).",
            pipeline=pipeline.name,
        )
    console.print(
        f"backfill {escape(pipeline.name)}: {report.succeeded} succeeded, {report.skipped} skipped "
        f"(already succeeded), {len(report.failed)} failed",
        highlight=False,
    )
    if report.failed:
        console.print(
            f"[red]failed runs[/]: {', '.join(report.failed)} (headrace resume RUN_ID)",
            highlight=False,
        )
        raise typer.Exit(1)
