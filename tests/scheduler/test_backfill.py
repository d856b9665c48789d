"""Backfills: oldest first, skip succeeded, --rerun, resume after failure and after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace import pipeline, task
from headrace.errors import ScheduleError
from headrace.pipeline import Context
from headrace.scheduler import Backfill, InlineLauncher, Plan, SubprocessLauncher, plan_backfill
from headrace.state.store_base import RunState

CALLS: list[tuple[str, str]] = []
FAIL_ON: set[str] = set()


@task
def extract(ctx: Context) -> str:
    CALLS.append(("extract", ctx.ds))
    return ctx.ds


@task
def load(day: str) -> str:
    CALLS.append(("load", day))
    if day in FAIL_ON:
        raise RuntimeError(f"load of {day} failed")
    return day


@pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1), catchup=False, max_active_runs=1)
def nightly():
    load(extract())


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def backfill(store, settings) -> Backfill:
    return Backfill(
        nightly,
        store,
        launcher=InlineLauncher(store, settings, executor="inprocess"),
        poll_interval=0.01,
    )


def test_one_run_per_interval_oldest_first_then_skips(store, settings):
    CALLS.clear()
    report = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 3, 23))
    assert [c for c in CALLS if c[0] == "extract"] == [
        ("extract", f"2024-01-0{d}") for d in (1, 2, 3)
    ]
    assert report.succeeded == 3 and report.skipped == 0 and report.failed == []
    runs = store.list_runs("nightly")
    assert {r.trigger for r in runs} == {"backfill"} and {r.state for r in runs} == {
        RunState.SUCCESS
    }
    assert sorted(r.data_interval_start for r in runs) == [utc(2024, 1, d, 2) for d in (1, 2, 3)]
    CALLS.clear()
    again = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 4, 23))
    assert again.skipped == 3 and again.succeeded == 1
    assert CALLS == [("extract", "2024-01-04"), ("load", "2024-01-04")]


def test_rerun_runs_succeeded_intervals_again_in_the_same_run(store, settings):
    backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 2))
    first_ids = {r.run_id for r in store.list_runs("nightly")}
    CALLS.clear()
    report = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 2), rerun=True)
    assert report.succeeded == 1 and report.skipped == 0
    assert CALLS == [("extract", "2024-01-01"), ("load", "2024-01-01")]
    assert {r.run_id for r in store.list_runs("nightly")} == first_ids


def test_failed_interval_is_resumed_without_redoing_successful_tasks(store, settings):
    FAIL_ON.add("2024-01-02")
    try:
        report = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 3, 23))
    finally:
        FAIL_ON.clear()
    failed_run = store.find_run("nightly", utc(2024, 1, 2, 2))
    assert report.failed == [failed_run.run_id] and report.succeeded == 2
    assert [
        p
        for _, p, _ in plan_backfill(nightly, store, datetime(2024, 1, 1), datetime(2024, 1, 3, 23))
    ] == [
        Plan.SKIP,
        Plan.RESUME,
        Plan.SKIP,
    ]
    CALLS.clear()
    resumed = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 3, 23))
    assert resumed.succeeded == 1 and resumed.skipped == 2 and resumed.failed == []
    assert CALLS == [("load", "2024-01-02")]  # extract kept its staged result
    assert store.find_run("nightly", utc(2024, 1, 2, 2)).run_id == failed_run.run_id


def test_empty_range_and_manual_pipeline_are_clear_errors(store, settings):
    with pytest.raises(ScheduleError, match="no interval .* widen --start/--end"):
        backfill(store, settings).run(datetime(2024, 1, 1, 3), datetime(2024, 1, 1, 4))

    @pipeline(schedule=None)
    def adhoc():
        extract()

    with pytest.raises(ScheduleError, match="no schedule"):
        Backfill(adhoc, store, launcher=InlineLauncher(store, settings)).run(
            datetime(2024, 1, 1), datetime(2024, 1, 2)
        )


PIPELINE_FILE = textwrap.dedent(
    """
    import os, time
    from datetime import datetime
    from pathlib import Path
    from headrace import pipeline, task, Context

    OUT = Path(os.environ["BACKFILL_OUT"])

    @task
    def work(ctx: Context) -> str:
        OUT.mkdir(exist_ok=True)
        (OUT / f"start_{ctx.ds}_{ctx.attempt}_{os.getpid()}_{time.time():.3f}").touch()
        time.sleep(float(os.environ.get("BACKFILL_SLEEP", "0.6")))
        (OUT / f"done_{ctx.ds}_{time.time():.3f}").touch()
        return ctx.ds

    @task
    def finish(day: str) -> str:
        return day

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 1), max_active_runs=MAX_ACTIVE)
    def NAME():
        finish(work())
    """
)


def _env(tmp_path: Path, settings) -> dict[str, str]:
    return {
        **os.environ,
        "HEADRACE_STATE_URL": settings.state_url,
        "HEADRACE_HOME": str(settings.home),
        "BACKFILL_OUT": str(tmp_path / "out"),
    }


def _done(tmp_path: Path) -> list[str]:
    out = tmp_path / "out"
    return sorted(p.name.split("_")[1] for p in out.glob("done_*")) if out.exists() else []


def test_cli_backfill_killed_then_resumed(tmp_path: Path, settings, store):
    file = tmp_path / "daily_work.py"
    file.write_text(PIPELINE_FILE.replace("MAX_ACTIVE", "1").replace("NAME", "daily_work"))
    env = _env(tmp_path, settings)
    argv = [
        sys.executable,
        "-c",
        "from headrace.cli import main; main()",
        "backfill",
        str(file),
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-04",
        "--executor",
        "inprocess",
    ]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(_done(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # into the third interval
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = _done(tmp_path)
    assert 2 <= len(finished_before) < 4
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped" in again.stdout
    assert _done(tmp_path) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    runs = store.list_runs("daily_work")
    assert len(runs) == 4 and {r.state for r in runs} == {RunState.SUCCESS}
    starts = sorted(p.name.split("_")[1] for p in (tmp_path / "out").glob("start_*"))
    # intervals finished before the kill ran once; at most the killed one started twice
    assert [starts.count(d) for d in finished_before] == [1] * len(finished_before)


def test_parallel_backfill_keeps_at_most_max_active_runs(
    tmp_path: Path, settings, store, monkeypatch
):
    file = tmp_path / "wide.py"
    file.write_text(PIPELINE_FILE.replace("MAX_ACTIVE", "2").replace("NAME", "wide"))
    env = _env(tmp_path, settings)
    env["BACKFILL_SLEEP"] = "1.0"
    monkeypatch.setenv("BACKFILL_OUT", env["BACKFILL_OUT"])
    from headrace.engine import load_pipelines

    wide = load_pipelines(file)["wide"]
    launcher = SubprocessLauncher(settings, executor="inprocess", env=env)
    report = Backfill(wide, store, launcher=launcher, poll_interval=0.05).run(
        datetime(2024, 1, 1), datetime(2024, 1, 4)
    )
    assert report.succeeded == 4
    spans = []
    for start in (tmp_path / "out").glob("start_*"):
        day, t0 = start.name.split("_")[1], float(start.name.split("_")[4])
        (done,) = (tmp_path / "out").glob(f"done_{day}_*")
        spans.append((t0, float(done.name.split("_")[2])))
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2  # ran side by side, never three at once


def test_abandoned_queued_run_is_resumed_not_waited_for(store, settings):
    # a backfill killed between creating a run and starting it leaves it QUEUED, driverless
    run, _ = store.create_run(
        "nightly", utc(2024, 1, 1, 2), utc(2024, 1, 1, 2), utc(2024, 1, 2, 2), {}, "backfill"
    )
    CALLS.clear()
    report = backfill(store, settings).run(datetime(2024, 1, 1), datetime(2024, 1, 2, 23))
    assert report.succeeded == 2 and [p for _, p, _, _ in report.outcomes] == [
        Plan.RESUME,
        Plan.CREATE,
    ]
    assert store.get_run(run.run_id).state == RunState.SUCCESS
