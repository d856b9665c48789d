"""A pipeline whose second task waits for a file, so a test can kill or stop the driver mid-run.

Each task appends its name to ``<marker dir>/ran.txt`` so the test can count executions.
"""

from __future__ import annotations

import time
from pathlib import Path

from headrace import Context, pipeline, task


def _mark(ctx: Context, name: str) -> None:
    with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
        f.write(name + "\n")


@task
def first(ctx: Context) -> int:
    _mark(ctx, "first")
    return 41


@task
def wait_for_go(ctx: Context, value: int) -> int:
    _mark(ctx, "wait_for_go")
    go = Path(ctx.params["dir"]) / "go"
    while not go.exists():
        time.sleep(0.05)
    return value + 1


@task
def last(ctx: Context, value: int) -> int:
    _mark(ctx, "last")
    return value


@pipeline(params={"dir": ""})
def crashable():
    last(wait_for_go(first()))
