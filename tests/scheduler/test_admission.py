"""Atomic admission: three real ``headrace scheduler`` processes on one store keep
``max_active_runs=2`` and run each of 10 catch-up intervals exactly once (SQLite and
PostgreSQL). Before admission was one transaction, two schedulers had 4 runs active."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headrace.state import open_store
from headrace.state.store_base import RunRecord, RunState

PIPELINE = textwrap.dedent(
    """
    import os, time
    from datetime import datetime
    from pathlib import Path
    from headrace import pipeline, task, Context

    OUT = Path(os.environ["ADMIT_OUT"])

    @task
    def work(ctx: Context) -> str:
        began = time.time()
        time.sleep(0.3)
        OUT.mkdir(exist_ok=True)
        (OUT / f"{ctx.logical_date:%Y%m%d}_{os.getpid()}_{began}_{time.time()}").touch()
        return ctx.run_id

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 1), end_date=datetime(2024, 1, 10),
              catchup=True, max_active_runs=2)
    def capped():
        work()
    """
)
CLI = [sys.executable, "-c", "from headrace.cli import main; main()", "scheduler"]
DAYS = [datetime(2024, 1, d, tzinfo=UTC) for d in range(1, 11)]


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of [start, end) spans covering one instant."""
    edges = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1])
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _three_schedulers(tmp_path: Path, state_url: str) -> tuple[list[RunRecord], list[str]]:
    file = tmp_path / "capped.py"
    file.write_text(PIPELINE)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")},
        "HEADRACE_STATE_URL": state_url,
        "HEADRACE_HOME": str(tmp_path / ".headrace"),
        "ADMIT_OUT": str(tmp_path / "out"),
    }
    argv = [*CLI, str(file), "--poll", "0.05", "--inline", "--executor", "inprocess"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs: list[str] = []
    try:
        with open_store(state_url) as store:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                runs = store.list_runs("capped", limit=100)
                if sum(r.state == RunState.SUCCESS for r in runs) >= len(DAYS):
                    break
                time.sleep(0.2)
            time.sleep(0.5)  # a scheduler that wrongly repeats an interval gets its chance
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            # a scheduler finishes the run it drives before it exits: on a busy machine
            # that may take a while
            outputs = [proc.communicate(timeout=90)[0] for proc in procs]
            runs = store.list_runs("capped", limit=100)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return runs, outputs


def _assert_capped(tmp_path: Path, runs: list[RunRecord], outputs: list[str]) -> None:
    assert sorted(r.logical_date for r in runs) == DAYS, outputs  # each interval once
    assert all(r.state == RunState.SUCCESS for r in runs), [r.error for r in runs]
    # A run holds its slot from creation (QUEUED) to its end.
    spans = [(r.created_at, r.ended_at) for r in runs]
    assert all(s is not None and e is not None for s, e in spans)
    assert _most_at_once(spans) <= 2, sorted(spans)  # type: ignore[arg-type]
    markers = list((tmp_path / "out").iterdir())
    assert sorted(Counter(m.name.split("_")[0] for m in markers).values()) == [1] * len(DAYS)
    task_spans = [(float(m.name.split("_")[2]), float(m.name.split("_")[3])) for m in markers]
    assert _most_at_once(task_spans) <= 2  # type: ignore[arg-type]
    drivers = {m.name.split("_")[1] for m in markers}
    assert len(drivers) >= 2, "the runs should have been shared among the schedulers"


@pytest.mark.slow
def test_three_schedulers_keep_max_active_runs_on_sqlite(tmp_path: Path) -> None:
    runs, outputs = _three_schedulers(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    _assert_capped(tmp_path, runs, outputs)


@pytest.mark.slow
def test_three_schedulers_keep_max_active_runs_on_postgres(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> None:
    url, schema = pg_schema
    runs, outputs = _three_schedulers(tmp_path, f"{url}?options=-csearch_path%3D{schema}")
    _assert_capped(tmp_path, runs, outputs)


def test_admission_refuses_past_the_cap_and_returns_existing_runs(store) -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    one = timedelta(days=1)
    first = store.admit_run("p", day, day, day + one, max_active=2)
    second = store.admit_run("p", day + one, day + one, day + 2 * one, max_active=2)
    assert first.created and second.created and second.active == 2
    third = store.admit_run("p", day + 2 * one, day + 2 * one, day + 3 * one, max_active=2)
    assert third.refused and store.find_run("p", day + 2 * one) is None
    again = store.admit_run(
        "p", day, day, day + one, max_active=2
    )  # an existing key: no slot needed
    assert not again.created and again.run.run_id == first.run.run_id
    store.update_run(first.run.run_id, state=RunState.SUCCESS, ended_at=datetime.now(UTC))
    assert store.admit_run("p", day + 2 * one, day + 2 * one, day + 3 * one, max_active=2).created


MANUAL = textwrap.dedent(
    """
    import time
    from headrace import pipeline, task

    @task
    def hold() -> None:
        time.sleep(1.5)

    @pipeline(max_active_runs=1)
    def single():
        hold()
    """
)


@pytest.mark.slow
def test_a_manual_run_waits_for_the_slot_of_another_process_run(tmp_path: Path) -> None:
    (tmp_path / "single.py").write_text(MANUAL)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")},
        "HEADRACE_STATE_URL": state_url,
        "HEADRACE_HOME": str(tmp_path / ".headrace"),
    }
    run = [sys.executable, "-c", "from headrace.cli import main; main()", "run", str(tmp_path / "single.py"),
           "--executor", "inprocess", "--date"]  # fmt: skip
    first = subprocess.Popen(
        [*run, "2024-01-01"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with open_store(state_url) as store:
            deadline = time.monotonic() + 60
            while not any(r.state == RunState.RUNNING for r in store.list_runs("single")):
                assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()  # type: ignore[union-attr]
                time.sleep(0.05)
            second = subprocess.run(
                [*run, "2024-01-02"], env=env, capture_output=True, text=True, timeout=120
            )
            first.wait(timeout=60)
            runs = {r.logical_date.day: r for r in store.list_runs("single")}
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 0, second.stdout + second.stderr
    assert runs[1].state == runs[2].state == RunState.SUCCESS
    created, ended = runs[2].created_at, runs[1].ended_at
    assert created is not None and ended is not None
    assert created >= ended  # admitted only once the first had ended
