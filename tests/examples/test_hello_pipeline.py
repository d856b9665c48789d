"""examples/hello_pipeline.py runs as a script and through ``headrace run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from headrace.state import RunState, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello_pipeline.py"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "HEADRACE_HOME": str(tmp_path / "home")}
    env.pop("HEADRACE_STATE_URL", None)
    return env


def test_hello_pipeline_as_a_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert ": success" in done.stdout
    assert "loud: ['HELLO!', 'HOLA!', 'BONJOUR!', 'HALLO!', 'CIAO!']" in done.stdout
    assert "summary: {'words': 5, 'longest': 'BONJOUR!', 'total_length': 30}" in done.stdout
    assert "fetch attempts: 2" in done.stdout  # failed once on purpose, then retried

    with open_store(tmp_path / "home" / "state.db") as store:
        (run,) = store.list_runs(pipeline="hello")
        logs = store.get_logs(run.run_id, "fetch_greetings")
        assert [log.attempt for log in logs] == [1, 2]
        assert (
            "ConnectionError" in logs[0].text and "fetched greetings for 2024-01-01" in logs[1].text
        )
        announce = store.get_logs(run.run_id, "announce")
        assert "greetings ready for 2024-01-01" in announce[0].text


def test_hello_pipeline_with_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "run", str(EXAMPLE),
         "--date", "2024-02-01", "--param", "punctuation=?"],
        capture_output=True, text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up_for_retry  fetch_greetings (attempt 1)" in done.stdout
    assert "shout ×5" in done.stdout
    assert "of hello for 2024-02-01 00:00 UTC: success" in done.stdout
    with open_store(tmp_path / "home" / "state.db") as store:
        (run,) = store.list_runs(pipeline="hello")
        assert run.state == RunState.SUCCESS
        tis = {(t.task_id, t.map_index): t for t in store.get_task_instances(run.run_id)}
        assert tis[("shout", 0)].result_json == "HELLO?"
        assert tis[("to_table", -1)].rows == 5
