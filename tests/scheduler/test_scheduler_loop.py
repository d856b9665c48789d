"""The scheduler loop with an injected clock, a real SQLite store and the real engine."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.engine import FakeClock
from headrace.observe.alerts import Alerter, WebhookChannel
from headrace.pipeline import Context, Pipeline
from headrace.scheduler import InlineLauncher, Scheduler, SlaLedger
from headrace.state.store_base import RunRecord, RunState

EXECUTED: list[tuple[str, str]] = []


@task
def record(ctx: Context) -> str:
    EXECUTED.append((ctx.pipeline, ctx.logical_date.isoformat()))
    return ctx.ds


def daily(**options) -> Pipeline:
    options.setdefault("schedule", "0 2 * * *")
    options.setdefault("start_date", datetime(2024, 1, 1))

    @pipeline(name=options.pop("name", "daily"), **options)
    def _p():
        record()

    return _p


def make_scheduler(pipelines, store, settings, clock, **kw) -> Scheduler:
    launcher = kw.pop("launcher", None) or InlineLauncher(
        store, settings, executor="inprocess", runner_options={"clock": clock}
    )
    return Scheduler(pipelines, store, launcher=launcher, clock=clock, **kw)


def logical_dates(store, name="daily") -> list[datetime]:
    return sorted(r.logical_date for r in store.list_runs(name, limit=1000))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_catchup_runs_every_missed_interval_in_order(store, settings, clock):
    EXECUTED.clear()
    p = daily(catchup=True)
    report = make_scheduler([p], store, settings, clock).tick()
    assert [r.logical_date for r in report.started] == [
        utc(2024, 1, 1, 2),
        utc(2024, 1, 2, 2),
        utc(2024, 1, 3, 2),
    ]
    assert [("daily", utc(2024, 1, d, 2).isoformat()) for d in (1, 2, 3)] == EXECUTED
    runs = store.list_runs("daily")
    assert {r.state for r in runs} == {RunState.SUCCESS} and {r.trigger for r in runs} == {
        "scheduled"
    }
    assert runs[0].data_interval_end == utc(2024, 1, 4, 2)
    assert "next run due at 2024-01-05T02:00:00+00:00" in report.waiting["daily"]


def test_catchup_off_runs_only_the_latest_interval(store, settings, clock):
    p = daily(catchup=False)
    make_scheduler([p], store, settings, clock).tick()
    assert logical_dates(store) == [utc(2024, 1, 3, 2)]


def test_restart_neither_misses_nor_duplicates(store, settings, clock):
    EXECUTED.clear()
    p = daily(catchup=True)
    make_scheduler([p], store, settings, clock).tick()
    # "restart": a new scheduler object, the clock moved two days on
    clock.current = utc(2024, 1, 6, 3)
    second = make_scheduler([p], store, settings, clock)
    second.tick()
    second.tick()
    assert logical_dates(store) == [utc(2024, 1, d, 2) for d in range(1, 6)]
    assert len(EXECUTED) == 5 == len(set(EXECUTED))


def test_end_date_stops_the_schedule(store, settings, clock):
    p = daily(catchup=True, end_date=datetime(2024, 1, 2, 2))
    clock.current = utc(2024, 2, 1)
    report = make_scheduler([p], store, settings, clock).tick()
    assert logical_dates(store) == [utc(2024, 1, 1, 2), utc(2024, 1, 2, 2)]
    assert report.waiting["daily"] == "schedule ended (end_date)"


def test_manual_runs_do_not_move_the_schedule_and_are_not_duplicated(store, settings, clock):
    EXECUTED.clear()
    p = daily(catchup=True)
    store.create_run(
        "daily", utc(2024, 1, 2, 2), utc(2024, 1, 2, 2), utc(2024, 1, 3, 2), {}, "manual"
    )
    store.update_run(store.find_run("daily", utc(2024, 1, 2, 2)).run_id, state=RunState.SUCCESS)
    make_scheduler([p], store, settings, clock).tick()
    assert logical_dates(store) == [utc(2024, 1, d, 2) for d in (1, 2, 3)]
    assert [d for _, d in EXECUTED] == [
        utc(2024, 1, 1, 2).isoformat(),
        utc(2024, 1, 3, 2).isoformat(),
    ]


class HoldingLauncher:
    """Starts nothing: runs stay QUEUED, as if their drivers were still busy."""

    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, pipeline, run: RunRecord) -> None:
        self.launched.append(run.run_id)

    def running(self) -> set[str]:
        return set(self.launched)

    def shutdown(self, wait: bool = True) -> None:
        pass


def test_max_active_runs_counts_active_runs_in_the_store(store, settings, clock):
    p = daily(catchup=True, max_active_runs=2)
    clock.current = utc(2024, 1, 8)
    launcher = HoldingLauncher()
    scheduler = make_scheduler([p], store, settings, clock, launcher=launcher)
    report = scheduler.tick()
    assert len(report.started) == 2 and "max_active_runs=2 reached" in report.waiting["daily"]
    assert scheduler.tick().started == []
    store.update_run(launcher.launched[0], state=RunState.SUCCESS)
    launcher.launched.pop(0)
    assert [r.logical_date for r in scheduler.tick().started] == [utc(2024, 1, 3, 2)]
    assert logical_dates(store) == [utc(2024, 1, d, 2) for d in (1, 2, 3)]


def test_dead_driver_is_failed_and_frees_the_slot(store, settings, clock, webhook):
    p = daily(catchup=True, max_active_runs=1)
    run, _ = store.create_run(
        "daily", utc(2024, 1, 1, 2), utc(2024, 1, 1, 2), utc(2024, 1, 2, 2), {}, "scheduled"
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    store.update_run(
        run.run_id, state=RunState.RUNNING, pid=dead.pid, hostname=socket.gethostname()
    )
    alerter = Alerter([WebhookChannel(webhook.url)])
    report = make_scheduler([p], store, settings, clock, alerter=alerter).tick()
    assert [r.run_id for r in report.failed_dead] == [run.run_id]
    assert store.get_run(run.run_id).state == RunState.FAILED
    assert f"headrace resume {run.run_id}" in store.get_run(run.run_id).error
    assert webhook.kinds() == ["failure"]
    assert [r.logical_date for r in report.started] == [utc(2024, 1, 2, 2), utc(2024, 1, 3, 2)]


def test_queued_run_left_by_a_dead_scheduler_is_launched_again(store, settings, clock):
    EXECUTED.clear()
    p = daily(catchup=True)
    store.create_run(
        "daily", utc(2024, 1, 1, 2), utc(2024, 1, 1, 2), utc(2024, 1, 2, 2), {}, "scheduled"
    )
    clock.current = datetime.now(UTC) + timedelta(
        minutes=5
    )  # created_at is real time: move past the grace
    report = make_scheduler([p], store, settings, clock).tick()
    assert [r.logical_date for r in report.relaunched] == [utc(2024, 1, 1, 2)]
    assert store.find_run("daily", utc(2024, 1, 1, 2)).state == RunState.SUCCESS
    assert EXECUTED[0] == ("daily", utc(2024, 1, 1, 2).isoformat())


@task(sla=timedelta(hours=3))
def slow(ctx: Context) -> None:
    return None


def test_sla_miss_is_recorded_and_alerted_once(store, settings, webhook):
    @pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1), catchup=False, name="sla_etl")
    def sla_etl():
        slow()

    clock = FakeClock(utc(2024, 1, 2, 3))  # interval [1st 02:00, 2nd 02:00) just became due
    launcher = HoldingLauncher()  # the run never gets done
    alerter = Alerter([WebhookChannel(webhook.url)])
    scheduler = make_scheduler(
        [sla_etl], store, settings, clock, launcher=launcher, alerter=alerter
    )
    assert scheduler.tick().sla_misses == []  # deadline is 05:00
    clock.current = utc(2024, 1, 2, 5, 1)
    misses = scheduler.tick().sla_misses
    assert [(m.task_id, m.deadline) for m in misses] == [("slow", utc(2024, 1, 2, 5))]
    assert scheduler.tick().sla_misses == []
    # a second scheduler (or a restart) does not alert again
    make_scheduler(
        [sla_etl], store, settings, clock, launcher=HoldingLauncher(), alerter=alerter
    ).tick()
    assert webhook.kinds() == ["sla_miss"]
    body = webhook.bodies[0]
    assert body["headrace"]["pipeline"] == "sla_etl" and body["headrace"]["task_id"] == "slow"
    assert "SLA: 3:00:00" in body["text"]
    assert [m.run_id for m in SlaLedger.for_store(store).list("sla_etl")] == [misses[0].run_id]


sla_callback_saw: list[tuple[str, str, str]] = []


def _note_sla_miss(ctx: Context) -> None:
    sla_callback_saw.append(
        (ctx.settings.connection("warehouse"), str(ctx.settings.home), ctx.var("owner"))
    )


@task(sla=timedelta(hours=1), on_sla_miss=_note_sla_miss)
def watched(ctx: Context) -> None:
    return None


def test_on_sla_miss_callback_gets_the_schedulers_settings(store, settings):
    @pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1), catchup=False, name="sla_cb")
    def sla_cb():
        watched()

    sla_callback_saw.clear()
    store.set_variable("owner", "data-team")  # read back through ctx.var: the real state store
    clock = FakeClock(utc(2024, 1, 2, 2, 30))  # the run is due; its deadline is 03:00
    # The launcher's settings (as the CLI's scheduler has them) reach the callback.
    launcher = InlineLauncher(
        store, settings, executor="inprocess", runner_options={"clock": clock}
    )
    launcher.launch = lambda pipeline, run: None  # the run never gets done
    scheduler = Scheduler([sla_cb], store, launcher=launcher, clock=clock)
    assert scheduler.tick().sla_misses == []
    clock.current = utc(2024, 1, 2, 3, 1)
    assert [m.task_id for m in scheduler.tick().sla_misses] == ["watched"]
    assert sla_callback_saw == [("duckdb:///warehouse.db", str(settings.home), "data-team")]


def test_task_done_on_time_is_no_sla_miss(store, settings):
    @pipeline(schedule="0 2 * * *", start_date=datetime(2024, 1, 1), catchup=False, name="sla_ok")
    def sla_ok():
        slow()

    clock = FakeClock(utc(2024, 1, 2, 3))
    scheduler = make_scheduler([sla_ok], store, settings, clock)
    assert len(scheduler.tick().started) == 1
    clock.current = utc(2024, 1, 3, 1)
    assert scheduler.tick().sla_misses == []


@task
def explode(ctx: Context) -> None:
    raise RuntimeError(f"could not reach postgresql://etl:hunter2@db/{ctx.ds}")


def test_failure_and_opt_in_retry_alerts_from_the_driving_process(store, settings, clock, webhook):
    @pipeline(
        schedule="@daily",
        start_date=datetime(2024, 1, 3),
        catchup=True,
        name="fragile",
        defaults={"retries": 1},
    )
    def fragile():
        explode()

    alerter = Alerter([WebhookChannel(webhook.url)], on_retry=True)
    launcher = InlineLauncher(
        store, settings, executor="inprocess", alerter=alerter, runner_options={"clock": clock}
    )
    make_scheduler([fragile], store, settings, clock, launcher=launcher).tick()
    assert webhook.kinds() == ["retry", "failure"]
    failure = webhook.bodies[1]["headrace"]
    assert failure["pipeline"] == "fragile" and failure["task_id"] == "explode"
    assert "RuntimeError" in failure["error"] and "hunter2" not in str(webhook.bodies)
    assert failure["run_id"] == store.list_runs("fragile")[0].run_id


def test_manual_only_pipelines_are_not_scheduled(store, settings, clock):
    p = daily(schedule=None, name="manual")
    scheduler = make_scheduler([p], store, settings, clock)
    assert scheduler.pipelines == []
    assert scheduler.tick().started == []


def test_reschedule_pokes_send_no_retry_alerts(store, settings, clock, webhook, tmp_path):
    from headrace.tasks import file_sensor

    flag = tmp_path / "flag"
    wait = file_sensor(
        str(flag), task_id="wait_flag", poke_interval=0.01, timeout=60, mode="reschedule"
    )

    @task
    def raise_flag(ctx: Context) -> None:
        flag.touch()

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 3), catchup=True, name="sensing")
    def sensing():
        wait()
        raise_flag()

    alerter = Alerter([WebhookChannel(webhook.url)], on_retry=True)
    launcher = InlineLauncher(store, settings, executor="inprocess", alerter=alerter)
    make_scheduler([sensing], store, settings, clock, launcher=launcher).tick()
    assert store.list_runs("sensing")[0].state == RunState.SUCCESS
    assert webhook.bodies == []


def test_alerting_events_for_a_manual_run_without_a_record_yet(store, settings, webhook):
    from headrace.engine import Runner
    from headrace.scheduler.launch import alerting_events

    @pipeline(schedule=None, name="by_hand")
    def by_hand():
        explode()

    alerter = Alerter([WebhookChannel(webhook.url)])
    runner = Runner(
        store,
        executor="inprocess",
        settings=settings,
        on_event=alerting_events(alerter, by_hand, None),
    )
    result = runner.run(by_hand, datetime(2024, 1, 5, tzinfo=UTC))
    assert [b["headrace"]["run_id"] for b in webhook.bodies] == [result.run_id]
    assert f"headrace resume {result.run_id}" in webhook.bodies[0]["text"]


def test_abandoned_manual_run_holds_no_slot(store, settings, clock):
    p = daily(catchup=True, max_active_runs=1)
    store.create_run("daily", utc(2023, 12, 1), utc(2023, 12, 1), utc(2023, 12, 2), {}, "manual")
    clock.current = datetime.now(UTC) + timedelta(minutes=5)  # past the grace since its creation
    report = make_scheduler([p], store, settings, clock, launcher=HoldingLauncher()).tick()
    assert len(report.started) == 1 and report.relaunched == []


def test_paused_pipeline_gets_no_new_runs_until_unpaused(store, settings, clock):
    p = daily(catchup=True)
    store.set_paused("daily", True, actor="alice")
    report = make_scheduler([p], store, settings, clock).tick()
    assert report.started == [] and report.waiting["daily"] == "paused"
    assert logical_dates(store) == []
    assert store.set_paused("daily", False) is True
    report = make_scheduler([p], store, settings, clock).tick()
    assert logical_dates(store) == [utc(2024, 1, d, 2) for d in (1, 2, 3)]
