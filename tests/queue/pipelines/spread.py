"""Pipeline of the distributed-executor test: tasks report which worker ran them."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from headrace import Context, pipeline, task


def _tag() -> str:
    return os.environ.get("HR_WORKER_TAG", "driver")


@task
def items(ctx: Context) -> list[int]:
    return list(range(ctx.params["n"]))


@task
def work(x: int) -> dict[str, object]:
    time.sleep(0.4)  # long enough that both workers get some
    return {"x": x, "worker": _tag()}


@task
def victim(ctx: Context, results: list[dict[str, object]]) -> dict[str, object]:
    """After the fan-out: writes a marker naming its worker, then runs long enough to be killed."""
    marker = Path(ctx.params["marker_dir"]) / f"victim-{_tag()}-{os.getpid()}"
    marker.write_text(_tag())
    time.sleep(ctx.params["victim_s"])
    return {"workers": sorted({str(r["worker"]) for r in results}), "victim": _tag()}


@pipeline(start_date=datetime(2024, 1, 1), params={"n": 8, "marker_dir": "", "victim_s": 2.0})
def spread():
    victim(work.map(x=items()))
