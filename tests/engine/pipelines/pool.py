"""Pipelines for the process-pool tests: parallelism, worker crash, pid of the worker."""

from __future__ import annotations

import os
import time
from pathlib import Path

from headrace import Context, Retry, pipeline, task


def _rendezvous(ctx: Context, mine: str, other: str) -> int:
    """Wait (up to 20 s) until the other task has started: only possible if both run at once."""
    folder = Path(ctx.params["dir"])
    (folder / mine).touch()
    deadline = time.monotonic() + 20
    while not (folder / other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never started while {mine} was running")
        time.sleep(0.02)
    return os.getpid()


@task
def left(ctx: Context) -> int:
    return _rendezvous(ctx, "left", "right")


@task
def right(ctx: Context) -> int:
    return _rendezvous(ctx, "right", "left")


@pipeline(params={"dir": ""})
def together():
    left()
    right()


@task(retries=Retry(attempts=2, delay=0))
def crashes(ctx: Context) -> str:
    marker = Path(ctx.params["dir"]) / "crashed"
    if not marker.exists():
        marker.touch()
        os._exit(3)  # the worker process dies without a word
    return "survived"


@pipeline(params={"dir": ""})
def crashing():
    crashes()
