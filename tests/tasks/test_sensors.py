"""Sensors: files, SQL conditions, other pipelines' runs; poke interval and timeout."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headrace import pipeline, task
from headrace.config import Settings
from headrace.engine import Runner
from headrace.errors import DefinitionError, ScheduleError, TerminalError
from headrace.pipeline import Context
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState
from headrace.tasks import (
    SensorNotReady,
    SensorTimeout,
    UpstreamRunFailed,
    file_sensor,
    pipeline_sensor,
    sql_sensor,
)


def test_file_sensor_waits_for_the_days_file(tmp_path: Path, make_ctx):
    target = tmp_path / "in" / "orders_20240102.csv"
    sensor = file_sensor(
        str(tmp_path / "in" / "orders_{{ ds_nodash }}.csv"),
        task_id="wait_orders",
        poke_interval=0.05,
        timeout=10,
    )
    ctx, log = make_ctx()

    def arrive() -> None:
        target.parent.mkdir()
        target.write_text("id\n1\n")

    timer = threading.Timer(0.3, arrive)
    timer.start()
    started = time.monotonic()
    try:
        assert sensor.fn(ctx) == [str(target)]
    finally:
        timer.cancel()
    assert time.monotonic() - started >= 0.25  # it really waited for the file
    assert any("holds after" in line for line in log.lines)


def test_sensor_timeout_is_terminal_schedule_error(tmp_path: Path, make_ctx):
    sensor = file_sensor(
        str(tmp_path / "never_*.csv"), task_id="never", poke_interval=0.05, timeout=0.3
    )
    ctx, _ = make_ctx()
    started = time.monotonic()
    with pytest.raises(
        SensorTimeout, match=r"pipeline 'customer_etl', task 'never', run run_01: timed out"
    ) as info:
        sensor.fn(ctx)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 5
    assert isinstance(info.value, ScheduleError) and isinstance(info.value, TerminalError)
    assert (info.value.task, info.value.run_id) == ("never", "run_01") and info.value.pokes >= 1


def test_sql_sensor_on_duckdb(tmp_path: Path, make_ctx):
    import duckdb

    db = tmp_path / "wh.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE loads (day VARCHAR)")
    sensor = sql_sensor(
        "SELECT count(*) FROM loads WHERE day = :ds",
        conn="wh",
        task_id="loaded",
        poke_interval=0.05,
        timeout=10,
    )
    ctx, _ = make_ctx(connections={"wh": f"duckdb:///{db}"})

    def land() -> None:
        with duckdb.connect(str(db)) as con:
            con.execute("INSERT INTO loads VALUES ('2024-01-01'), ('2024-01-02')")

    timer = threading.Timer(0.3, land)
    timer.start()
    try:
        assert sensor.fn(ctx) == 1
    finally:
        timer.cancel()


def _store_with_run(ctx, pipeline: str, state: RunState, logical_date: datetime):
    store = open_store(ctx.settings.state_url)
    run, _ = store.create_run(
        pipeline, logical_date, logical_date, logical_date + timedelta(days=1)
    )
    store.update_run(run.run_id, state=state)
    return store, run


def test_pipeline_sensor_waits_for_the_same_interval(make_ctx):
    ctx, _ = make_ctx()
    store, run = _store_with_run(ctx, "extract_crm", RunState.RUNNING, ctx.logical_date)
    # another day's success must not count
    other, _ = store.create_run(
        "extract_crm", ctx.logical_date - timedelta(days=1), ctx.logical_date, ctx.logical_date
    )
    store.update_run(other.run_id, state=RunState.SUCCESS)
    sensor = pipeline_sensor("extract_crm", task_id="wait_crm", poke_interval=0.05, timeout=10)
    timer = threading.Timer(0.3, lambda: store.update_run(run.run_id, state=RunState.SUCCESS))
    timer.start()
    try:
        assert sensor.fn(ctx) == run.run_id
    finally:
        timer.cancel()
        store.close()


def test_pipeline_sensor_fails_fast_when_upstream_failed(make_ctx):
    ctx, _ = make_ctx()
    store, run = _store_with_run(ctx, "extract_crm", RunState.FAILED, ctx.logical_date)
    store.close()
    sensor = pipeline_sensor("extract_crm", task_id="wait_crm", poke_interval=0.05, timeout=10)
    with pytest.raises(UpstreamRunFailed, match=f"headrace resume {run.run_id}"):
        sensor.fn(ctx)


def test_sensor_definition_errors():
    with pytest.raises(DefinitionError, match="sets the task's retries itself"):
        file_sensor("/tmp/x", task_id="s", mode="reschedule", retries=3)
    with pytest.raises(DefinitionError, match="Did you mean 'poke'"):
        file_sensor("/tmp/x", task_id="s", mode="pokee")
    with pytest.raises(DefinitionError, match="poke_interval must be positive"):
        file_sensor("/tmp/x", task_id="s", poke_interval=0)


def test_logical_date_is_utc_aware(make_ctx):
    ctx, _ = make_ctx()
    assert ctx.logical_date.tzinfo is UTC


# -- reschedule mode, through the real engine -----------------------------------------


@task
def make_flag(ctx: Context) -> str:
    flag = Path(ctx.params["dir"]) / "ready.flag"
    flag.touch()
    return str(flag)


@task
def after(found: list[str]) -> int:
    return len(found)


def _flag_pipeline(mode: str):
    wait = file_sensor(
        "{{ params.dir }}/ready.flag",
        task_id="wait_flag",
        poke_interval=0.1,
        timeout=3 if mode == "reschedule" else 0.4,
        mode=mode,
    )

    @pipeline(name=f"flag_{mode}", params={"dir": ""})
    def flags():
        after(wait())  # defined first: the sensor is submitted before make_flag
        make_flag()

    return flags


def _run(tmp_path: Path, mode: str):
    settings = Settings(home=tmp_path / ".headrace", state_url=f"sqlite:///{tmp_path / 'state.db'}")
    with open_store(settings.state_url) as store:
        return Runner(store, executor="inprocess", settings=settings).run(
            _flag_pipeline(mode), datetime(2024, 1, 1), params={"dir": str(tmp_path)}
        )


def test_reschedule_mode_frees_the_slot_for_other_tasks(tmp_path: Path):
    result = _run(tmp_path, "reschedule")
    assert result.state == RunState.SUCCESS
    sensor = result.task("wait_flag")
    assert sensor.attempt >= 2  # it poked, let make_flag run, then poked again
    assert result.result_of("after") == 1
    assert not list((tmp_path / ".headrace").rglob("_sensor_*"))  # wait state cleaned up


def test_poke_mode_holds_the_slot_so_the_same_wait_times_out(tmp_path: Path):
    # the in-process executor has one slot at a time: a poking sensor blocks make_flag
    result = _run(tmp_path, "poke")
    sensor = result.task("wait_flag")
    assert result.state == RunState.FAILED and sensor.state == TaskState.FAILED
    assert sensor.error_kind == "SensorTimeout" and sensor.attempt == 1  # terminal: not retried


def test_reschedule_mode_times_out_across_attempts(tmp_path: Path, make_ctx):
    sensor = file_sensor(
        str(tmp_path / "never"), task_id="never", poke_interval=0.05, timeout=0.2, mode="reschedule"
    )
    assert sensor.retries.attempts == 6 and sensor.retries.delay.total_seconds() == 0.05
    ctx, _ = make_ctx()
    ctx.staging_dir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(SensorNotReady):
        sensor.fn(ctx)
    time.sleep(0.25)
    with pytest.raises(SensorTimeout, match="timed out"):
        sensor.fn(ctx)
    with pytest.raises(SensorNotReady):  # the clock restarts for a resumed run
        sensor.fn(ctx)


POOL_PIPELINE = """
from pathlib import Path
from headrace import pipeline, task, Context
from headrace.tasks import file_sensor

wait = file_sensor("{{ params.dir }}/ready.flag", task_id="wait_flag", poke_interval=0.1, timeout=20,
                   mode="reschedule")

@task
def make_flag(ctx: Context) -> None:
    (Path(ctx.params["dir"]) / "ready.flag").touch()

@pipeline(params={"dir": ""})
def one_slot():
    wait()
    make_flag()
"""


def test_reschedule_mode_on_a_one_worker_process_pool(tmp_path: Path):
    from headrace.engine import load_pipelines

    file = tmp_path / "one_slot.py"
    file.write_text(POOL_PIPELINE)
    settings = Settings(home=tmp_path / ".headrace", state_url=f"sqlite:///{tmp_path / 'state.db'}")
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="process", concurrency=1, settings=settings)
        result = runner.run(
            load_pipelines(file)["one_slot"], datetime(2024, 1, 1), params={"dir": str(tmp_path)}
        )
    assert result.state == RunState.SUCCESS
    assert (
        result.task("wait_flag").attempt >= 2
        and result.task("make_flag").state == TaskState.SUCCESS
    )
