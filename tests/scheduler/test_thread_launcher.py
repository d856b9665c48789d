"""``headrace backfill`` with several runs at once drives them in threads of one process,
each on a warm process pool reused run after run (was: one Python process per run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace.state import RunState, open_store

PIPELINE = textwrap.dedent(
    """
    import os, time
    from datetime import datetime
    from headrace import pipeline, task

    @task
    def work() -> int:
        time.sleep(0.2)
        return os.getpid()

    @pipeline(schedule="@daily", max_active_runs=2)
    def wide():
        work()
    """
)


@pytest.mark.slow
def test_backfill_of_several_runs_at_once_reuses_warm_pools(tmp_path: Path) -> None:
    (tmp_path / "wide.py").write_text(PIPELINE)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")},
        "HEADRACE_STATE_URL": state_url,
        "HEADRACE_HOME": str(tmp_path / ".headrace"),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "backfill", str(tmp_path / "wide.py"),
         "--start", "2024-01-01", "--end", "2024-01-08"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with open_store(state_url) as store:
        runs = store.list_runs("wide")
        tasks = [ti for r in runs for ti in store.get_task_instances(r.run_id)]
    assert len(runs) == 8 and all(r.state == RunState.SUCCESS for r in runs)
    assert len({r.pid for r in runs}) == 1  # one driving process: the backfill's own
    spans = sorted((r.created_at, r.ended_at) for r in runs if r.created_at and r.ended_at)
    assert len(spans) == 8
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2
    worker_pids = {ti.result_json for ti in tasks}
    assert len(worker_pids) <= 2, worker_pids  # two warm pools of one busy worker each, reused
