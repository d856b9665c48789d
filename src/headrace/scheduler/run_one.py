"""Child process that drives one run created by the scheduler or a backfill.

Usage: ``python -m headrace.scheduler.run_one FILE PIPELINE RUN_ID [--executor process]``.
Settings come from the parent (``HEADRACE_SETTINGS_JSON``, written by
:class:`~headrace.scheduler.launch.SubprocessLauncher`), else are read here: this
process is an edge.
Exit code 0 when the run succeeded, 1 when it failed, 2 when it could not start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime

from headrace.config import Settings
from headrace.engine import load_pipelines, pick_pipeline
from headrace.errors import HeadraceError
from headrace.observe.alerts import Alert, Alerter, AlertKind, alerter_from_settings
from headrace.scheduler.launch import SETTINGS_ENV, drive_run
from headrace.state import open_store
from headrace.state.store_base import RunRecord, RunState, StateStore


def main(argv: list[str] | None = None) -> int:
    """Drive the run; print one line about how it ended."""
    parser = argparse.ArgumentParser(prog="headrace.scheduler.run_one")
    parser.add_argument("file")
    parser.add_argument("pipeline")
    parser.add_argument("run_id")
    parser.add_argument("--executor", default="process")
    args = parser.parse_args(argv)
    if os.environ.get("HEADRACE_LOG_FORMAT", "text").strip().lower() == "json":  # read at this edge
        from headrace.observe.logs import configure_logging

        configure_logging("json")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handed = os.environ.get(SETTINGS_ENV)
    try:
        settings = Settings.from_json(handed) if handed else Settings.load()
    except HeadraceError as exc:
        print(f"headrace worker: run {args.run_id} of {args.pipeline!r}: {exc}", file=sys.stderr)
        return 2
    alerter = alerter_from_settings(settings.alerts)
    try:
        with open_store(settings.state_url) as store:
            run = store.get_run(args.run_id)
            try:
                pipeline = pick_pipeline(load_pipelines(args.file), args.pipeline, args.file)
                state = drive_run(
                    pipeline, run, store, settings, executor=args.executor, alerter=alerter
                )
            except HeadraceError as exc:
                _fail_unstarted(store, run, exc, alerter)
                raise
    except HeadraceError as exc:
        print(f"headrace worker: run {args.run_id} of {args.pipeline!r}: {exc}", file=sys.stderr)
        return 2
    print(f"headrace worker: run {args.run_id} of {args.pipeline!r} ended {state.value}")
    return 0 if state == RunState.SUCCESS else 1


def _fail_unstarted(store: StateStore, run: RunRecord, exc: Exception, alerter: Alerter) -> None:
    """A run that could not even start (broken file, engine refused) is failed, not left queued.

    Left QUEUED it would hold a max_active_runs slot and be relaunched forever.
    """
    current = store.get_run(run.run_id)
    if current.state != RunState.QUEUED:
        return  # it started, or someone else drives it: nothing to correct
    message = f"could not start: {type(exc).__name__}: {exc}"
    store.update_run(run.run_id, state=RunState.FAILED, ended_at=datetime.now(UTC), error=message)
    alerter.notify(
        Alert(
            AlertKind.FAILURE,
            run.pipeline,
            run.run_id,
            logical_date=run.logical_date,
            error=message,
            detail=f"Fix the pipeline, then: headrace resume {run.run_id}",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
