"""The Executor contract, run against every local executor (a remote one can join the list).

Work items are built by hand here, the way the engine builds them, so the executors
are checked on their own: outcomes, results, logs as events, failures and timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.engine import load_pipelines
from headrace.engine.attempt import run_work_item
from headrace.engine.staging import load_result
from headrace.executors import (
    Event,
    Executor,
    InProcessExecutor,
    Outcome,
    ProcessExecutor,
    ResultRef,
    RunInfo,
    WorkItem,
)

PIPELINES = Path(__file__).parent.parent / "engine" / "pipelines"
FACTORIES: dict[str, Callable[[], Executor]] = {
    "inprocess": lambda: InProcessExecutor(batch=4),
    "process": lambda: ProcessExecutor(concurrency=2),
}


@pytest.fixture(params=sorted(FACTORIES))
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    made = FACTORIES[request.param]()
    yield made
    made.shutdown(kill=True)


def item(
    tmp_path: Path, file: str, pipeline: str, task_id: str, map_index: int = -1, **extra
) -> WorkItem:
    day = datetime(2024, 3, 5, tzinfo=UTC)
    run = RunInfo(
        run_id="r1",
        pipeline=pipeline,
        logical_date=day,
        data_interval_start=day,
        data_interval_end=day,
        params=extra.pop("params", {}),
        settings=Settings(
            home=tmp_path, state_url="sqlite://", connections={"warehouse": "duckdb:///w.db"}
        ),
        staging_dir=str(tmp_path / "staging"),
    )
    path = PIPELINES / f"{file}.py"
    module = load_pipelines(path)[pipeline].module
    return WorkItem(
        run=run,
        pipeline_file=str(path),
        pipeline_module=module,
        task_id=task_id,
        map_index=map_index,
        attempt=1,
        **extra,
    )


def collect(executor: Executor, wanted: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for _ in range(200):
        outcomes += executor.wait(0.5)
        if len(outcomes) >= wanted:
            return outcomes
    raise AssertionError(f"only {len(outcomes)} of {wanted} outcomes arrived")


def test_outcomes_results_and_logs(executor: Executor, tmp_path: Path) -> None:
    events: list[Event] = []
    pipeline = load_pipelines(PIPELINES / "basic.py")["numbers"]
    executor.start(events.append, pipeline, run_work_item)
    assert executor.capacity >= 2
    executor.submit(item(tmp_path, "basic", "numbers", "extract", params={"n": 3}))
    executor.submit(
        item(tmp_path, "basic", "numbers", "square", 1, map_input=ResultRef("json", value=7))
    )

    outcomes = {o.task_id: o for o in collect(executor, 2)}

    extracted, squared = outcomes["extract"], outcomes["square"]
    assert (
        extracted.ok and extracted.result is not None and load_result(extracted.result) == [0, 1, 2]
    )
    assert (
        squared.ok and squared.result is not None and load_result(squared.result) == 50
    )  # 7 * 7 + 1
    assert outcomes["square"].map_index == 1
    assert "hello from extract" in outcomes["extract"].log
    # each event names the attempt it comes from: the live view files it under its task
    attempt = ("r1", "extract", -1, 1)
    about = {(e.kind, e.message): (e.run_id, e.task_id, e.map_index, e.attempt) for e in events}
    assert about[("log", "hello from extract")] == attempt
    assert about[("progress", "half way")] == attempt
    (progress,) = [e for e in events if e.kind == "progress"]
    assert (progress.done, progress.total) == (1, 2)
    assert extracted.started_at is not None and extracted.ended_at is not None
    assert extracted.started_at <= extracted.ended_at


def test_failures_say_whether_a_retry_can_help(executor: Executor, tmp_path: Path) -> None:
    executor.start(
        lambda event: None, load_pipelines(PIPELINES / "flaky.py")["broken"], run_work_item
    )
    executor.submit(item(tmp_path, "flaky", "broken", "terminal"))
    (terminal,) = collect(executor, 1)
    assert not terminal.ok and not terminal.retryable
    assert terminal.error_kind == "TerminalError"

    executor.shutdown()
    executor.start(
        lambda event: None, load_pipelines(PIPELINES / "flaky.py")["retrying"], run_work_item
    )
    executor.submit(item(tmp_path, "flaky", "retrying", "flaky", params={"succeed_on": 2}))
    (flaky,) = collect(executor, 1)
    assert not flaky.ok and flaky.retryable
    assert flaky.error == "ConnectionError: attempt 1 lost the connection"


def test_a_timeout_ends_the_attempt(executor: Executor, tmp_path: Path) -> None:
    executor.start(
        lambda event: None, load_pipelines(PIPELINES / "flaky.py")["slow"], run_work_item
    )
    executor.submit(item(tmp_path, "flaky", "slow", "sleepy", timeout=0.5))
    (outcome,) = collect(executor, 1)
    assert not outcome.ok
    assert outcome.error_kind == "timeout" and outcome.retryable
