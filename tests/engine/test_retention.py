"""Staging retention: old succeeded runs lose their staged files; failed ones only when asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from headrace import pipeline, task
from headrace.cli import run_app
from headrace.engine import FakeClock, Runner
from headrace.engine.retention import clean_staging
from headrace.engine.staging import staging_dir
from headrace.state import open_store
from headrace.state.store_base import RunState

DAY = datetime(2024, 8, 1, tzinfo=UTC)


@task
def table(ctx) -> pa.Table:
    if ctx.params["fail"]:
        raise RuntimeError("broken on purpose")
    return pa.table({"x": list(range(1000))})


@task
def staged(ctx) -> pa.Table:
    return pa.table({"y": [1, 2, 3]})


@pipeline(params={"fail": False})
def kept():
    staged() >> table()


def _runs(store, settings, now: datetime = DAY):
    """Three runs ending 30, 20 and 1 day(s) before ``now``: old success, old failure, recent success."""
    made = {}
    for name, age, fail in (
        ("old_ok", 30, False),
        ("old_failed", 20, True),
        ("recent_ok", 1, False),
    ):
        clock = FakeClock(now - timedelta(days=age))
        result = Runner(store, executor="inprocess", settings=settings, clock=clock).run(
            kept, now - timedelta(days=age), params={"fail": fail}
        )
        assert staging_dir(settings.home, "kept", result.run_id).exists()
        made[name] = result
    return made


def test_only_old_succeeded_runs_are_cleaned_unless_failed_ones_are_asked_for(
    store, settings
) -> None:
    runs = _runs(store, settings)
    folder = {name: staging_dir(settings.home, "kept", r.run_id) for name, r in runs.items()}

    dry = clean_staging(store, settings.home, timedelta(days=7), DAY, dry_run=True)
    assert [r.run_id for r, _, _ in dry.removed] == [runs["old_ok"].run_id] and folder[
        "old_ok"
    ].exists()

    report = clean_staging(store, settings.home, timedelta(days=7), DAY)
    assert [r.run_id for r, _, _ in report.removed] == [runs["old_ok"].run_id]
    assert report.freed_bytes > 0 and not folder["old_ok"].exists()
    assert [r.run_id for r in report.kept_failed] == [runs["old_failed"].run_id]
    assert folder["old_failed"].exists() and folder["recent_ok"].exists()

    again = clean_staging(store, settings.home, timedelta(days=7), DAY, include_failed=True)
    assert [r.run_id for r, _, _ in again.removed] == [runs["old_failed"].run_id]
    # The failed run still resumes: its successful task runs again, its staged file being gone.
    resumed = Runner(store, executor="inprocess", settings=settings).resume(
        runs["old_failed"].run_id, kept
    )
    assert resumed.state == RunState.FAILED and resumed.task("staged").attempt == 2


def test_cleanup_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, settings) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(settings.home))
    monkeypatch.setenv("HEADRACE_STATE_URL", settings.state_url)
    monkeypatch.setenv("COLUMNS", "200")
    with open_store(settings.state_url) as store:
        runs = _runs(store, settings, datetime.now(UTC))  # the command counts from the real now

    assert run_app(["cleanup", "--older-than", "7d"]) == 0
    out = capsys.readouterr().out
    assert "removed the staged files of 1 run(s) that ended over 7d ago" in out
    assert runs["old_ok"].run_id in out
    assert (
        f"kept the staged files of 1 failed run(s) that may still be resumed ({runs['old_failed'].run_id})"
        in out
    )

    assert run_app(["cleanup", "--older-than", "seven days"]) == 2  # usage
    assert "expected a number and a unit" in capsys.readouterr().err


def test_purge_runs_deletes_old_runs_but_keeps_failed_ones_and_the_schedules_anchor(
    store, settings
) -> None:
    from headrace.engine.retention import purge_runs
    from headrace.scheduler.loop import last_automated_run

    runs = _runs(store, settings)  # manual runs: old success, old failure, recent success
    # two scheduled runs, both old: the newer one anchors the schedule
    scheduled = []
    for age in (40, 35):
        day = DAY - timedelta(days=age)
        run, _ = store.create_run("kept", day, day, day + timedelta(days=1), trigger="scheduled")
        store.update_run(run.run_id, state=RunState.SUCCESS, ended_at=day + timedelta(days=1))
        scheduled.append(run)
    folder = staging_dir(settings.home, "kept", runs["old_ok"].run_id)

    dry = purge_runs(store, settings.home, timedelta(days=7), DAY, dry_run=True)
    assert {r.run_id for r in dry.removed} == {runs["old_ok"].run_id, scheduled[0].run_id}
    assert folder.exists() and store.get_run(runs["old_ok"].run_id)

    report = purge_runs(store, settings.home, timedelta(days=7), DAY)
    assert {r.run_id for r in report.removed} == {runs["old_ok"].run_id, scheduled[0].run_id}
    assert report.staged_bytes > 0 and not folder.exists()
    assert [r.run_id for r in report.kept_failed] == [runs["old_failed"].run_id]
    assert [r.run_id for r in report.kept_anchors] == [scheduled[1].run_id]
    left = {r.run_id for r in store.list_runs("kept", limit=None)}
    assert left == {runs["old_failed"].run_id, runs["recent_ok"].run_id, scheduled[1].run_id}
    anchor = last_automated_run(store, "kept")
    assert anchor is not None and anchor.run_id == scheduled[1].run_id  # catchup continues from it

    again = purge_runs(store, settings.home, timedelta(days=7), DAY, include_failed=True)
    assert [r.run_id for r in again.removed] == [runs["old_failed"].run_id]
    assert not staging_dir(settings.home, "kept", runs["old_failed"].run_id).exists()


def test_cleanup_state_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, settings
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(settings.home))
    monkeypatch.setenv("HEADRACE_STATE_URL", settings.state_url)
    monkeypatch.setenv("COLUMNS", "200")
    with open_store(settings.state_url) as store:
        runs = _runs(store, settings, datetime.now(UTC))

    assert run_app(["cleanup", "--older-than", "7d", "--state", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 run(s) that ended over 7d ago" in out and runs["old_ok"].run_id in out
    assert run_app(["cleanup", "--older-than", "7d", "--state"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 run(s) that ended over 7d ago" in out
    assert f"kept 1 failed run(s) that may still be resumed ({runs['old_failed'].run_id})" in out
    with open_store(settings.state_url) as store:
        assert runs["old_ok"].run_id not in {r.run_id for r in store.list_runs("kept", limit=None)}
