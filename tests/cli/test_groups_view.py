"""``headrace run`` and ``headrace show`` list the tasks of a task group together, under its name."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import open_store

PIPELINE = textwrap.dedent("""
    from headrace import pipeline, task
    from headrace.pipeline import task_group

    @task
    def users() -> int:
        return 1

    @task
    def orders() -> int:
        return 2

    @task
    def report(a: int, b: int) -> int:
        return a + b

    @task
    def audit() -> None:
        return None

    @pipeline
    def grouped():
        first = audit()
        with task_group("extract") as extract:
            u, o = users(), orders()
        first >> extract
        report(u, o)
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "flows.py").write_text(PIPELINE)
    return tmp_path


def _lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip()]


def _position(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_run_summary_and_show_group_the_tasks(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(["run", "flows.py", "--date", "2024-01-02", "--executor", "inprocess"]) == 0
    summary = _lines(capsys.readouterr().out)
    header = _position(summary, r"^▸ extract$")
    assert _position(summary, r"^extract\.users\b") == header + 1
    assert _position(summary, r"^extract\.orders\b") == header + 2
    assert _position(summary, r"^report\b") > header + 2

    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        (run,) = store.list_runs(pipeline="grouped")
    assert run_app(["show", run.run_id]) == 0
    shown = _lines(capsys.readouterr().out)
    header = _position(shown, r"^▸ extract$")
    grouped = {_position(shown, r"^extract\.users\b"), _position(shown, r"^extract\.orders\b")}
    assert grouped == {header + 1, header + 2}
    assert _position(shown, r"^audit\b") < header < _position(shown, r"^report\b")


def test_the_live_view_shows_a_header_row_per_group(home: Path) -> None:
    from rich.console import Console

    from headrace.cli.run_commands import LiveView
    from headrace.engine import load_pipelines
    from headrace.executors.executor_base import Event

    pipeline = load_pipelines(home / "flows.py")["grouped"]
    console = Console(width=120, record=True, force_terminal=False)
    view = LiveView(pipeline, console)
    view.on_event(Event("task", "run1", "extract.users", state="running", attempt=1))
    console.print(view)
    lines = _lines(console.export_text())
    header = _position(lines, r"^▸ extract$")
    assert re.search(r"^extract\.users\s+running\s+1", lines[header + 1])
    assert re.search(r"^extract\.orders\s+queued", lines[header + 2])
    assert _position(lines, r"^audit\s+queued") < header < _position(lines, r"^report\s+queued")
