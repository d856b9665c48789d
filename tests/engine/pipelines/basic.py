"""Pipelines used by the engine tests (module level, so process workers can find them)."""

from __future__ import annotations

import os
from datetime import datetime

from headrace import Context, Retry, pipeline, task


@task
def extract(ctx: Context) -> list[int]:
    ctx.log.info("extracting for %s", ctx.ds)
    print("hello from extract")
    ctx.progress(1, 2, "half way")
    return list(range(ctx.params["n"]))


@task
def square(x: int, offset: int = 0) -> int:
    return x * x + offset


@task
def total(values: list[int]) -> dict:
    return {"sum": sum(values), "pid": os.getpid()}


@task
def describe(ctx: Context) -> dict:
    return {
        "run_id": ctx.run_id,
        "pipeline": ctx.pipeline,
        "task_id": ctx.task_id,
        "ds": ctx.ds,
        "prev_ds": ctx.prev_ds,
        "start": ctx.data_interval_start.isoformat(),
        "end": ctx.data_interval_end.isoformat(),
        "attempt": ctx.attempt,
        "params": ctx.params,
        "staging_dir_exists": ctx.staging_dir.is_dir(),
        "conn": ctx.connection("warehouse"),
    }


@task
def cleanup() -> str:
    return "cleaned"


@pipeline(
    schedule="0 2 * * *",
    start_date=datetime(2024, 1, 1),
    params={"n": 4, "full_refresh": False},
    defaults=dict(retries=Retry(attempts=2, delay=0)),
)
def numbers():
    values = extract()
    squares = square.partial(offset=1).map(x=values)
    total(squares) >> cleanup()
    describe()
