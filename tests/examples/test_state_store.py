"""examples/state_store.py runs and shows the run it recorded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from headrace.state import RunState, TaskState, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "state_store.py"


def test_state_store_example(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HEADRACE_STATE_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "created=True, second trigger created=False, same run: True" in out
    (run_id,) = set(re.findall(r"\b01[0-9a-z]{16}\b", out))
    assert "$ headrace show " + run_id in out
    load_row = next(line for line in out.splitlines() if line.split()[:1] == ["load"])
    assert load_row.split()[1:3] == ["success", "2"] and "1,193" in load_row
    assert "email_valid" in out and "7 / 1,200" in out
    logs = out.split("$ headrace logs")[1]
    assert logs.index("connection refused") < logs.index("merged 1193 rows")
    assert "read 1200 rows" not in logs  # only the load task's logs were asked for
    cleanup = out.split("$ headrace cleanup")[1]
    assert "would delete 1 run(s) that ended over 30d ago" in cleanup and run_id in cleanup
    with open_store(tmp_path / "state.db") as store:
        run = store.get_run(run_id)
        assert run.state is RunState.SUCCESS and run.params == {"source": "demo"}
        assert {t.task_id: t.state for t in store.get_task_instances(run_id)} == {
            "extract": TaskState.SUCCESS,
            "clean": TaskState.SUCCESS,
            "load": TaskState.SUCCESS,
        }
