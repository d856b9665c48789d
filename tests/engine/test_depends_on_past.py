"""depends_on_past: a task runs only if it succeeded (or was skipped) in the previous run, as in Airflow."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.engine import Runner, RunResult
from headrace.pipeline import Context
from headrace.state.store_base import RunState, TaskState

DAY1 = datetime(2024, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
BROKEN: set[str] = set()


@task
def extract(ctx: Context) -> str:
    return ctx.ds


@task(depends_on_past=True)
def load(day: str) -> str:
    if day in BROKEN:
        raise RuntimeError(f"warehouse down on {day}")
    return f"loaded {day}"


@task
def report(day: str) -> str:
    return f"report {day}"


@pipeline(name="past_etl", schedule="@daily")
def past_etl():
    day = extract()
    load(day)
    report(day)


@pipeline(name="past_default", schedule="@daily", defaults={"depends_on_past": True})
def past_default():
    load(extract())


def test_a_task_that_failed_in_the_previous_run_is_held_back_until_that_run_is_fixed(
    store, settings
) -> None:
    BROKEN.clear()
    BROKEN.add("2024-03-01")
    runner = Runner(store, executor="inprocess", settings=settings)
    first = runner.run(past_etl, DAY1)
    assert first.task("load").state == TaskState.FAILED

    second = runner.run(past_etl, DAY2)

    held = second.task("load")
    assert held.state == TaskState.UPSTREAM_FAILED and held.attempt == 0  # never tried
    assert held.error_kind == "depends_on_past"
    assert f"failed in the previous run {first.run_id}" in (held.error or "")
    assert second.task("report").state == TaskState.SUCCESS  # other tasks are not held back
    assert second.state == RunState.FAILED

    BROKEN.clear()
    assert runner.resume(first.run_id, past_etl).state == RunState.SUCCESS
    resumed = runner.resume(second.run_id, past_etl)
    assert resumed.state == RunState.SUCCESS
    assert resumed.result_of("load") == "loaded 2024-03-02"


def test_the_first_run_and_a_good_previous_run_let_the_task_run(store, settings) -> None:
    BROKEN.clear()
    runner = Runner(store, executor="inprocess", settings=settings)
    assert runner.run(past_default, DAY1).state == RunState.SUCCESS  # no previous run
    # "previous" is by logical date: an older day that failed, run later, does not count for DAY2.
    BROKEN.add("2024-02-28")
    early = runner.run(past_default, DAY1 - timedelta(days=2))
    assert early.task("load").error_kind == "RuntimeError"  # ran: nothing before it
    assert (
        runner.run(past_default, DAY2).state == RunState.SUCCESS
    )  # previous is DAY1, which succeeded


def test_a_pipeline_default_applies_to_every_task_and_a_task_may_opt_out(store, settings) -> None:
    @pipeline(name="past_mixed", schedule="@daily", defaults={"depends_on_past": True})
    def past_mixed():
        load(extract.override(depends_on_past=False)())

    assert past_mixed.task("load").depends_on_past is True
    assert past_mixed.task("extract").depends_on_past is False
    BROKEN.clear()
    BROKEN.add("2024-03-01")
    runner = Runner(store, executor="inprocess", settings=settings)
    runner.run(past_mixed, DAY1)
    second = runner.run(past_mixed, DAY2)
    assert second.task("extract").state == TaskState.SUCCESS
    assert second.task("load").error_kind == "depends_on_past"


def test_the_task_waits_while_the_previous_run_is_still_going(store, settings) -> None:
    BROKEN.clear()
    gate = threading.Event()
    started = threading.Event()

    @task(depends_on_past=True)
    def slow_load(day: str) -> str:
        if day == "2024-03-01":
            started.set()
            assert gate.wait(20)
        return day

    @pipeline(name="past_wait", schedule="@daily")
    def past_wait():
        slow_load(extract())

    first_runner = Runner(store, executor="inprocess", settings=settings)
    results: dict[str, RunResult] = {}
    worker = threading.Thread(
        target=lambda: results.setdefault("first", first_runner.run(past_wait, DAY1))
    )
    worker.start()
    assert started.wait(20)
    threading.Timer(1.5, gate.set).start()

    second = Runner(store, executor="inprocess", settings=settings).run(past_wait, DAY2)
    worker.join(20)

    assert results["first"].state == RunState.SUCCESS
    assert second.state == RunState.SUCCESS
    # It began only after the previous run's task had ended.
    began, previous_end = (
        second.task("slow_load").started_at,
        results["first"].task("slow_load").ended_at,
    )
    assert began is not None and previous_end is not None and began >= previous_end
