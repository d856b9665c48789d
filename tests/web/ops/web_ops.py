"""The pipeline the web action tests operate: a task group, a mapped task, a branch, a fragile load.

``load`` fails while the file named by the ``fail_file`` param exists, so a test can make a
run fail, remove the file and retry. Every task body appends its name to ``<dir>/ran.txt``,
so a test counts how often each task really ran (across processes).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from headrace import Context, Retry, pipeline, task, task_group


def _note(ctx: Context, name: str) -> None:
    if ctx.params["dir"]:
        with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
            f.write(name + "\n")


@task(retries=Retry(attempts=2, delay=0.4))
def numbers(ctx: Context) -> list[int]:
    """With the ``flaky`` param, fails its first try: the run page shows the retry and its wait."""
    if ctx.params["flaky"] and ctx.attempt == 1:
        raise ConnectionError("source not ready (fails once on purpose)")
    return list(range(int(ctx.params["n"])))


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task.branch
def pick(ctx: Context, value: int) -> str:
    return "load"


@task
def load(ctx: Context, value: int) -> int:
    _note(ctx, "load")
    time.sleep(float(ctx.params["pause"]))
    if ctx.params["fail_file"] and Path(ctx.params["fail_file"]).exists():
        raise RuntimeError("warehouse not ready (fail_file exists)")
    return value


@task
def skip_report() -> str:
    return "skipped"


@task(sla=timedelta(hours=2))
def publish(ctx: Context, value: int) -> str:
    _note(ctx, "publish")
    return f"published {value}"


@pipeline(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    owner="data-team",
    tags=["demo", "web"],
    params={"n": 12, "fail_file": "", "dir": "", "pause": 0.0, "flaky": False, "api_token": ""},
)
def web_ops():
    """Squares numbers, sums them and publishes the total.

    Operated by the web UI tests: trigger, retry, resume, backfill.
    """
    with task_group("prepare"):
        t = total(square.map(x=numbers()))
    chosen = pick(t)
    loaded = load(t)
    chosen >> [loaded, skip_report()]
    publish(loaded)
