"""examples/branching_pipeline.py runs as a script and through ``headrace run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from headrace.state import RunState, TaskState, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "branching_pipeline.py"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "HEADRACE_HOME": str(tmp_path / "home"), **extra}
    env.pop("HEADRACE_STATE_URL", None)
    return env


def test_branching_pipeline_as_a_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "2024-01-01 full_refresh=True: success\n  chose: ['load.full_reload']" in done.stdout
    assert "2024-01-02 full_refresh=False: success\n  chose: ['load.incremental']" in done.stdout
    assert "load.incremental=skipped" in done.stdout and "load.full_reload=skipped" in done.stdout
    assert (
        done.stdout.count("publish=success") == 2
        and done.stdout.count("alert_on_failure=skipped") == 2
    )


def test_branching_pipeline_with_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "run", str(EXAMPLE),
         "--date", "2024-02-01", "--param", "full_refresh=true"],
        capture_output=True, text=True, timeout=120, env=_env(tmp_path, HEADRACE_POOL_WAREHOUSE="1"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "▸ extract" in done.stdout and "▸ load" in done.stdout
    assert "skipped  load.incremental" in done.stdout
    with open_store(tmp_path / "home" / "state.db") as store:
        (run,) = store.list_runs(pipeline="branching")
        assert run.state == RunState.SUCCESS
        tis = {t.task_id: t for t in store.get_task_instances(run.run_id)}
        assert tis["load.choose"].result_json == ["load.full_reload"]
        assert tis["load.full_reload"].result_json == "replaced with 3 rows"
        assert (
            tis["publish"].state == TaskState.SUCCESS and tis["tidy_up"].state == TaskState.SUCCESS
        )
        assert store.list_pool_slots() == []  # the warehouse slot was given back


def test_the_cli_names_the_missing_pool_size(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "run", str(EXAMPLE)],
        capture_output=True, text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert (
        "pool 'warehouse' has no size; set HEADRACE_POOL_WAREHOUSE=N" in done.stdout + done.stderr
    )
