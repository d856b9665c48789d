"""The run engine end to end, in process: wiring, context, idempotency, params, logs, failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace.engine import Event, FakeClock, Runner
from headrace.pipeline import ParamError
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)


def states(result) -> dict[tuple[str, int], str]:
    return {(t.task_id, t.map_index): TaskState(t.state).value for t in result.tasks}


def test_run_passes_results_maps_and_orders_tasks(store, settings, pipelines) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        pipelines("basic", "numbers"), DAY
    )

    assert result.state == RunState.SUCCESS
    assert result.executed
    # extract -> [0, 1, 2, 3]; square(x, offset=1) mapped; total gathers the list in order
    assert result.result_of("square") == [1, 2, 5, 10]
    assert result.result_of("total")["sum"] == 18
    assert {i for (t, i) in states(result) if t == "square"} == {-1, 0, 1, 2, 3}
    assert set(states(result).values()) == {"success"}
    # cleanup is ordered after total by >> although it receives no data
    cleanup_started, total_ended = result.task("cleanup").started_at, result.task("total").ended_at
    assert (
        cleanup_started is not None and total_ended is not None and cleanup_started >= total_ended
    )
    assert result.task("total").result_kind == "json"


def test_context_exposes_run_interval_params_and_connections(store, settings, pipelines) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        pipelines("basic", "numbers"), DAY, params={"full_refresh": "yes"}
    )
    seen = result.result_of("describe")

    assert seen["run_id"] == result.run_id
    assert (seen["pipeline"], seen["task_id"], seen["attempt"]) == ("numbers", "describe", 1)
    assert seen["ds"] == "2024-03-05"
    assert seen["prev_ds"] == "2024-03-04"  # the previous scheduled logical date, as in Airflow
    assert seen["start"] == "2024-03-05T02:00:00+00:00"
    assert seen["end"] == "2024-03-06T02:00:00+00:00"
    assert seen["params"] == {"n": 4, "full_refresh": True}  # "yes" became a bool
    assert seen["staging_dir_exists"]
    assert seen["conn"] == "duckdb:///warehouse.db"


def test_triggering_again_returns_the_same_run_without_running_it(
    store, settings, pipelines
) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    first = runner.run(pipelines("basic", "numbers"), DAY)
    again = runner.run(pipelines("basic", "numbers"), DAY)

    assert again.run_id == first.run_id
    assert not again.executed
    assert [t.attempt for t in again.tasks] == [t.attempt for t in first.tasks]
    assert len(store.list_runs(pipeline="numbers")) == 1


def test_a_run_without_a_date_is_a_new_run_over_the_latest_complete_interval(
    store, settings, pipelines
) -> None:
    clock = FakeClock(datetime(2024, 5, 5, 13, 30, tzinfo=UTC))
    runner = Runner(store, executor="inprocess", settings=settings, clock=clock)
    first = runner.run(pipelines("basic", "numbers"))

    # Like an Airflow manual trigger: logical date "now", data interval the last one that ended.
    assert first.run.logical_date == datetime(2024, 5, 5, 13, 30, tzinfo=UTC)
    assert first.run.data_interval_start == datetime(2024, 5, 4, 2, 0, tzinfo=UTC)
    assert first.run.data_interval_end == datetime(2024, 5, 5, 2, 0, tzinfo=UTC)

    clock.sleep(300)
    second = runner.run(pipelines("basic", "numbers"))
    assert second.run_id != first.run_id
    assert second.executed
    assert second.run.data_interval_end == first.run.data_interval_end


def test_a_given_date_is_aligned_to_its_interval(store, settings, pipelines) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    result = runner.run(pipelines("basic", "numbers"), datetime(2024, 5, 5, 13, 30, tzinfo=UTC))
    assert result.run.data_interval_start == datetime(2024, 5, 5, 2, 0, tzinfo=UTC)
    assert result.run.data_interval_end == datetime(2024, 5, 6, 2, 0, tzinfo=UTC)


def test_params_are_typed_by_their_defaults(store, settings, pipelines) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    result = runner.run(pipelines("basic", "numbers"), DAY, params={"n": "2"})
    assert result.result_of("square") == [1, 2]

    with pytest.raises(ParamError, match=r"expects a int .* got 'two'"):
        runner.run(pipelines("basic", "numbers"), DAY, params={"n": "two"})
    with pytest.raises(ParamError, match="Did you mean 'n'"):
        runner.run(pipelines("basic", "numbers"), DAY, params={"nn": 3})


def test_logs_stdout_and_progress_are_captured(store, settings, pipelines) -> None:
    events: list[Event] = []
    result = Runner(store, executor="inprocess", settings=settings, on_event=events.append).run(
        pipelines("basic", "numbers"), DAY
    )

    text = "\n".join(r.text for r in store.get_logs(result.run_id, "extract"))
    assert "extracting for 2024-03-05" in text
    assert "hello from extract" in text
    progress = [e for e in events if e.kind == "progress"]
    assert [(e.task_id, e.done, e.total, e.message) for e in progress] == [
        ("extract", 1, 2, "half way")
    ]
    extract_states = [e.state for e in events if e.kind == "task" and e.task_id == "extract"]
    assert extract_states == ["running", "success"]
    assert [e.state for e in events if e.kind == "run"] == ["running", "success"]


def test_terminal_failure_fails_downstream_and_the_run(store, settings, pipelines) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        pipelines("flaky", "broken"), DAY
    )

    assert result.state == RunState.FAILED
    failed = result.task("terminal")
    assert failed.state == TaskState.FAILED
    assert failed.attempt == 1  # TerminalError is never retried, whatever the policy
    assert failed.error_kind == "TerminalError"
    assert "source table does not exist" in (failed.error or "")
    assert result.task("downstream_a").state == TaskState.UPSTREAM_FAILED
    assert result.task("downstream_b").state == TaskState.UPSTREAM_FAILED
    assert result.task("independent").state == TaskState.SUCCESS
    assert "terminal" in (result.run.error or "")
    logs = store.get_logs(result.run_id, "terminal")
    assert "Traceback" in logs[0].text


def test_a_value_that_is_neither_table_nor_json_is_a_clear_error(
    store, settings, pipelines
) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        pipelines("flaky", "odd"), DAY
    )

    ti = result.task("odd_result")
    assert ti.state == TaskState.FAILED
    assert ti.error_kind == "ResultTypeError"
    assert "pipeline 'odd', task 'odd_result'" in (ti.error or "")
    assert "JSON-serialisable" in (ti.error or "")


def test_unknown_executor_suggests_the_closest(store, settings) -> None:
    from headrace.errors import EngineError

    with pytest.raises(EngineError, match="Did you mean 'inprocess'"):
        Runner(store, executor="in-process", settings=settings)


def test_distributed_executor_by_name_takes_redis_from_the_settings(
    store, settings, monkeypatch
) -> None:
    from dataclasses import replace

    from headrace.config import QueueSettings
    from headrace.executors.distributed import DistributedExecutor

    # Below the edge the environment is not read: only the settings handed down count.
    monkeypatch.setenv("HEADRACE_QUEUE_PREFIX", "from-the-environment")
    handed = replace(settings, queue=QueueSettings("redis://127.0.0.1:6379/3", "hr-test-wiring"))
    executor = Runner(
        store, executor="distributed", settings=handed, concurrency=3
    )._make_executor()
    assert isinstance(executor, DistributedExecutor)
    assert executor.capacity == 3
    assert executor.connection.prefix == "hr-test-wiring"
    assert executor.connection.url == "redis://127.0.0.1:6379/3"


def test_unknown_executor_names_the_choices(store, settings) -> None:
    from headrace.errors import EngineError

    with pytest.raises(EngineError, match="Did you mean 'distributed'"):
        Runner(store, executor="distributd", settings=settings)
