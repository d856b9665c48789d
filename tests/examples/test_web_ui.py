"""examples/web_ui.py runs: a real run served by the web app, fetched over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web_ui.py"


def test_web_ui_example(tmp_path: Path) -> None:
    env = {**os.environ}
    env.pop("HEADRACE_STATE_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    (run_id,) = set(re.findall(r"\b01[0-9a-z]{16}\b", out.replace("01nosuchrun0000000", "")))
    assert f"ran pipeline hello: run {run_id} success" in out
    assert "GET /api/runs: 1 run(s)" in out
    assert f"GET /api/runs/{run_id}: 10 task instances" in out
    assert "  fetch_greetings: success, attempts 2" in out
    assert "  shout[4]: success, attempts 1" in out
    assert "  attempt 1: ConnectionError: greeting service not ready yet" in out
    assert "GET / -> 200 text/html" in out
    assert re.search(rf"\| {run_id} hello 2024-01-01 success manual .* \d+\.\d+s", out)
    assert re.search(r"\| to_table success 1 \S+ \S+ 5 logs", out)  # 5 rows staged
    assert "GET /api/runs/01nosuchrun0000000 -> 404: Unknown run id '01nosuchrun0000000'" in out
    assert 'headrace_runs{pipeline="hello",state="success"} 1.0' in out
    assert f"POST /api/runs/{run_id}/resume without the token -> 401" in out
    assert (
        f"POST .../tasks/fetch_greetings/retry -> 200: task fetch_greetings and downstream of run {run_id}"
        in out
    )
    assert f"  run {run_id} is success again" in out
    assert re.search(rf"audit: \S+ token retry {run_id}/fetch_greetings ok", out)
    # The retry from the API ran fetch_greetings a third time: two attempts beyond the first.
    assert 'headrace_task_retries_total{pipeline="hello",task="fetch_greetings"} 2.0' in out
    assert out.rstrip().endswith("server stopped")
