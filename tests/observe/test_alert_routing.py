"""Alert routing per pipeline and per task, and the on_failure/on_retry/on_success/on_sla_miss callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.engine import FakeClock, Runner
from headrace.observe.alerts import Alerter, EmailChannel
from headrace.pipeline import Context, Retry
from headrace.scheduler import Scheduler
from headrace.state.store_base import RunRecord, RunState

DAY = datetime(2024, 6, 1, tzinfo=UTC)
SEEN: list[tuple[str, str, str | None, str, int]] = []
TRIES: dict[str, int] = {}


def remember(kind: str):
    def callback(ctx: Context) -> None:
        SEEN.append((kind, ctx.task_id, ctx.error, ctx.ds, ctx.attempt))

    callback.__qualname__ = f"remember_{kind}"
    return callback


@task(retries=Retry(attempts=2), on_retry=remember("retry"), on_failure=remember("failure"))
def flaky_then_broken() -> None:
    TRIES["flaky"] = TRIES.get("flaky", 0) + 1
    raise RuntimeError(f"source down (try {TRIES['flaky']})")


@task(on_success=remember("success"))
def fine() -> int:
    return 1


def test_callbacks_receive_the_context_with_the_error(store, settings) -> None:
    SEEN.clear()
    TRIES.clear()

    @pipeline(name="callbacks")
    def callbacks():
        fine()
        flaky_then_broken()

    result = Runner(store, executor="inprocess", settings=settings).run(callbacks, DAY)

    assert result.state == RunState.FAILED
    assert sorted(SEEN) == [
        ("failure", "flaky_then_broken", "RuntimeError: source down (try 2)", "2024-06-01", 2),
        ("retry", "flaky_then_broken", "RuntimeError: source down (try 1)", "2024-06-01", 1),
        ("success", "fine", None, "2024-06-01", 1),
    ]


def test_a_broken_callback_is_logged_with_the_task_and_does_not_break_the_run(
    store, settings
) -> None:
    def explode(ctx: Context) -> None:
        raise ValueError("callback bug")

    @pipeline(name="bad_callback", defaults={"on_success": explode})
    def bad_callback():
        fine.override(on_success=explode)()

    result = Runner(store, executor="inprocess", settings=settings).run(bad_callback, DAY)
    assert result.state == RunState.SUCCESS
    logs = "\n".join(r.text for r in store.get_logs(result.run_id, "fine"))
    assert "callback" in logs and "ValueError: callback bug" in logs


def test_pipeline_and_task_recipients_get_email_through_the_global_smtp_server(
    store, settings, smtp_server, webhook_server
) -> None:
    port, inbox = smtp_server
    smtp = EmailChannel(
        "127.0.0.1", port, sender="headrace@example.com", recipients=["oncall@example.com"]
    )
    global_alerts = Alerter([smtp])

    @task(email=["loader-owner@example.com"], webhooks=[webhook_server.url + "/load"])
    def load() -> None:
        raise RuntimeError("warehouse refused the merge")

    @task(email_on_failure=False)
    def quiet() -> None:
        raise RuntimeError("nobody but on-call hears of this")

    @pipeline(name="routed", defaults={"email": ["data-alerts@example.com"], "retries": 0})
    def routed():
        load()
        quiet()

    result = Runner(store, executor="inprocess", settings=settings, alerter=global_alerts).run(
        routed, DAY
    )

    assert result.state == RunState.FAILED
    to = sorted(tuple(m["to"]) for m in inbox.messages)
    # on-call hears of both failures; the pipeline default is overridden by load's own list;
    # quiet's routes are off (email_on_failure=False) while the global channel still sends.
    assert to == [("loader-owner@example.com",), ("oncall@example.com",), ("oncall@example.com",)]
    owner = next(m for m in inbox.messages if m["to"] == ["loader-owner@example.com"])
    assert "routed.load failed" in owner["data"] and "warehouse refused the merge" in owner["data"]
    assert webhook_server.paths == ["/load"]
    assert webhook_server.bodies[0]["headrace"]["task_id"] == "load"


def test_retry_routes_are_opt_in_per_task(store, settings, webhook_server) -> None:
    TRIES.clear()

    @pipeline(
        name="retry_routes",
        defaults={"webhooks": webhook_server.url + "/team", "email_on_retry": True},
    )
    def retry_routes():
        flaky_then_broken()

    Runner(store, executor="inprocess", settings=settings).run(retry_routes, DAY)
    assert [b["headrace"]["kind"] for b in webhook_server.bodies] == ["retry", "failure"]


class _Holding:
    """A launcher that starts nothing: the run stays queued and misses its SLA."""

    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, pipeline, run: RunRecord) -> None:
        self.launched.append(run.run_id)

    def running(self) -> set[str]:
        return set(self.launched)

    def shutdown(self, wait: bool = True) -> None:
        pass


def test_an_sla_miss_reaches_the_task_callback_and_its_webhook(
    store, settings, webhook_server
) -> None:
    SEEN.clear()

    @task(
        sla=timedelta(hours=3),
        on_sla_miss=remember("sla_miss"),
        webhooks=[webhook_server.url + "/sla"],
    )
    def slow() -> None:
        return None

    @pipeline(name="sla_routed", schedule="0 2 * * *", start_date=datetime(2024, 1, 1))
    def sla_routed():
        slow()

    clock = FakeClock(datetime(2024, 1, 2, 3, tzinfo=UTC))
    scheduler = Scheduler([sla_routed], store, launcher=_Holding(), clock=clock)
    scheduler.tick()
    clock.current = datetime(2024, 1, 2, 5, 1, tzinfo=UTC)
    assert [m.task_id for m in scheduler.tick().sla_misses] == ["slow"]

    assert SEEN == [("sla_miss", "slow", None, "2024-01-01", 0)]
    assert (
        webhook_server.paths == ["/sla"]
        and webhook_server.bodies[0]["headrace"]["kind"] == "sla_miss"
    )


def test_descriptions_on_pipelines_and_tasks() -> None:
    @task(description="Loads customers into the warehouse")
    def described() -> None:
        """Long documentation."""

    @pipeline(
        name="described_pipeline", description="ETL pipeline for customer data with validation"
    )
    def described_pipeline():
        """Customer ETL.

        The long story.
        """
        described()

    assert described_pipeline.description == "ETL pipeline for customer data with validation"
    assert described_pipeline.doc.startswith("Customer ETL.")
    assert described_pipeline.task("described").description == "Loads customers into the warehouse"
    assert described.override(task_id="x").description == "Loads customers into the warehouse"
