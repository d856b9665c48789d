"""The local process pool: parallel tasks, results across processes, timeouts kill, crashes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from headrace.engine import Runner
from headrace.executors import ProcessExecutor
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def test_ready_tasks_run_in_parallel_workers(store, settings, pipelines, tmp_path: Path) -> None:
    result = Runner(store, executor="process", settings=settings, concurrency=2).run(
        pipelines("pool", "together"), DAY, params={"dir": str(tmp_path)}
    )
    assert result.state == RunState.SUCCESS, [t.error for t in result.tasks]
    pids = {result.result_of("left"), result.result_of("right")}
    assert len(pids) == 2 and os.getpid() not in pids


def test_results_of_every_kind_cross_process_boundaries(store, settings, pipelines) -> None:
    # Use Polars and pyarrow in this process first: with plain fork, workers then deadlock
    # on the thread pools they inherit (the pool starts its workers from a fork server).
    Runner(store, executor="inprocess", settings=settings).run(pipelines("tables", "tables"), DAY)
    result = Runner(store, executor="process", settings=settings).run(
        pipelines("tables", "tables"), datetime(2024, 3, 6, tzinfo=UTC)
    )
    assert result.state == RunState.SUCCESS
    assert result.result_of("got_lazy") == {"kind": "polars.LazyFrame", "rows": 2}
    assert result.result_of("got_pandas") == {"kind": "pandas.DataFrame", "rows": 3}
    assert result.result_of("got_stream") == {"kind": "pyarrow.RecordBatchReader", "rows": 3}


def test_mapping_logs_and_context_work_in_workers(store, settings, pipelines) -> None:
    result = Runner(store, executor=ProcessExecutor(concurrency=2), settings=settings).run(
        pipelines("basic", "numbers"), DAY
    )
    assert result.state == RunState.SUCCESS
    assert result.result_of("square") == [1, 2, 5, 10]
    assert result.result_of("total")["pid"] != os.getpid()
    text = "\n".join(r.text for r in store.get_logs(result.run_id, "extract"))
    assert "hello from extract" in text and "extracting for 2024-03-05" in text


def test_a_timeout_kills_the_worker_and_is_recorded(store, settings, pipelines) -> None:
    began = time.monotonic()
    result = Runner(store, executor="process", settings=settings, concurrency=1).run(
        pipelines("flaky", "slow"), DAY
    )
    elapsed = time.monotonic() - began

    ti = result.task("sleepy")
    assert ti.state == TaskState.FAILED
    assert (ti.error_kind, ti.attempt) == ("timeout", 2)
    assert "its worker was killed" in (ti.error or "")
    assert elapsed < 20  # two 1 s timeouts, not 30 s sleeps
    # the killed worker is really gone
    assert ti.pid is not None
    try:
        os.kill(ti.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_a_worker_that_dies_is_reported_and_retried(
    store, settings, pipelines, tmp_path: Path
) -> None:
    result = Runner(store, executor="process", settings=settings, concurrency=1).run(
        pipelines("pool", "crashing"), DAY, params={"dir": str(tmp_path)}
    )
    assert result.state == RunState.SUCCESS
    assert result.result_of("crashes") == "survived"
    assert result.task("crashes").attempt == 2
    logs = store.get_logs(result.run_id, "crashes")
    assert logs[0].attempt == 1 and "exited with code 3" in logs[0].text
