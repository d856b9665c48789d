"""The in-process executor runs tasks in the driving process, in order, one at a time."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from headrace.engine import Runner
from headrace.executors import InProcessExecutor
from headrace.state.store_base import RunState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def test_tasks_run_in_the_driving_process(store, settings, pipelines) -> None:
    result = Runner(store, executor=InProcessExecutor(batch=2), settings=settings).run(
        pipelines("basic", "numbers"), DAY
    )
    assert result.state == RunState.SUCCESS
    assert result.result_of("total")["pid"] == os.getpid()


def test_a_small_batch_still_runs_every_mapped_element(store, settings, pipelines) -> None:
    result = Runner(store, executor=InProcessExecutor(batch=1), settings=settings).run(
        pipelines("basic", "numbers"), DAY, params={"n": 7}
    )
    assert result.result_of("square") == [x * x + 1 for x in range(7)]
