"""``headrace list`` imports only the pipeline files (or their local modules) that changed."""

from __future__ import annotations

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

SRC = str(Path(headrace.__file__).resolve().parents[1])
FLOW = textwrap.dedent("""
    import marker
    from headrace import pipeline, task

    @task
    def one() -> int:
        return marker.VALUE

    @pipeline(schedule=marker.SCHEDULE, tags=[marker.TAG])
    def flow():
        one()
""")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "flow.py").write_text(FLOW)
    (tmp_path / "flows" / "marker.py").write_text("VALUE = 1\nSCHEDULE = '@daily'\nTAG = 'first'\n")
    return tmp_path


def listed(project: Path) -> dict:
    """``headrace list flows --json`` in a fresh process, as a user runs it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "HEADRACE_HOME": str(project / "home"),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "list", "flows", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)["pipelines"]}


def _touch(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    while path.stat().st_mtime_ns == before:  # coarse clocks: make the change visible
        time.sleep(0.01)
        path.write_text(text)


def test_list_cache_follows_the_file_and_its_local_modules(project: Path) -> None:
    assert listed(project)["flow"]["tags"] == ["first"]
    assert (project / "home" / "cache" / "pipelines.json").exists()
    assert listed(project)["flow"]["tags"] == ["first"]  # from the cache
    _touch(project / "flows" / "marker.py", "VALUE = 1\nSCHEDULE = '@hourly'\nTAG = 'second'\n")
    second = listed(project)["flow"]
    assert second["tags"] == ["second"] and second["schedule"] == "@hourly"  # a neighbour changed
    _touch(project / "flows" / "flow.py", FLOW.replace("def flow():", "def renamed():"))
    assert set(listed(project)) == {"renamed"}  # the file itself changed


def test_in_process_list_still_works_twice(project: Path, capsys) -> None:
    for _ in range(2):
        capsys.readouterr()
        assert run_app(["list", "flows", "--json"]) == 0
        assert [p["name"] for p in json.loads(capsys.readouterr().out)["pipelines"]] == ["flow"]


def test_cached_list_imports_no_pipeline_file(project: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "HEADRACE_HOME": str(project / "home"),
    }
    probe = (
        "import sys\nfrom headrace.cli.typer_app import run_app\ncode = run_app(['list', 'flows'])\n"
        "print('IMPORTED', 'marker' in sys.modules, 'pyarrow' in sys.modules or 'pydantic' in sys.modules, code)\n"
    )
    first = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True
    )
    assert "IMPORTED True" in first.stdout, first.stdout + first.stderr
    again = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True
    )
    assert "IMPORTED False False 0" in again.stdout and "flow" in again.stdout, (
        again.stdout + again.stderr
    )


def test_root_help_needs_no_typer(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    probe = (
        "import sys\nsys.argv = ['headrace', '--help']\nfrom headrace.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('LOADED', [m for m in ('typer', 'rich', 'sqlalchemy', 'pyarrow') if m in sys.modules], code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert "LOADED [] 0" in done.stdout, done.stdout + done.stderr
    from headrace.cli.commands import COMMANDS

    for name, (_, short) in COMMANDS.items():
        assert f"  {name}" in done.stdout and short in done.stdout
    assert "--install-completion" in done.stdout and "Exit codes:" in done.stdout


SYNC_ONLY = textwrap.dedent("""
    from headrace import destination, file_source, sync

    orders = sync(
        "orders",
        source=file_source("orders.csv"),
        destination=destination("warehouse", table="orders", mode="replace"),
    )
    orders_daily = orders.pipeline(name="orders_daily", schedule="@daily", tags=["sync"])
""")


def test_a_folder_lists_pipelines_made_of_a_sync(project: Path) -> None:
    """``sync(...).pipeline(...)`` defines a pipeline as ``@pipeline`` does (the demo is one):
    a folder's list shows it; a helper module that only mentions pipelines is no error."""
    (project / "flows" / "orders.py").write_text(SYNC_ONLY)
    (project / "flows" / "notes.py").write_text("# run it with some_sync.pipeline(...)\nX = 1\n")
    pipelines = listed(project)
    assert sorted(pipelines) == ["flow", "orders_daily"]
    assert (pipelines["orders_daily"]["tasks"], pipelines["orders_daily"]["tags"]) == (1, ["sync"])
    assert pipelines["orders_daily"]["file"].endswith("orders.py")
