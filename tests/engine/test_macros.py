"""Template macros with Airflow's meanings, seen by tasks and shell templates through the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.engine import Runner
from headrace.pipeline import Context
from headrace.state.store_base import RunState
from headrace.tasks import shell_task


@task
def macros(ctx: Context) -> dict[str, str | None]:
    return {
        "ds": ctx.ds,
        "ds_nodash": ctx.ds_nodash,
        "ts": ctx.ts,
        "prev_ds": ctx.prev_ds,
        "next_ds": ctx.next_ds,
        "start": ctx.data_interval_start.isoformat(),
        "end": ctx.data_interval_end.isoformat(),
        "prev_start": ctx.prev_data_interval_start.isoformat()
        if ctx.prev_data_interval_start
        else None,
        "prev_end": ctx.prev_data_interval_end.isoformat() if ctx.prev_data_interval_end else None,
    }


@pipeline(name="daily_macros", schedule="0 2 * * *", start_date=datetime(2024, 1, 1))
def daily_macros():
    macros()
    shell_task("echo {{ ds }} {{ prev_ds }} {{ next_ds }} {{ ts_nodash }}", task_id="echo")()


def test_prev_ds_is_the_previous_logical_date_not_the_interval_start(store, settings) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        daily_macros, datetime(2024, 1, 2, 2, tzinfo=UTC), trigger="backfill"
    )

    assert result.state == RunState.SUCCESS
    assert result.result_of("macros") == {
        "ds": "2024-01-02",
        "ds_nodash": "20240102",
        "ts": "2024-01-02T02:00:00+00:00",
        "prev_ds": "2024-01-01",
        "next_ds": "2024-01-03",
        "start": "2024-01-02T02:00:00+00:00",
        "end": "2024-01-03T02:00:00+00:00",
        "prev_start": "2024-01-01T02:00:00+00:00",
        "prev_end": "2024-01-02T02:00:00+00:00",
    }
    logs = "\n".join(r.text for r in store.get_logs(result.run_id, "echo"))
    assert "2024-01-02 2024-01-01 2024-01-03 20240102T020000" in logs


def test_intervals_follow_the_timetable_across_a_dst_change_and_a_month(store, settings) -> None:
    @pipeline(name="paris_monthly", schedule="0 2 1 * *", timezone="Europe/Paris")
    def paris_monthly():
        macros()

    # April 1st 02:00 in Paris is 00:00 UTC (summer time); March 1st was 01:00 UTC (winter).
    result = Runner(store, executor="inprocess", settings=settings).run(
        paris_monthly, datetime(2024, 4, 1, 2)
    )
    seen = result.result_of("macros")
    assert seen["prev_ds"] == "2024-03-01" and seen["next_ds"] == "2024-05-01"
    assert (
        seen["prev_start"] == "2024-03-01T01:00:00+00:00"
        and seen["prev_end"] == "2024-04-01T00:00:00+00:00"
    )


def test_a_timedelta_schedule_and_no_schedule(store, settings) -> None:
    @pipeline(name="every_6h", schedule=timedelta(hours=6))
    def every_6h():
        macros()

    @pipeline(name="manual_macros")
    def manual_macros():
        macros()

    runner = Runner(store, executor="inprocess", settings=settings)
    six = runner.run(every_6h, datetime(2024, 1, 2, 6, tzinfo=UTC)).result_of("macros")
    assert (
        six["prev_start"] == "2024-01-02T00:00:00+00:00"
        and six["prev_end"] == "2024-01-02T06:00:00+00:00"
    )
    manual = runner.run(manual_macros, datetime(2024, 1, 2, tzinfo=UTC)).result_of("macros")
    assert manual["prev_ds"] is None and manual["next_ds"] is None and manual["ds"] == "2024-01-02"


def test_a_manual_run_between_schedule_points_uses_airflows_previous_and_following_schedule(
    store, settings
) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        daily_macros, datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
    )
    seen = result.result_of("macros")
    assert (seen["ds"], seen["prev_ds"], seen["next_ds"]) == (
        "2024-01-02",
        "2024-01-02",
        "2024-01-03",
    )
    assert seen["prev_start"] == "2024-01-02T02:00:00+00:00"  # the schedule point before 15:30


def test_airflows_manual_interval_keeps_the_macros_on_the_schedule(store, settings) -> None:
    @pipeline(name="ending_macros", schedule="0 2 * * *", manual_interval="ending")
    def ending_macros():
        macros()

    seen = (
        Runner(store, executor="inprocess", settings=settings)
        .run(ending_macros, datetime(2024, 1, 2, 2, tzinfo=UTC))
        .result_of("macros")
    )
    assert (seen["start"], seen["end"]) == (
        "2024-01-01T02:00:00+00:00",
        "2024-01-02T02:00:00+00:00",
    )
    assert (seen["ds"], seen["prev_ds"], seen["next_ds"]) == (
        "2024-01-02",
        "2024-01-01",
        "2024-01-03",
    )
