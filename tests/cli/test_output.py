"""What the CLI prints: verbatim text, JSON documents, exit codes, unwrapped pipes, fast help.

Every command runs through :func:`headrace.cli.run_app` (or a real process) against a
real SQLite store in a temporary home.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import headrace
from headrace.cli import run_app
from headrace.cli.typer_app import COMMANDS, app

SRC = str(Path(headrace.__file__).resolve().parents[1])
LONG = "a_really_long_task_name_that_would_wrap_in_eighty_columns_" + "x" * 40

PIPELINE = textwrap.dedent(f"""
    from headrace import pipeline, task

    @task
    def ok() -> dict:
        return {{"note": "kept [bold]as written[/bold] and [pools]"}}

    @task
    def {LONG}(value: dict) -> None:
        raise ValueError("bad value in [word] at [red]row 3[/red]; see [pools]")

    @task(pool="warehouse")
    def pooled() -> int:
        return 1

    @pipeline(schedule="@daily", tags=["[tag]"], owner="[team]")
    def brackets():
        {LONG}(ok())

    @pipeline
    def needs_pool():
        pooled()
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEADRACE_STATE_URL", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # output goes to a pipe (capsys)
    (tmp_path / "flows.py").write_text(PIPELINE)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_app(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _failed_run(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = cli(
        capsys, "run", "flows.py:brackets", "--date", "2024-01-02", "--executor", "inprocess"
    )
    assert code == 1, out + err  # exit code 1: the run failed
    code, out, _ = cli(capsys, "runs", "--json")
    return json.loads(out)["runs"][0]["run_id"]


def test_bracketed_text_is_printed_verbatim(home: Path, capsys) -> None:
    code, out, err = cli(
        capsys, "run", "flows.py:brackets", "--date", "2024-01-02", "--executor", "inprocess"
    )
    assert code == 1
    assert "bad value in [word] at [red]row 3[/red]; see [pools]" in out
    run_id = json.loads(cli(capsys, "runs", "--json")[1])["runs"][0]["run_id"]
    code, out, _ = cli(capsys, "show", run_id, "--verbose")
    assert code == 0 and "bad value in [word] at [red]row 3[/red]; see [pools]" in out
    code, out, _ = cli(capsys, "list", "flows.py")
    assert code == 0 and "@daily" in out and "[tag]" in out and "[team]" in out
    code, out, _ = cli(capsys, "pools")
    assert code == 0 and "[pools] in headrace.toml" in out
    code, out, err = cli(capsys, "run", "flows.py:needs_pool", "--executor", "inprocess")
    assert code != 0 and "under [pools] in headrace.toml" in err
    code, out, err = cli(
        capsys, "scheduler", "flows.py", "--once", "--inline", "--executor", "inprocess"
    )
    assert "brackets [@daily]" in out, out + err


def test_piped_output_is_never_wrapped(home: Path, capsys) -> None:
    run_id = _failed_run(capsys)
    code, out, _ = cli(capsys, "show", run_id)
    assert code == 0
    lines = out.splitlines()
    assert any(LONG in line and "failed" in line for line in lines), out  # one row, not folded
    assert any(f"{LONG}: ValueError: bad value in [word]" in line for line in lines), out


def test_json_documents(home: Path, capsys) -> None:
    run_id = _failed_run(capsys)
    runs = json.loads(cli(capsys, "runs", "--json")[1])
    assert [(r["run_id"], r["pipeline"], r["state"]) for r in runs["runs"]] == [
        (run_id, "brackets", "failed")
    ]
    assert runs["runs"][0]["logical_date"].startswith("2024-01-02")
    shown = json.loads(cli(capsys, "show", run_id, "--json")[1])
    assert shown["run"]["run_id"] == run_id
    tasks = {t["task_id"]: t for t in shown["tasks"]}
    assert tasks["ok"]["state"] == "success" and tasks["ok"]["result_json"]["note"].endswith(
        "[pools]"
    )
    assert tasks[LONG]["state"] == "failed" and "[word]" in tasks[LONG]["error"]
    assert shown["checks"] == []
    logs = json.loads(cli(capsys, "logs", run_id, "--json")[1])
    assert logs["run_id"] == run_id
    assert any("ValueError" in log["text"] and log["task_id"] == LONG for log in logs["logs"])
    checks = json.loads(cli(capsys, "checks", run_id, "--json")[1])
    assert checks == {"run_id": run_id, "checks": []}
    listed = json.loads(cli(capsys, "list", ".", "--json")[1])
    names = {p["name"]: p for p in listed["pipelines"]}
    assert names["brackets"]["schedule"] == "@daily" and names["brackets"]["tags"] == ["[tag]"]
    assert names["needs_pool"]["tasks"] == 1 and listed["errors"] == []
    pools = json.loads(cli(capsys, "pools", "--json")[1])
    assert pools == {"pools": []}


def test_exit_codes(home: Path, capsys) -> None:
    assert cli(capsys, "run", "flows.py:brackets", "--executor", "inprocess")[0] == 1  # run failed
    assert cli(capsys, "nosuchcommand")[0] == 2  # usage
    assert cli(capsys, "runs", "--limit", "zero")[0] == 2
    assert cli(capsys, "run", "flows.py:brackets", "--date", "yesterday")[0] == 2
    assert cli(capsys, "show", "01nosuchrun")[0] == 3  # not found
    assert cli(capsys, "logs", "01nosuchrun", "--json")[0] == 3
    (home / "headrace.toml").write_text("[pools\nbroken")
    assert cli(capsys, "pools")[0] == 4  # configuration
    (home / "headrace.toml").unlink()
    started = time.monotonic()
    code, _, err = cli(
        capsys, "queue", "counts", "x", "--redis-url", "redis://:pw-xyz-secret@127.0.0.1:1/0"
    )
    assert code == 5 and "redis://:***@127.0.0.1:1/0" in err and "pw-xyz-secret" not in err
    assert time.monotonic() - started < 10  # fails at once (a retry loop took minutes)


def test_unreachable_state_store_is_exit_code_5(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_STATE_URL", "postgresql://etl:pg-s3cret-pw@127.0.0.1:1/test")
    code, out, err = cli(capsys, "runs")
    assert code == 5, out + err
    assert (
        "postgresql+psycopg://etl:***@127.0.0.1:1/test" in err and "pg-s3cret-pw" not in out + err
    )


def test_every_lazy_command_is_defined_where_listed_with_its_help() -> None:
    """``headrace --help`` shows COMMANDS without importing; each entry must match its command."""
    from typer.main import get_command_from_info

    for name, (module, short) in COMMANDS.items():
        importlib.import_module(module)
        infos = {info.name: info for info in app.registered_commands}
        groups = {group.name: group for group in app.registered_groups}
        assert name in infos or name in groups, (name, module)
        if name in infos:
            command = get_command_from_info(
                infos[name], pretty_exceptions_short=True, rich_markup_mode=None
            )
            assert (command.help or "").split("\n")[0].strip() == short, name


def test_help_and_completion_without_heavy_imports() -> None:
    code = (
        "import sys\nfrom headrace.cli.typer_app import run_app\n"
        "assert run_app(['--help']) == 0\n"
        "heavy = [m for m in ('sqlalchemy', 'duckdb', 'pyarrow', 'polars', 'redis', 'rich') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout and "--install-completion" in done.stdout
    assert "backfill" in done.stdout and "pools" in done.stdout
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from headrace.cli import main; main()",
            "--show-completion",
            "bash",
        ],
        capture_output=True,
        text=True,
        env={**env, "SHELL": "/bin/bash"},
        timeout=60,
    )
    assert shown.returncode == 0 and "complete" in shown.stdout, shown.stdout + shown.stderr
