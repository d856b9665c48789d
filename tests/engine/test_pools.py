"""Pools: a pool of 1 shared by two runs driven by separate processes runs one task at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.engine import Runner
from headrace.errors import EngineError
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState

PIPELINES = Path(__file__).parent / "pipelines"


def _drive_two_runs_at_once(url: str, home: Path, pool_size: int) -> None:
    env = dict(os.environ, HEADRACE_POOL_DB=str(pool_size))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(PIPELINES / "drive.py"),
                url,
                str(home),
                str(PIPELINES / "pooled.py"),
                "pooled",
                "inprocess",
                day,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in ("2024-02-01T00:00:00+00:00", "2024-02-02T00:00:00+00:00")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "success" in out, out


def _pooled_intervals(url: str, schema: str | None = None) -> list[tuple[datetime, datetime]]:
    with open_store(url, schema=schema) as store:
        runs = store.list_runs(pipeline="pooled")
        assert len(runs) == 2 and all(r.state == RunState.SUCCESS for r in runs)
        tis = [
            ti
            for r in runs
            for ti in store.get_task_instances(r.run_id)
            if ti.task_id.startswith("load_")
        ]
        assert store.list_pool_slots("db") == []  # every slot given back
    assert len(tis) == 4 and all(ti.state == TaskState.SUCCESS for ti in tis)
    return sorted((ti.started_at, ti.ended_at) for ti in tis)  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_pool_of_one_runs_one_task_at_a_time_across_processes(
    backend: str, tmp_path: Path, request
) -> None:
    url, schema = f"sqlite:///{tmp_path / 'state.db'}", None
    if backend == "postgresql":
        pg_url, schema = request.getfixturevalue("pg_schema")
        url = f"{pg_url}?options=-csearch_path%3D{schema}"
    _drive_two_runs_at_once(url, tmp_path / "home", pool_size=1)

    intervals = _pooled_intervals(url)
    for (_, ended), (started, _) in zip(intervals, intervals[1:], strict=False):
        assert started >= ended, f"two tasks of pool db overlapped: {intervals}"


def test_a_pool_of_two_lets_tasks_overlap(tmp_path: Path) -> None:
    """The same runs with room for two: the tasks do overlap, so the test above means something."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _drive_two_runs_at_once(url, tmp_path / "home", pool_size=2)

    intervals = _pooled_intervals(url)
    assert any(
        started < ended for (_, ended), (started, _) in zip(intervals, intervals[1:], strict=False)
    )


def test_a_pool_without_a_size_is_refused_before_the_run_starts(store, settings, pipelines) -> None:
    sized = Settings(home=settings.home, state_url=settings.state_url, pools={"db": 2})
    with pytest.raises(
        EngineError,
        match=r"task 'misnamed': pool 'dbb' has no size; set HEADRACE_POOL_DBB=N"
        r".*Did you mean 'db'\?",
    ):
        Runner(store, executor="inprocess", settings=sized).run(
            pipelines("pooled", "unknown_pool"), datetime(2024, 1, 1, tzinfo=UTC)
        )
    assert store.list_runs() == []


def test_the_slot_of_a_driver_killed_with_9_is_given_back(tmp_path: Path, settings) -> None:
    import signal
    import time

    env = dict(os.environ, HEADRACE_POOL_DB="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(PIPELINES / "drive.py"),
            settings.state_url,
            str(settings.home),
            str(PIPELINES / "pooled.py"),
            "holder",
            "inprocess",
            "2024-03-01T00:00:00+00:00",
            f"dir={tmp_path}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "holding").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder never took its slot"
        time.sleep(0.05)
    with open_store(settings.state_url) as store:
        assert [s.task_id for s in store.list_pool_slots("db")] == ["hold"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

        sized = Settings(home=settings.home, state_url=settings.state_url, pools={"db": 1})
        result = Runner(store, executor="inprocess", settings=sized).run(
            pipelines_from_file("pooled"), datetime(2024, 3, 2, tzinfo=UTC)
        )
        assert result.state == RunState.SUCCESS  # the dead driver's slot did not block it
        assert store.list_pool_slots("db") == []


def pipelines_from_file(name: str):
    from headrace.engine import load_pipelines

    return load_pipelines(PIPELINES / "pooled.py")[name]
