"""Retention: remove the staged files of finished runs older than a given age, and
(``purge_runs``) the runs themselves from the state store.

A succeeded run's staged results are only read by ``RunResult.result_of`` and by
people looking at them; once old enough they can go. A failed run may still be
resumed, and resuming reads the staged results of its successful tasks: its files
are kept unless the caller asks for them too (a later resume then reruns those
tasks, which the engine does when a staged file is gone). Running runs are never
touched.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from headrace.engine.staging import staging_dir
from headrace.state.history import last_automated_run
from headrace.state.store_base import RunRecord, RunState, StateStore


@dataclass
class CleanupReport:
    """What :func:`clean_staging` removed (or would remove) and what it kept.

    Attributes:
        removed: (run, staging folder, bytes) of each folder removed.
        kept_failed: failed runs past the age whose files were kept (they may be resumed).
        dry_run: nothing was deleted.
    """

    removed: list[tuple[RunRecord, Path, int]] = field(default_factory=list)
    kept_failed: list[RunRecord] = field(default_factory=list)
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, _, size in self.removed)


def clean_staging(
    store: StateStore,
    home: str | Path,
    older_than: timedelta,
    now: datetime,
    *,
    include_failed: bool = False,
    dry_run: bool = False,
    pipeline: str | None = None,
    on_folder: Callable[[RunRecord], None] | None = None,
) -> CleanupReport:
    """Remove the staging folders of runs that ended more than ``older_than`` before ``now``.

    Args:
        store: the state store (which runs exist, their states and end times).
        home: the headrace home holding ``staging/``.
        older_than: minimum age, counted from the run's end.
        now: the current time (injected in tests).
        include_failed: also remove failed runs' files (a resume then reruns their
            successful tasks); default: keep them and list them in the report.
        dry_run: only report what would be removed.
        pipeline: only this pipeline's runs.
        on_folder: called once per run looked at (progress display).

    Returns:
        The report.

    Example:
        >>> report = clean_staging(store, settings.home, timedelta(days=7), datetime.now(UTC))
        >>> len(report.removed), report.freed_bytes
    """
    cutoff = now - older_than
    report = CleanupReport(dry_run=dry_run)
    finished = store.list_runs(pipeline, states=[RunState.SUCCESS, RunState.FAILED], limit=None)
    for run in finished:
        if on_folder is not None:
            on_folder(run)
        if run.ended_at is None or run.ended_at > cutoff:
            continue
        folder = staging_dir(home, run.pipeline, run.run_id)
        if not folder.exists():
            continue
        if run.state == RunState.FAILED and not include_failed:
            report.kept_failed.append(run)
            continue
        report.removed.append((run, folder, _remove_folder(folder, dry_run)))
    return report


def _remove_folder(folder: Path, dry_run: bool) -> int:
    """Remove a run's staging folder (and its pipeline's, once empty); its size in bytes."""
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    if not dry_run:
        shutil.rmtree(folder)
        _remove_if_empty(folder.parent)
    return size


def _remove_if_empty(folder: Path) -> None:
    """Drop a pipeline's staging folder once its last run folder is gone."""
    with contextlib.suppress(OSError):  # not empty (other runs) or already gone
        folder.rmdir()


@dataclass
class PurgeReport:
    """What :func:`purge_runs` deleted (or would delete) and what it kept.

    Attributes:
        removed: the runs deleted from the state store, staged files included.
        kept_failed: failed runs past the age, kept (they may be resumed).
        kept_anchors: past the age, but the newest scheduled or backfill run of their
            pipeline: the scheduler continues from it, so it stays.
        staged_bytes: the size of the staged files removed with them.
        dry_run: nothing was deleted.
    """

    removed: list[RunRecord] = field(default_factory=list)
    kept_failed: list[RunRecord] = field(default_factory=list)
    kept_anchors: list[RunRecord] = field(default_factory=list)
    staged_bytes: int = 0
    dry_run: bool = False


def purge_runs(
    store: StateStore,
    home: str | Path,
    older_than: timedelta,
    now: datetime,
    *,
    include_failed: bool = False,
    dry_run: bool = False,
    pipeline: str | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
) -> PurgeReport:
    """Delete finished runs that ended more than ``older_than`` before ``now``: their
    staged files, then their records (task states, logs, check results, SLA misses).

    Kept: running and queued runs; failed runs unless ``include_failed``; and each
    pipeline's newest scheduled or backfill run, which the scheduler continues from
    (without it, catchup would start the purged intervals again). A manual run for a
    date that was purged runs afresh; a backfill over purged intervals reruns them.

    Files go before records: a crash in between leaves records whose staged files are
    gone (as :func:`clean_staging` does), never folders no record points to.

    Example:
        >>> report = purge_runs(store, settings.home, timedelta(days=90), datetime.now(UTC))
        >>> len(report.removed)
    """
    cutoff = now - older_than
    report = PurgeReport(dry_run=dry_run)
    anchor_ids = {
        anchor.run_id
        for name in ([pipeline] if pipeline else store.list_pipelines())
        if (anchor := last_automated_run(store, name)) is not None
    }
    doomed: list[RunRecord] = []
    for run in store.list_runs(pipeline, states=[RunState.SUCCESS, RunState.FAILED], limit=None):
        if on_run is not None:
            on_run(run)
        if run.ended_at is None or run.ended_at > cutoff:
            continue
        if run.run_id in anchor_ids:
            report.kept_anchors.append(run)
        elif run.state == RunState.FAILED and not include_failed:
            report.kept_failed.append(run)
        else:
            doomed.append(run)
    for run in doomed:
        folder = staging_dir(home, run.pipeline, run.run_id)
        if folder.exists():
            report.staged_bytes += _remove_folder(folder, dry_run)
    if not dry_run and doomed:
        store.delete_runs([run.run_id for run in doomed])
    report.removed = doomed
    return report
