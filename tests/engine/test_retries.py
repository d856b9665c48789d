"""Retry policy arithmetic and the engine following it, with an injected clock (no sleeping)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from headrace import Retry
from headrace.engine import FakeClock, Runner
from headrace.errors import DefinitionError
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def test_delay_grows_by_backoff_and_is_capped() -> None:
    policy = Retry(
        attempts=6, delay=timedelta(minutes=5), backoff=2.0, max_delay=timedelta(minutes=30)
    )
    waits = [policy.delay_before(n).total_seconds() for n in range(2, 7)]
    assert waits == [300, 600, 1200, 1800, 1800]
    assert policy.delay_before(1) == timedelta(0)


def test_jitter_stays_within_its_fraction_and_the_cap() -> None:
    policy = Retry(attempts=3, delay=100, backoff=1.0, max_delay=105, jitter=0.1)
    rng = random.Random(7)
    waits = [policy.delay_before(2, rng).total_seconds() for _ in range(200)]
    assert min(waits) >= 90 and max(waits) <= 105
    assert len(set(waits)) > 50  # really random


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attempts": 0}, "attempts is the total number of tries"),
        ({"backoff": 0.5}, "backoff must be a number >= 1"),
        ({"jitter": 2}, r"jitter must be a fraction in \[0, 1\]"),
        ({"delay": "5m"}, "must be a timedelta or a number of seconds"),
        ({"delay": -1}, "must not be negative"),
    ],
)
def test_bad_policy_values_are_definition_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        Retry(**kwargs)


def test_int_retries_means_retries_after_the_first_try() -> None:
    assert Retry.coerce(2).attempts == 3
    assert Retry.coerce(None).attempts == 1


def test_engine_waits_exactly_as_the_policy_says(store, settings, pipelines) -> None:
    clock = FakeClock(datetime(2024, 3, 6, tzinfo=UTC))
    runner = Runner(store, executor="inprocess", settings=settings, clock=clock)
    result = runner.run(pipelines("flaky", "retrying"), DAY)

    assert result.state == RunState.SUCCESS
    ti = result.task("flaky")
    assert ti.attempt == 3
    assert result.result_of("after") == 30
    # delay 5 min, then 10 min capped at max_delay 8 min
    assert clock.slept == [300.0, 480.0]
    attempts = sorted({r.attempt for r in store.get_logs(result.run_id, "flaky")})
    assert attempts == [1, 2]  # the successful third try logged nothing
    assert "attempt 2 lost the connection" in store.get_logs(result.run_id, "flaky")[1].text


def test_up_for_retry_is_stored_with_the_next_try_time(store, settings, pipelines) -> None:
    clock = FakeClock(datetime(2024, 3, 6, tzinfo=UTC))
    seen: list[tuple[str, datetime | None]] = []

    def watch(event) -> None:
        if event.kind == "task" and event.task_id == "flaky" and event.state == "up_for_retry":
            run = store.list_runs(pipeline="retrying")[0]
            ti = next(t for t in store.get_task_instances(run.run_id) if t.task_id == "flaky")
            seen.append((ti.state, ti.next_try_at))

    Runner(store, executor="inprocess", settings=settings, clock=clock, on_event=watch).run(
        pipelines("flaky", "retrying"), DAY
    )
    start = datetime(2024, 3, 6, tzinfo=UTC)
    assert seen == [
        ("up_for_retry", start + timedelta(seconds=300)),
        ("up_for_retry", start + timedelta(seconds=780)),
    ]


def test_exhausted_retries_fail_the_task_and_its_downstream(store, settings, pipelines) -> None:
    clock = FakeClock()
    result = Runner(store, executor="inprocess", settings=settings, clock=clock).run(
        pipelines("flaky", "retrying"), DAY, params={"succeed_on": 9}
    )
    assert result.state == RunState.FAILED
    assert result.task("flaky").state == TaskState.FAILED
    assert result.task("flaky").attempt == 3
    assert result.task("flaky").error_kind == "ConnectionError"
    assert result.task("after").state == TaskState.UPSTREAM_FAILED
    assert len(clock.slept) == 2


def test_in_process_timeout_interrupts_the_task(store, settings, pipelines) -> None:
    began = time.monotonic()
    result = Runner(store, executor="inprocess", settings=settings, clock=FakeClock()).run(
        pipelines("flaky", "slow"), DAY
    )
    elapsed = time.monotonic() - began

    ti = result.task("sleepy")
    assert ti.state == TaskState.FAILED
    assert ti.error_kind == "timeout"
    assert ti.attempt == 2  # a timeout is retried by the policy
    assert "timeout of 1 s" in (ti.error or "")
    assert elapsed < 20  # two 1 s timeouts, not two 30 s sleeps
