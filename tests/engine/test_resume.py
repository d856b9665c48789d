"""Resuming runs: after a task failure, after SIGTERM, and after the driver was killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace import Context, pipeline, task
from headrace.engine import Runner, driver_alive
from headrace.engine.run_result import HOSTNAME
from headrace.errors import EngineError
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)
PIPELINES = Path(__file__).parent / "pipelines"


@task
def counted(ctx: Context) -> int:
    with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
        f.write("counted\n")
    return 20


@task
def fragile(ctx: Context, value: int) -> int:
    with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
        f.write("fragile\n")
    if (Path(ctx.params["dir"]) / "broken").exists():
        raise RuntimeError("source not ready")
    return value + 1


@pipeline(params={"dir": ""})
def resumable():
    fragile(counted())


def ran(folder: Path) -> list[str]:
    return (folder / "ran.txt").read_text().split()


def test_resume_reruns_only_what_did_not_succeed(store, settings, tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(resumable, DAY, params={"dir": str(tmp_path)})
    assert failed.state == RunState.FAILED
    assert failed.task("fragile").error == "RuntimeError: source not ready"

    (tmp_path / "broken").unlink()
    resumed = runner.resume(failed.run_id, resumable)

    assert resumed.run_id == failed.run_id
    assert resumed.state == RunState.SUCCESS
    assert resumed.result_of("fragile") == 21  # read counted's staged result again
    assert ran(tmp_path) == ["counted", "fragile", "fragile"]
    assert resumed.task("fragile").attempt == 2  # attempts keep counting, so logs stay apart
    assert resumed.run.error is None


def test_resume_of_a_finished_run_does_nothing(store, settings, tmp_path: Path) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    done = runner.run(resumable, DAY, params={"dir": str(tmp_path)})
    again = runner.resume(done.run_id, resumable)
    assert not again.executed
    assert ran(tmp_path) == ["counted", "fragile"]


def test_a_run_with_a_live_driver_is_not_taken_over(store, settings, tmp_path: Path) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    run = runner.run(
        resumable, DAY, params={"dir": str(tmp_path / "nowhere")}
    )  # fails: no such dir
    store.update_run(run.run_id, state=RunState.RUNNING, pid=os.getpid(), hostname=HOSTNAME)
    with pytest.raises(EngineError, match="already running"):
        runner.resume(run.run_id, resumable)


def _start_driver(settings, tmp_path: Path, executor: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(PIPELINES / "drive.py"),
            settings.state_url,
            str(settings.home),
            str(PIPELINES / "crash.py"),
            "crashable",
            executor,
            DAY.isoformat(),
            f"dir={tmp_path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_until_running(store, task_id: str, proc: subprocess.Popen[str]):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = store.list_runs(pipeline="crashable")
        if runs:
            tis = {t.task_id: t for t in store.get_task_instances(runs[0].run_id)}
            if task_id in tis and tis[task_id].state == TaskState.RUNNING:
                return runs[0]
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    raise AssertionError(f"{task_id} never started")


@pytest.mark.parametrize("executor", ["process", "inprocess"])
def test_a_run_whose_driver_was_killed_is_detected_dead_and_resumed(
    store, settings, pipelines, tmp_path: Path, executor: str
) -> None:
    proc = _start_driver(settings, tmp_path, executor)
    run = _wait_until_running(store, "wait_for_go", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.stdout is not None
    proc.stdout.close()

    stale = store.get_run(run.run_id)
    assert stale.state == RunState.RUNNING  # nobody could record the kill
    assert stale.pid == proc.pid
    assert not driver_alive(stale)

    (tmp_path / "go").touch()
    result = Runner(store, executor="inprocess", settings=settings).resume(
        run.run_id
    )  # file from the run record

    assert result.state == RunState.SUCCESS
    assert result.result_of("last") == 42
    assert ran(tmp_path).count("first") == 1  # its staged result was reused
    assert ran(tmp_path).count("wait_for_go") == 2
    assert result.task("wait_for_go").attempt == 2


def test_sigterm_marks_the_run_failed_and_resumable(store, settings, tmp_path: Path) -> None:
    proc = _start_driver(settings, tmp_path, "process")
    run = _wait_until_running(store, "wait_for_go", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 130, out
    assert "interrupted by SIGTERM" in out
    stopped = store.get_run(run.run_id)
    assert stopped.state == RunState.FAILED
    assert "SIGTERM" in stopped.error
    ti = {t.task_id: t for t in store.get_task_instances(run.run_id)}
    assert ti["wait_for_go"].state == TaskState.FAILED
    assert ti["wait_for_go"].error_kind == "interrupted"
    assert ti["last"].state == TaskState.QUEUED

    (tmp_path / "go").touch()
    result = Runner(store, executor="process", settings=settings).resume(run.run_id)
    assert result.state == RunState.SUCCESS
    assert ran(tmp_path).count("first") == 1


def test_a_run_driven_from_another_host_is_dead_when_its_heartbeat_is_stale() -> None:
    from datetime import timedelta

    from headrace.state.store_base import RunRecord

    now = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    run = RunRecord(
        "r",
        "p",
        DAY,
        DAY,
        DAY,
        RunState.RUNNING,
        pid=1,
        hostname="another-host",
        heartbeat_at=now - timedelta(seconds=10),
    )
    assert driver_alive(run, now)
    run.heartbeat_at = now - timedelta(minutes=2)
    assert not driver_alive(run, now)
    run.state = RunState.FAILED
    assert not driver_alive(run, now)


@task
def table_source(ctx: Context) -> object:
    import pyarrow as pa

    with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
        f.write("table_source\n")
    return pa.table({"x": [1, 2, 3]})


@task
def table_user(ctx: Context, rows: object) -> int:
    if (Path(ctx.params["dir"]) / "broken").exists():
        raise RuntimeError("not yet")
    return rows.num_rows  # type: ignore[attr-defined]


@pipeline(params={"dir": ""})
def staged():
    table_user(table_source())


def test_resume_reruns_a_success_whose_staged_file_is_gone(store, settings, tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(staged, DAY, params={"dir": str(tmp_path)})
    assert failed.state == RunState.FAILED
    staged_at = failed.task("table_source").result_path
    assert staged_at is not None
    Path(staged_at).unlink()  # e.g. staging cleaned by retention

    (tmp_path / "broken").unlink()
    resumed = runner.resume(failed.run_id, staged)
    assert resumed.state == RunState.SUCCESS
    assert resumed.result_of("table_user") == 3
    assert ran(tmp_path) == ["table_source", "table_source"]
