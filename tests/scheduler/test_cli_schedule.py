"""`headrace backfill` / `headrace scheduler` argument handling and one in-process backfill."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace.cli import typer_app as _app  # noqa: F401  (registers the commands)
from headrace.cli.typer_app import run_app
from headrace.state import open_store
from headrace.state.store_base import RunState

FILE = textwrap.dedent(
    """
    from datetime import datetime
    from headrace import pipeline, task, Context

    @task
    def day(ctx: Context) -> str:
        return ctx.ds

    @pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1))
    def first():
        day()

    @pipeline(schedule=None)
    def second():
        day()
    """
)


@pytest.fixture
def pipeline_file(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / ".headrace"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "two.py"
    file.write_text(FILE)
    return file


def test_backfill_a_named_pipeline_with_whole_end_day(pipeline_file: Path, tmp_path: Path, capsys):
    code = run_app(
        [
            "backfill",
            f"{pipeline_file}:first",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--executor",
            "inprocess",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 succeeded, 0 skipped" in out
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        runs = store.list_runs("first")
    assert len(runs) == 2 and {r.state for r in runs} == {RunState.SUCCESS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-13-01", "--end", "2024-01-02"], "--start '2024-13-01' is not a date"),
        (["--start", "2024-01-05", "--end", "2024-01-02"], "--end 2024-01-02 is before --start"),
        (
            ["--start", "2024-01-01", "--end", "2024-01-02", "--executor", "proces"],
            "Did you mean 'process'",
        ),
    ],
)
def test_backfill_argument_errors_are_one_clear_line(pipeline_file: Path, capsys, args, message):
    assert run_app(["backfill", f"{pipeline_file}:first", *args]) == 2  # usage
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_backfill_needs_a_pipeline_name_when_the_file_has_several(pipeline_file: Path, capsys):
    assert (
        run_app(["backfill", str(pipeline_file), "--start", "2024-01-01", "--end", "2024-01-02"])
        == 4  # configuration: the pipeline file
    )
    assert "choose one with" in capsys.readouterr().err.replace("\n", " ")
    assert (
        run_app(
            ["backfill", f"{pipeline_file}:frist", "--start", "2024-01-01", "--end", "2024-01-02"]
        )
        == 4
    )
    assert "Did you mean 'first'" in capsys.readouterr().err.replace("\n", " ")


def test_scheduler_once_ignores_manual_pipelines(pipeline_file: Path, capsys):
    assert (
        run_app(["scheduler", str(pipeline_file), "--once", "--inline", "--executor", "inprocess"])
        == 0
    )
    out = capsys.readouterr().out
    assert "1 scheduled pipeline(s) (first [0 2 * * *])" in out
    assert "started first" in out  # catchup is off: the latest complete interval runs
