"""examples/mcp_assistant.py runs: a real run, read by the SDK client through `headrace mcp` over stdio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_assistant.py"


def test_mcp_assistant_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    (run_id,) = set(re.findall(r"\b01[0-9a-z]{16}\b", out))
    assert f"ran pipeline hello: run {run_id} success" in out
    assert (
        "tools: get_run, lineage, list_files, list_pipelines, list_runs, preview_file, profile_table, "
        "quarantined_rows, query, run_checks, task_logs" in out
    )
    assert "pipeline hello: schedule @daily, owner data-team, next run 20" in out
    assert "  fetch_greetings: success, attempts 2" in out
    assert "ConnectionError: greeting service not ready yet" in out
    assert "  word | length\n  hello | 5\n  bonjour | 7" in out
    assert (
        "DROP TABLE through query: refused=True: Error executing tool query: refused: a DROP statement"
        in out
    )
    assert out.rstrip().endswith("server stopped")
