"""``list``, ``scheduler``, ``docs``, ``web --pipelines`` and ``mcp``'s listing see one set of
pipelines in a folder (engine/loader.py ``discover``), run as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import headrace

SRC = str(Path(headrace.__file__).resolve().parents[1])
CLI = [sys.executable, "-c", "from headrace.cli import main; main()"]

DECORATED = textwrap.dedent("""
    from datetime import datetime

    from headrace import pipeline, task
    from helpers import ONE

    @task
    def one() -> int:
        return ONE

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 1))
    def decorated():
        one()
""")
SYNCED = textwrap.dedent("""
    from datetime import datetime
    from pathlib import Path

    from headrace import destination, file_source, sync

    load = sync(
        "load_people",
        source=file_source(str(Path(__file__).with_name("people.csv"))),
        destination=destination("lake", table="people", mode="replace"),
    )
    synced = load.pipeline(name="synced", schedule="@daily", start_date=datetime(2024, 1, 1))
""")
NESTED = DECORATED.replace("def decorated", "def nested").replace("from helpers", "from deep")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    (flows / "team").mkdir(parents=True)
    (flows / "a_decorated.py").write_text(DECORATED)
    (flows / "b_synced.py").write_text(SYNCED)
    (flows / "people.csv").write_text("id,name\n1,ada\n")
    # a helper module: imported by a pipeline file, defines none (and its text says Pipeline()
    (flows / "helpers.py").write_text(
        "ONE = 1\n\ndef describe(p):  # p: a Pipeline() object\n    return p\n"
    )
    (flows / "team" / "deep.py").write_text("ONE = 2\n")
    (flows / "team" / "c_nested.py").write_text(NESTED)
    return tmp_path


def _env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "HEADRACE_HOME": str(project / "home"),
        "HEADRACE_STATE_URL": f"sqlite:///{project / 'state.db'}",
        "HEADRACE_CONN_LAKE": f"duckdb:///{project / 'lake.duckdb'}",
    }


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=project, env=_env(project), capture_output=True, text=True, timeout=180
    )


def _listed(project: Path) -> tuple[set[str], list[str], int]:
    done = _run(project, "list", "flows", "--json")
    out = json.loads(done.stdout)
    return {p["name"] for p in out["pipelines"]}, out["errors"], done.returncode


def _scheduled(project: Path) -> tuple[str, str, int]:
    done = _run(project, "scheduler", "flows", "--once", "--inline", "--executor", "inprocess")
    return done.stdout, done.stderr, done.returncode


def _documented(project: Path) -> tuple[set[str], str, int]:
    done = _run(project, "docs", "flows", "--out", str(project / "catalog"))
    catalog = project / "catalog" / "catalog.json"
    names = set()
    if catalog.exists():
        names = {p["name"] for p in json.loads(catalog.read_text())["pipelines"]}
    return names, done.stderr, done.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _served(project: Path) -> dict:
    """``headrace web --pipelines flows``: GET /api/pipelines of the real server."""
    port = _free_port()
    server = subprocess.Popen(
        [*CLI, "web", "--port", str(port), "--pipelines", "flows"], cwd=project, env=_env(project),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/pipelines", timeout=30).json()
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _told_by_mcp(project: Path) -> dict:
    """``headrace mcp --pipelines flows`` over stdio: its list_pipelines answer."""
    mcp = pytest.importorskip("mcp")
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=CLI[0], args=[*CLI[1:], "mcp", "--pipelines", "flows"], env=_env(project),
        cwd=str(project),
    )  # fmt: skip

    async def main() -> Any:
        async with mcp.Client(params, read_timeout_seconds=60) as client:
            return await client.call_tool("list_pipelines", {})

    result = anyio.run(main)
    answer = "\n".join(c.text for c in result.content if hasattr(c, "text"))
    assert not result.is_error, answer
    return json.loads(answer)


EXPECTED = {"decorated", "synced", "nested"}


def test_every_command_sees_the_same_pipelines_of_a_folder(project: Path) -> None:
    names, errors, code = _listed(project)
    assert (names, errors, code) == (EXPECTED, [], 0)

    out, err, code = _scheduled(project)
    assert code == 0, err
    assert "3 scheduled pipeline(s)" in out
    assert all(name in out for name in EXPECTED), out

    documented, err, code = _documented(project)
    assert code == 0, err
    assert documented == EXPECTED

    served = _served(project)
    assert {p["name"] for p in served["pipelines"]} == EXPECTED
    assert served["errors"] == []

    told = _told_by_mcp(project)
    assert {p["name"] for p in told["pipelines"]} == EXPECTED


def test_a_broken_file_is_reported_by_each_and_hides_nothing(project: Path) -> None:
    (project / "flows" / "d_broken.py").write_text(
        "from headrace import pipeline\n\nimport not_a_module_anywhere\n\n\n@pipeline\ndef broken(): ...\n"
    )
    names, errors, code = _listed(project)
    assert names == EXPECTED and code == 4
    assert len(errors) == 1 and "d_broken.py:3" in errors[0]

    # like Airflow's scheduler: the broken file is reported, the others are scheduled
    out, err, code = _scheduled(project)
    assert code == 0, err
    assert "3 scheduled pipeline(s)" in out
    assert "d_broken.py:3" in err and "not_a_module_anywhere" in err

    documented, err, code = _documented(project)
    assert code == 4 and documented == set()  # no catalog that silently lacks a pipeline
    assert "d_broken.py:3" in err

    served = _served(project)
    assert {p["name"] for p in served["pipelines"]} == EXPECTED
    assert [e["location"] for e in served["errors"]] == [str(project / "flows" / "d_broken.py:3")]

    told = _told_by_mcp(project)
    assert {p["name"] for p in told["pipelines"]} == EXPECTED
    assert [e["file"] for e in told["errors"]] == [str(project / "flows" / "d_broken.py")]


def test_one_name_in_two_files_names_both(project: Path) -> None:
    (project / "flows" / "e_again.py").write_text(DECORATED)
    names, errors, code = _listed(project)
    assert code == 4 and len(errors) == 1
    assert "a_decorated.py" in errors[0] and "e_again.py" in errors[0]
    out, err, code = _scheduled(project)
    assert "a_decorated.py" in err and "e_again.py" in err
    documented, err, code = _documented(project)
    assert code == 4 and "a_decorated.py" in err and "e_again.py" in err
