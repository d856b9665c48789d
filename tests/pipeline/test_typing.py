"""The definition API type-checks as users write it: mypy over a probe of the usual calls,
plus a probe of wrong calls that mypy must reject. (The examples are checked with the
rest of the code by tests/test_static.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
from headrace import Context, pipeline, task


@task
def extract(ctx: Context, n: int = 3) -> list[int]:
    return list(range(n))


@task(retries=2, timeout=60)
def total(ctx: Context, rows: list[int]) -> int:
    return sum(rows)


@task
def plain(x: int) -> int:
    return x + 1


@task.branch
def choose(ctx: Context) -> str:
    return "plain"


@pipeline(schedule=None)
def flow() -> None:
    rows = extract(n=5)  # inside a pipeline body headrace passes the context
    plain(total(rows))
    choose()
    total.partial().map(rows=[[1], [2]])


def unit_test(ctx: Context) -> None:
    rows: list[int] = extract(ctx, n=3)  # called directly, the context comes first
    assert total(ctx, rows) == 3 and plain(1) == 2
"""

BAD = """
from headrace import Context, task


@task
def extract(ctx: Context, n: int = 3) -> list[int]:
    return list(range(n))


@task
def plain(x: int) -> int:
    return x + 1


extract(n="three")  # BAD 1
plain()  # BAD 2
text: str = plain(1)  # BAD 3
"""


@pytest.mark.slow
def test_mypy_accepts_the_api_as_written_and_rejects_wrong_calls(tmp_path: Path) -> None:
    # The project's cache (.mypy_cache): headrace's own modules are analysed once for this
    # and tests/test_static.py.
    good, bad = tmp_path / "good_probe.py", tmp_path / "bad_probe.py"
    good.write_text(GOOD)
    bad.write_text(BAD)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(good),
            str(bad),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "bad_probe.py" not in e], done.stdout
    bad_lines = {int(m[1]) for e in errors if (m := re.search(r"bad_probe\.py:(\d+):", e))}
    expected = {n for n, line in enumerate(BAD.splitlines(), 1) if "# BAD" in line}
    assert bad_lines == expected, done.stdout
