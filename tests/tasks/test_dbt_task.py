"""dbt tasks: a clear error without dbt; the command line dbt receives when present."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from headrace.errors import TerminalError
from headrace.tasks import DbtNotInstalled, dbt_task


def test_missing_dbt_is_a_terminal_error_saying_what_to_install(tmp_path: Path, make_ctx):
    task = dbt_task(
        "test --select customers",
        task_id="run_dbt_tests",
        project_dir=tmp_path,
        executable="dbt-not-here",
    )
    ctx, _ = make_ctx()
    with pytest.raises(DbtNotInstalled, match=r"pip install dbt-core") as info:
        task.fn(ctx)
    assert isinstance(info.value, TerminalError)


def test_dbt_gets_arguments_as_a_list_and_context_as_vars(tmp_path: Path, make_ctx, monkeypatch):
    # A stand-in executable on PATH records the argv it receives (dbt itself is not a dependency).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dbt"
    fake.write_text(
        '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$PWD/argv.txt"\necho "Done. PASS=3"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "proj"
    project.mkdir()
    task = dbt_task(
        "test --select 'customers orders'",
        task_id="t",
        project_dir=project,
        target="prod",
        vars={"extra": 1},
    )
    ctx, log = make_ctx(params={"full_refresh": False})
    assert task.fn(ctx) == "Done. PASS=3"
    argv = (project / "argv.txt").read_text().splitlines()
    assert argv[:3] == ["test", "--select", "customers orders"]
    assert argv[argv.index("--target") + 1] == "prod"
    dbt_vars = json.loads(argv[argv.index("--vars") + 1])
    assert (
        dbt_vars["ds"] == "2024-01-02"
        and dbt_vars["full_refresh"] is False
        and dbt_vars["extra"] == 1
    )
    assert dbt_vars["data_interval_end"] == "2024-01-03T02:00:00+00:00"
