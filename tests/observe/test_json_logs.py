"""``HEADRACE_LOG_FORMAT=json``: runs and the scheduler log one JSON object per line, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import headrace

SRC = str(Path(headrace.__file__).resolve().parents[1])
PIPELINE = textwrap.dedent("""
    from datetime import datetime
    from headrace import Context, pipeline, task

    @task
    def hello(ctx: Context) -> str:
        ctx.log.info("using %s", ctx.connection("db"))
        return "hi"

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 1))
    def greet():
        hello()
""")


def _headrace(
    tmp_path: Path, *argv: str, log_format: str = "json"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(
        PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        HEADRACE_HOME=str(tmp_path / "home"),
        HEADRACE_LOG_FORMAT=log_format,
        HEADRACE_CONN_DB="postgresql://u:json-s3cret-pw@127.0.0.1/x",
    )
    return subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_run_logs_json_lines(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(PIPELINE)
    done = _headrace(tmp_path, "run", "flows.py", "--executor", "inprocess")
    assert done.returncode == 0, done.stderr
    records = _records(done.stderr)
    outcome = [r for r in records if r["logger"] == "headrace.run"]
    assert outcome and outcome[-1]["task_id"] == "hello" and outcome[-1]["state"] == "success"
    assert outcome[-1]["pipeline"] == "greet" and outcome[-1]["run_id"] and outcome[-1]["ts"]
    task_lines = [r for r in records if r["logger"] == "headrace.task.greet.hello"]
    assert task_lines and task_lines[0]["message"] == "using postgresql://u:***@127.0.0.1/x"
    assert "json-s3cret-pw" not in done.stderr + done.stdout


def test_scheduler_logs_json_lines(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(PIPELINE)
    done = _headrace(
        tmp_path, "scheduler", "flows.py", "--once", "--inline", "--executor", "inprocess"
    )
    assert done.returncode == 0, done.stderr
    assert any(
        r["logger"] == "headrace.scheduler" and "starting run" in r["message"]
        for r in _records(done.stderr)
    )


def test_unknown_log_format_is_a_configuration_error(tmp_path: Path) -> None:
    done = _headrace(tmp_path, "runs", log_format="yaml")
    assert done.returncode == 4 and "HEADRACE_LOG_FORMAT='yaml'" in done.stderr
