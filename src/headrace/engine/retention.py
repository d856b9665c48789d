"""Staging retention: remove the staged files of finished runs older than a given age.

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
from headrace.state.base import RunRecord, RunState, StateStore


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
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        if not dry_run:
            shutil.rmtree(folder)
            _remove_if_empty(folder.parent)
        report.removed.append((run, folder, size))
    return report


def _remove_if_empty(folder: Path) -> None:
    """Drop a pipeline's staging folder once its last run folder is gone."""
    with contextlib.suppress(OSError):  # not empty (other runs) or already gone
        folder.rmdir()
