"""The README runs as written: every shell command, Python block and TOML block.

The blocks run in order in a fresh folder holding a copy of ``examples/``, with
``headrace`` and ``python`` on the PATH as a user has them after installing. ``RUN_ID``
becomes the newest run's id and ``[TASK]`` (an optional argument) is left out.
Long-running services (``scheduler``, ``web``, ``worker``) are started, must answer
(the scheduler's first line, the web UI's /api/health) and are then stopped.

Skipped, and only these (:data:`SKIP`): the two setup scripts, which create a venv and
pip-install the project (CI does that itself) — ``scripts/test.sh`` would also run
this very test suite.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

import headrace

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SRC = str(Path(headrace.__file__).resolve().parents[1])
#: Commands not run, with why (keep this list tiny).
SKIP = {
    "bash scripts/demo.sh": "creates .venv and pip-installs the project; its pipeline runs below and in tests/examples",
    "bash scripts/test.sh": "creates .venv and runs this whole test suite (this test included)",
}
SERVICES = ("headrace scheduler", "headrace web", "headrace worker")
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)

pytestmark = pytest.mark.slow


def blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the README, in order."""
    return [(m[1], m[2]) for m in _BLOCK.finditer(README.read_text())]


def shell_lines(text: str) -> list[str]:
    """The commands of a shell block: continuations joined, trailing comments removed."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        line = re.split(r"\s{2,}#\s", line, maxsplit=1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "examples",
        tmp_path / "examples",
        ignore=shutil.ignore_patterns(".headrace", "__pycache__"),
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "headrace").write_text(
        f'#!/bin/sh\nexec {sys.executable} -c "from headrace.cli import main; main()" "$@"\n'
    )
    (bin_dir / "headrace").chmod(0o755)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    return tmp_path


class Session:
    """The reader's terminal: one folder, one environment, commands run one after another."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_") and k != "COLUMNS"
        }
        self.env["PATH"] = f"{folder / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["PYTHONPATH"] = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])
        self.env["HEADRACE_REDIS_URL"] = os.environ.get(
            "HEADRACE_REDIS_URL", "redis://127.0.0.1:6379/0"
        )

    def newest_run(self) -> str:
        done = self.run("headrace runs --json --limit 1")
        return json.loads(done.stdout)["runs"][0]["run_id"]

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def line(self, command: str) -> None:
        if command.startswith("export "):
            for pair in shlex.split(command)[1:]:
                name, _, value = pair.partition("=")
                self.env[name] = value
            return
        if "RUN_ID" in command:
            command = command.replace("RUN_ID", self.newest_run())
        command = command.replace(" [TASK]", "")
        if command.startswith(SERVICES):
            self.service(command)
            return
        done = self.run(command)
        assert done.returncode == 0, (
            f"{command!r} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )

    def service(self, command: str) -> None:
        """Start a long-running command, wait until it answers, stop it with SIGTERM."""
        # Its own process group: the runs a scheduler launched are stopped with it.
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            self._wait_for_answer(command, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._stop_group(process.pid)

    @staticmethod
    def _stop_group(group: int) -> None:
        """SIGTERM, then SIGKILL, the process group of a service this test started."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            time.sleep(3)

    @staticmethod
    def _wait_for_answer(command: str, process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        if command.startswith("headrace web"):
            port = re.search(r"--port (\d+)", command)
            url = f"http://127.0.0.1:{port[1] if port else 8321}/api/health"
            while time.monotonic() < deadline:
                assert process.poll() is None, f"{command!r} ended: {process.communicate()}"
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        assert answer.status == 200
                        return
                except OSError:
                    time.sleep(0.3)
            raise AssertionError(f"{command!r} did not answer on {url} within 60 s")
        assert process.stdout is not None
        first = process.stdout.readline()  # the scheduler and worker say what they serve
        assert first and process.poll() is None, f"{command!r}: {first!r} {process.communicate()}"


def test_readme_runs_as_written(folder: Path) -> None:
    session = Session(folder)
    ran = 0
    for number, (language, text) in enumerate(blocks()):
        if language == "toml":
            tomllib.loads(text)
        elif language == "python":
            file = folder / f"readme_block_{number}.py"
            file.write_text(text)
            session.line(f"python {file.name}")  # imports and defines
            session.line(f"headrace run {file.name} --executor inprocess")  # and runs
            ran += 1
        elif language == "bash":
            for command in shell_lines(text):
                if command in SKIP:
                    continue
                session.line(command)
                ran += 1
    assert ran >= 18  # the README's commands were found


def test_readme_skips_only_what_it_lists() -> None:
    commands = [c for language, text in blocks() if language == "bash" for c in shell_lines(text)]
    assert set(SKIP) <= set(commands)  # a skipped command that left the README leaves SKIP too
    assert len(SKIP) <= 2
