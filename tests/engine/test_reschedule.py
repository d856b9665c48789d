"""Reschedule: a task asking to run again later is up_for_reschedule and uses up no try."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.engine import FakeClock, Runner
from headrace.executors.executor_base import Event
from headrace.pipeline import Reschedule
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 7, 1, tzinfo=UTC)
POKES: list[int] = []


@task(retries=0)
def waits_three_times() -> str:
    POKES.append(len(POKES) + 1)
    if len(POKES) <= 3:
        raise Reschedule(f"not ready yet (poke {len(POKES)})")
    return "ready"


waits_three_times.reschedule_delay = timedelta(minutes=2)


@task
def meanwhile() -> str:
    return "ran while the other waited"


@pipeline
def waiting():
    waits_three_times()
    meanwhile()


def test_reschedule_runs_again_after_the_delay_without_using_a_try(store, settings) -> None:
    POKES.clear()
    events: list[Event] = []
    clock = FakeClock(DAY)
    runner = Runner(
        store, executor="inprocess", settings=settings, clock=clock, on_event=events.append
    )

    result = runner.run(waiting, DAY)

    assert result.state == RunState.SUCCESS  # retries=0, yet three reschedules did not fail it
    assert result.result_of("waits_three_times") == "ready"
    ti = result.task("waits_three_times")
    assert ti.attempt == 4 and ti.error is None
    assert clock.slept == [120.0, 120.0, 120.0]  # reschedule_delay between pokes
    states = [e.state for e in events if e.kind == "task" and e.task_id == "waits_three_times"]
    assert states == ["running", "up_for_reschedule"] * 3 + ["running", "success"]
    assert result.task("meanwhile").state == TaskState.SUCCESS


@task(retries=1)
def breaks_after_waiting() -> str:
    POKES.append(len(POKES) + 1)
    if len(POKES) <= 2:
        raise Reschedule("not yet")
    raise ConnectionError("really broken")


@pipeline
def waits_then_breaks():
    breaks_after_waiting()


def test_real_failures_still_have_their_whole_retry_budget(store, settings) -> None:
    POKES.clear()
    clock = FakeClock(DAY)
    result = Runner(store, executor="inprocess", settings=settings, clock=clock).run(
        waits_then_breaks, DAY
    )

    ti = result.task("breaks_after_waiting")
    assert ti.state == TaskState.FAILED and ti.error_kind == "ConnectionError"
    assert ti.attempt == 4  # 2 reschedules + the first try + its one retry
    assert len(POKES) == 4
