"""Pipelines for the pool tests: two tasks of pool ``db`` that could run side by side."""

from __future__ import annotations

import time

from headrace import pipeline, task


@task(pool="db")
def load_a() -> str:
    time.sleep(0.3)
    return "a"


@task(pool="db")
def load_b() -> str:
    time.sleep(0.3)
    return "b"


@task
def free() -> str:
    return "no pool"


@pipeline(max_active_runs=2)  # two runs at once: only the pool limits their tasks
def pooled():
    load_a()
    load_b()
    free()


@task(pool="dbb")
def misnamed() -> None:
    return None


@pipeline
def unknown_pool():
    misnamed()


@task(pool="db")
def hold(ctx) -> None:
    """Take the db slot and keep it until the driving process is killed."""
    from pathlib import Path

    (Path(ctx.params["dir"]) / "holding").touch()
    time.sleep(60)


@pipeline(params={"dir": ""})
def holder():
    hold()
