"""``headrace run FILE --date D --rerun``: run a finished date again, every task cleared."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import open_store
from headrace.state.store_base import RunState

PIPELINE = textwrap.dedent("""
    from pathlib import Path
    from headrace import Context, pipeline, task

    @task
    def count(ctx: Context) -> int:
        marker = Path("calls.txt")
        marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
        return len(marker.read_text()) * ctx.params["factor"]

    @task
    def report(n: int) -> str:
        return f"n={n}"

    @pipeline(schedule="@daily", params={"factor": 1})
    def counted():
        report(count())
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "flows.py").write_text(PIPELINE)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run_app(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_rerun_runs_every_task_of_a_finished_date_again_in_the_same_run(home: Path, capsys) -> None:
    args = ("run", "flows.py", "--date", "2024-01-02", "--executor", "inprocess")
    assert cli(capsys, *args)[0] == 0
    code, out = cli(capsys, *args)
    assert code == 0 and "nothing ran" in out  # without --rerun the date is not run twice
    assert (home / "calls.txt").read_text() == "x"

    code, out = cli(capsys, *args, "--rerun", "-p", "factor=10")

    assert code == 0, out
    assert "nothing ran" not in out
    assert (home / "calls.txt").read_text() == "xx"
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        runs = store.list_runs("counted")
        assert len(runs) == 1 and runs[0].state == RunState.SUCCESS  # the same run, run again
        assert runs[0].params == {"factor": 10}
        tis = {t.task_id: t for t in store.get_task_instances(runs[0].run_id)}
    assert tis["count"].result_json == 20 and tis["report"].result_json == "n=20"
    assert tis["count"].attempt == 2  # attempts keep counting across the rerun


def test_rerun_needs_a_date(home: Path, capsys) -> None:
    code, out = cli(capsys, "run", "flows.py", "--rerun", "--executor", "inprocess")
    assert code == 2 and "--rerun needs --date" in out  # a usage error
