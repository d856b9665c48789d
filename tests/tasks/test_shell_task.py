"""Shell tasks: templating with the run context, quoting, exit codes, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from headrace.errors import DefinitionError
from headrace.tasks import CommandError, render, shell_task


def test_brief_cleanup_pattern_removes_only_this_days_files(tmp_path: Path, make_ctx):
    staging = tmp_path / "staging_area"
    staging.mkdir()
    for name in (
        "customers_2024-01-02.parquet",
        "customers_2024-01-02.tmp",
        "customers_2024-01-03.parquet",
    ):
        (staging / name).write_text("x")
    cleanup = shell_task(f"rm -rf {staging}/customers_{{{{ ds }}}}*", task_id="cleanup_temp_files")
    ctx, _ = make_ctx()
    cleanup.fn(ctx)
    assert sorted(p.name for p in staging.iterdir()) == ["customers_2024-01-03.parquet"]


def test_substituted_values_cannot_become_shell_syntax(tmp_path: Path, make_ctx):
    marker = tmp_path / "pwned"
    task = shell_task("printf '%s\\n' {{ params.name }}", task_id="echo")
    ctx, log = make_ctx(params={"name": f"x; touch {marker}; $(touch {marker})"})
    out = task.fn(ctx)
    assert not marker.exists()
    assert out == f"x; touch {marker}; $(touch {marker})"
    assert f"x; touch {marker}; $(touch {marker})" in log.lines


def test_context_values_and_environment(make_ctx):
    task = shell_task(
        'echo {{ ds }} {{ ds_nodash }} {{ data_interval_start }} {{ run_id }} "$HEADRACE_DS"',
        task_id="show",
    )
    ctx, _ = make_ctx()
    assert task.fn(ctx) == "2024-01-02 20240102 2024-01-02T02:00:00+00:00 run_01 2024-01-02"


def test_failing_command_names_task_code_and_output(make_ctx):
    task = shell_task("echo about to fail; echo oops >&2; exit 3", task_id="boom")
    ctx, log = make_ctx()
    with pytest.raises(
        CommandError,
        match=r"pipeline 'customer_etl', run run_01: shell task 'boom' exited with code 3",
    ) as info:
        task.fn(ctx)
    assert info.value.exit_code == 3
    assert (info.value.pipeline, info.value.run_id) == ("customer_etl", "run_01")
    assert "oops" in info.value.output_tail
    assert "about to fail" in log.lines and "oops" in log.lines


def test_unknown_placeholder_fails_at_definition_with_suggestion():
    with pytest.raises(
        DefinitionError, match=r"^task 'x': unknown placeholder .*Did you mean 'ds'"
    ) as info:
        shell_task("echo {{ dss }}", task_id="x")
    assert info.value.task == "x"
    with pytest.raises(DefinitionError, match="not supported"):
        shell_task("echo {{ ds | upper }}", task_id="x")


def test_unknown_param_names_known_params(make_ctx):
    task = shell_task("echo {{ params.ful_refresh }}", task_id="p")
    ctx, _ = make_ctx(params={"full_refresh": True})
    with pytest.raises(DefinitionError, match="Did you mean 'full_refresh'"):
        task.fn(ctx)


def test_render_quotes_each_value():
    assert render("a {{ params.x }}", {"params": {"x": "it's"}}, task="t") == "a 'it'\"'\"'s'"


def test_task_options_pass_through():
    task = shell_task("true", task_id="quick", retries=2, timeout=30, pool="shell")
    assert task.task_id == "quick" and task.retries.attempts == 3 and task.pool == "shell"
    assert task.timeout is not None and task.timeout.total_seconds() == 30


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is as good as gone
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _has_watchdog(parent: int) -> bool:
    """Whether ``parent`` has a child running the shell task's watchdog."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"watchdog" in cmdline:
            return True
    return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_background_leftovers_are_stopped_when_the_task_ends(tmp_path: Path, make_ctx):
    pidfile = tmp_path / "bg.pid"
    task = shell_task(f"sleep 600 & echo $! > {pidfile}", task_id="leaky")
    ctx, _ = make_ctx()
    # Run in a thread: without the watchdog the leftover would hold the output pipe and
    # the task would not even return.
    runner = threading.Thread(target=task.fn, args=(ctx,), daemon=True)
    runner.start()
    runner.join(30)
    leftover = int(pidfile.read_text())
    try:
        assert not runner.is_alive(), "the task did not return: its leftover process lives on"
        assert _gone_within(leftover, 5)
    finally:
        if _alive(leftover):
            os.kill(leftover, signal.SIGKILL)


WORKER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from headrace.config import Settings
from headrace.pipeline import Context
from headrace.tasks import shell_task

day = datetime(2024, 1, 1, tzinfo=UTC)
ctx = Context(run_id="r", pipeline="p", task_id="long", logical_date=day, data_interval_start=day,
              data_interval_end=day, settings=Settings(home=Path("."), state_url="sqlite://"),
              staging_dir=Path("."))
shell_task(sys.argv[1], task_id="long").fn(ctx)
"""


def test_command_dies_with_a_killed_worker(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, f"sleep 60 & echo $! > {pidfile}; wait"]
    )
    try:
        deadline = time.monotonic() + 30
        while (
            not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _alive(child)
        # The command can print before the worker has started its watchdog (a loaded
        # machine); the engine kills a worker only long after that, so wait for it too.
        while not _has_watchdog(worker.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _has_watchdog(worker.pid)
        worker.kill()  # as the engine does to a task past its timeout
        worker.wait()
        assert _gone_within(child, 5)
    finally:
        if worker.poll() is None:
            worker.kill()
