"""``headrace run``, ``resume`` and ``list`` against a real SQLite store in a temporary home."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import RunState, open_store

PIPELINE = textwrap.dedent("""
    from pathlib import Path
    from headrace import Context, pipeline, task

    @task
    def extract(ctx: Context) -> list[int]:
        return list(range(ctx.params["n"]))

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def check(ctx: Context, values: list[int]) -> int:
        if Path(ctx.params["flag"]).exists():
            raise ValueError("flag file present")
        return sum(values)

    @pipeline(schedule="@daily", tags=["demo"], owner="data-team", params={"n": 3, "flag": "/nonexistent"})
    def demo():
        check(double.map(x=extract()))

    @pipeline
    def other():
        extract()
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


def test_run_shows_each_task_and_a_summary(home: Path, capsys) -> None:
    code, out = cli(
        capsys,
        "run",
        "flows.py:demo",
        "--date",
        "2024-01-02",
        "-p",
        "n=4",
        "--executor",
        "inprocess",
    )

    assert code == 0, out
    assert "check" in out and "double ×4" in out
    assert "of demo for 2024-01-02 00:00 UTC: success" in out
    assert "check → 12" in out  # the last task's result closes the output
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        (run,) = store.list_runs(pipeline="demo")
        assert run.params == {"n": 4, "flag": "/nonexistent"}
        check = next(t for t in store.get_task_instances(run.run_id) if t.task_id == "check")
        assert check.result_json == 12


def test_a_failed_run_exits_1_and_resume_finishes_it(home: Path, capsys) -> None:
    flag = home / "flag"
    flag.touch()
    code, out = cli(
        capsys,
        "run",
        "flows.py:demo",
        "--date",
        "2024-01-02",
        "-p",
        f"flag={flag}",
        "--executor",
        "inprocess",
    )
    assert code == 1
    assert "ValueError: flag file present" in out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        (run,) = store.list_runs(pipeline="demo")
    assert f"headrace resume {run.run_id}" in out

    flag.unlink()
    code, out = cli(capsys, "resume", run.run_id, "--executor", "inprocess")
    assert code == 0, out
    assert "success" in out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        assert store.get_run(run.run_id).state == RunState.SUCCESS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_and_resume_stop_their_worker_processes_and_send_their_lineage(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command closes its Runner: no warm pool worker outlives it, no lineage event waits."""
    events = home / "lineage.jsonl"
    monkeypatch.setenv("HEADRACE_LINEAGE_TRANSPORT", "file")
    monkeypatch.setenv("HEADRACE_LINEAGE_FILE", str(events))
    flag = home / "flag"
    flag.touch()
    argv = ("--executor", "process", "--concurrency", "2")
    code, out = cli(
        capsys, "run", "flows.py:demo", "--date", "2024-01-02", "-p", f"flag={flag}", *argv
    )
    assert code == 1, out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        (run,) = store.list_runs(pipeline="demo")
        pids = {t.pid for t in store.get_task_instances(run.run_id) if t.pid is not None}
    workers = pids - {os.getpid()}
    assert workers, "the tasks ran in pool worker processes"
    assert [pid for pid in workers if _alive(pid)] == []
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["eventType"] for e in sent if e["job"]["name"] == "demo"] == ["START", "FAIL"]

    flag.unlink()
    code, out = cli(capsys, "resume", run.run_id, *argv)
    assert code == 0, out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        check = next(t for t in store.get_task_instances(run.run_id) if t.task_id == "check")
    assert check.pid is not None and check.pid != os.getpid()
    assert not _alive(check.pid)
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["eventType"] for e in sent if e["job"]["name"] == "demo"][-1] == "COMPLETE"


def test_a_file_with_several_pipelines_needs_a_name(home: Path, capsys) -> None:
    code, out = cli(capsys, "run", "flows.py")
    assert code == 4  # configuration: the pipeline file
    assert "defines several pipelines (demo, other)" in out

    code, out = cli(capsys, "run", "flows.py:dmeo")
    assert code == 4
    assert "Did you mean 'demo'?" in out


@pytest.mark.parametrize(
    "argv, message, expected_code",
    [
        (["run", "flows.py:demo", "--param", "n"], "expected NAME=VALUE", 2),
        (["run", "flows.py:demo", "--date", "yesterday"], "expected an ISO date", 2),
        (["run", "flows.py:demo", "--executor", "inproces"], "Did you mean 'inprocess'?", 2),
        (["resume", "r1", "--executor", "distribute"], "Did you mean 'distributed'?", 2),
        (["web", "--executor", "distributed"], "choose one of process, inprocess.", 2),
        (["mcp", "--executor", "proces"], "Did you mean 'process'?", 2),
        (["run", "flows.py:demo", "-p", "n=three"], "parameter 'n' expects a int", 2),
        (["run", "flwos.py"], "Did you mean 'flows.py'?", 4),
    ],
)
def test_mistakes_are_one_clear_line(
    home: Path, capsys, argv: list[str], message: str, expected_code: int
) -> None:
    code, out = cli(capsys, *argv)
    assert code == expected_code
    assert message in " ".join(out.split())
    assert "Traceback" not in out


def test_list_shows_pipelines_of_a_folder_and_reports_broken_files(home: Path, capsys) -> None:
    code, out = cli(capsys, "list", ".")
    assert code == 0, out
    assert "demo" in out and "@daily" in out and "demo" in out and "data-team" in out
    assert "other" in out and "manual" in out

    (home / "broken.py").write_text(
        "from headrace import pipeline\nimport missing_module_xyz\n\n@pipeline\ndef x(): ...\n"
    )
    (home / "test_flows.py").write_text(
        "raise RuntimeError('test modules are never imported')\n@pipeline\n"
    )
    code, out = cli(capsys, "list", ".")
    assert code == 4
    assert "broken.py:2" in out and "missing_module_xyz" in out
