"""What CI checks besides behaviour: types and style of all the code.

mypy runs over the package, its tests and the examples exactly as ``mypy`` alone does
(files and options are pyproject's ``[tool.mypy]``); ruff lints and checks the
formatting of every Python file of the project.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ["src", "tests", "examples", "bench", "scripts"]


def _run(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_mypy_is_clean_over_the_package_tests_and_examples() -> None:
    # The cache (.mypy_cache, git-ignored) makes a rerun take seconds; cold, ~40-60 s.
    done = _run("mypy", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues found" in done.stdout


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", *CODE, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted() -> None:
    done = _run("ruff", "format", "--check", *CODE, timeout=120)
    assert done.returncode == 0, (
        "run `ruff format src tests examples bench scripts`:\n" + done.stdout
    )
