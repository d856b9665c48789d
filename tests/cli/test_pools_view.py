"""``headrace pools``: configured sizes and the slots taken now."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import RunState, open_store
from headrace.state.liveness import HOSTNAME


def test_pools_lists_sizes_and_holders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_STATE_URL", url)
    monkeypatch.setenv("HEADRACE_POOL_DB", "2")
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "headrace.toml").write_text("[pools]\nwarehouse = 1\n")
    day = datetime(2024, 1, 1, tzinfo=UTC)
    with open_store(url) as store:
        run, _ = store.create_run("etl", day, day, day)
        store.update_run(run.run_id, state=RunState.RUNNING, pid=os.getpid(), hostname=HOSTNAME)
        assert store.acquire_pool_slot("db", 2, run.run_id, "load", 3)

    assert run_app(["pools"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:] if line.strip()}
    assert rows["db"][:3] == ["2", "1", run.run_id] and rows["db"][3] == "load[3]"
    assert rows["warehouse"] == ["1", "0"]
