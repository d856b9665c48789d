"""StatsD/DogStatsD metrics through the engine, received by a real UDP listener, and
``ctx.metric`` values in both StatsD and Prometheus ``/metrics``."""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from headrace import Context, Sync, destination, file_source, sync
from headrace.config import MetricsSettings, Settings
from headrace.engine import FakeClock, Runner
from headrace.observe.statsd import StatsdClient
from headrace.pipeline import Retry, pipeline, task
from headrace.quality import matches_regex
from headrace.scheduler import Scheduler
from headrace.state import open_store
from headrace.web.application import create_app


class Metric(TypedDict):
    """One DogStatsD line as received."""

    name: str
    value: float
    kind: str
    tags: dict[str, str]
    rate: float  # the sample rate (|@r); 1 when the line has none


LINE = re.compile(
    r"^(?P<name>[\w.\-/]+):(?P<value>-?[\d.e+-]+)\|(?P<kind>c|g|ms|h|d)(\|@(?P<rate>[\d.]+))?(\|#(?P<tags>.*))?$"
)
ATTEMPTS: dict[str, int] = {}


class Listener:
    """A DogStatsD agent stand-in: collects datagrams, parses each line strictly."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"

    def lines(self) -> list[Metric]:
        found: list[Metric] = []
        while True:
            try:
                data = self.sock.recv(65535).decode()
            except TimeoutError:
                return found
            for line in data.splitlines():
                match = LINE.match(line)
                assert match, f"not a DogStatsD line: {line!r}"
                tags = dict(t.split(":", 1) for t in (match["tags"] or "").split(",") if t)
                found.append(
                    {
                        "name": match["name"],
                        "value": float(match["value"]),
                        "kind": match["kind"],
                        "tags": tags,
                        "rate": float(match["rate"] or 1),
                    }
                )


@pytest.fixture
def listener() -> Iterator[Listener]:
    agent = Listener()
    yield agent
    agent.sock.close()


@task(retries=Retry(attempts=2, delay=0))
def wobbly(ctx: Context) -> int:
    ATTEMPTS[ctx.run_id] = ATTEMPTS.get(ctx.run_id, 0) + 1
    if ATTEMPTS[ctx.run_id] == 1:
        raise ConnectionError("first try fails")
    ctx.metric("pages_fetched", 12, tags={"endpoint": "orders"})
    return 1


def make_sync(csv: Path) -> Sync:
    return sync(
        "load_people",
        source=file_source(str(csv)),
        checks=[matches_regex("name", r".+", severity="quarantine", reason="no name")],
        destination=destination("warehouse", table="people", mode="replace"),
    )


def test_run_metrics_reach_a_udp_agent_and_custom_ones_prometheus(
    tmp_path: Path, listener: Listener
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("id,name\n1,ann\n2,\n3,bob\n")
    people = make_sync(csv)

    @pipeline(name="metered")
    def metered() -> None:
        wobbly()
        people()

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        metrics=MetricsSettings(statsd=listener.url, tags=("env:test",)),
    )
    with open_store(settings.state_url) as store:
        with Runner(store, "inprocess", settings=settings) as runner:
            result = runner.run(metered)
        assert result.state == "success", [result.task(t).error for t in ("wobbly", "load_people")]
        got = listener.lines()
        assert all(f"env:{m['tags'].get('env')}" == "env:test" for m in got)

        def one(name: str, **tags: str) -> Metric:
            found = [
                m
                for m in got
                if m["name"] == name and all(m["tags"].get(k) == v for k, v in tags.items())
            ]
            assert len(found) == 1, (name, tags, got)
            return found[0]

        assert one("headrace.runs", pipeline="metered", state="success")["value"] == 1
        assert one("headrace.task.retries", task="wobbly")["kind"] == "c"
        assert one("headrace.task.finished", task="wobbly", state="success")["value"] == 1
        assert one("headrace.task.duration", task="load_people")["kind"] == "ms"
        assert one("headrace.rows.loaded", task="load_people")["value"] == 2
        assert one("headrace.rows.quarantined", task="load_people")["value"] == 1
        custom = one("headrace.custom.pages_fetched", task="wobbly", endpoint="orders")
        assert (custom["value"], custom["kind"]) == (12, "g")

        with TestClient(create_app(settings, store=store)) as http:
            text = http.get("/metrics").text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = (
            "headrace_custom_pages_fetched",
            (("endpoint", "orders"), ("pipeline", "metered"), ("task", "wobbly")),
        )
        assert samples[key] == 12.0


def test_agent_down_costs_nothing(tmp_path: Path) -> None:
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    url = f"udp://127.0.0.1:{free.getsockname()[1]}"
    free.close()  # nobody listens: datagrams are lost, the run is not

    @pipeline(name="quiet")
    def quiet() -> None:
        wobbly()

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        metrics=MetricsSettings(statsd=url),
    )
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        assert runner.run(quiet).state == "success"


def test_metric_settings_from_toml_and_env(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text(
        '[metrics]\nstatsd = "udp://127.0.0.1:8125"\ntags = ["team:data"]\n'
    )
    settings = Settings.load(tmp_path, {})
    assert settings.metrics == MetricsSettings("udp://127.0.0.1:8125", "headrace", ("team:data",))
    assert Settings.load(tmp_path, {"HEADRACE_METRICS_TAGS": "a:1,b:2"}).metrics.tags == (
        "a:1",
        "b:2",
    )
    assert Settings.from_json(settings.to_json()).metrics == settings.metrics


class HoldingLauncher:
    """Starts nothing: the run stays queued, so its task misses the SLA."""

    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, pipeline: object, run: object) -> None:
        self.launched.append(run.run_id)  # type: ignore[attr-defined]

    def running(self) -> set[str]:
        return set(self.launched)

    def shutdown(self, wait: bool = True) -> None:
        pass


@task(sla=timedelta(hours=3))
def late(ctx: Context) -> None:
    return None


def test_sla_misses_are_counted_on_the_agent(tmp_path: Path, listener: Listener) -> None:
    @pipeline(
        schedule="0 2 * * *", start_date=datetime(2024, 1, 1), catchup=False, name="sla_metered"
    )
    def sla_metered() -> None:
        late()

    clock = FakeClock(datetime(2024, 1, 2, 3, tzinfo=UTC))
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        scheduler = Scheduler(
            [sla_metered],
            store,
            launcher=HoldingLauncher(),
            clock=clock,
            statsd=StatsdClient(listener.url),
        )
        scheduler.tick()
        clock.current = datetime(2024, 1, 2, 5, 1, tzinfo=UTC)
        assert len(scheduler.tick().sla_misses) == 1
        scheduler.tick()  # already recorded: not counted again
    misses = [m for m in listener.lines() if m["name"] == "headrace.sla.misses"]
    assert [(m["value"], m["tags"]) for m in misses] == [
        (1.0, {"pipeline": "sla_metered", "task": "late"})
    ]


def test_task_queue_depth_is_a_gauge(
    tmp_path: Path, redis_prefix: tuple[str, str], listener: Listener
) -> None:
    from headrace.executors.distributed import DistributedExecutor
    from headrace.executors.executor_base import RunInfo, WorkItem
    from headrace.queue import QueueConnection

    url, prefix = redis_prefix
    executor = DistributedExecutor(
        QueueConnection(url, prefix),
        queue_name="depth-test",
        poll_interval=0.0,
        statsd=StatsdClient(listener.url),
    )

    @pipeline(name="nothing")
    def nothing() -> None:
        late()

    day = datetime(2024, 3, 5, tzinfo=UTC)
    run = RunInfo(
        run_id="r1",
        pipeline="nothing",
        logical_date=day,
        data_interval_start=day,
        data_interval_end=day,
        params={},
        settings=Settings(home=tmp_path, state_url="sqlite://"),
        staging_dir=str(tmp_path),
    )
    executor.start(lambda event: None, nothing, lambda *a: None)  # type: ignore[arg-type]
    try:
        for i in range(3):  # no worker listens: the items wait in the queue
            executor.submit(
                WorkItem(
                    run=run,
                    pipeline_file=__file__,
                    pipeline_module=__name__,
                    task_id="late",
                    map_index=i,
                    attempt=1,
                )
            )
        assert executor.wait(0.05) == []
    finally:
        executor.shutdown(kill=True)
    depth = {
        m["tags"]["state"]: m["value"]
        for m in listener.lines()
        if m["name"] == "headrace.queue.depth"
    }
    assert depth == {"waiting": 3, "delayed": 0, "active": 0}


@task
def square(i: int) -> int:
    return i * i


def test_mapped_elements_send_their_durations_packed_and_sampled(
    tmp_path: Path, listener: Listener
) -> None:
    @pipeline(name="mapped")
    def mapped() -> None:
        square.map(i=list(range(150)))
        cube.map(i=list(range(40)))

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        metrics=MetricsSettings(statsd=listener.url),
    )
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        result = runner.run(mapped)
        assert result.state == "success"
        stored = {
            ti.map_index: ti
            for ti in store.get_task_instances(result.run_id)
            if ti.task_id == "square"
        }
    got = listener.lines()
    durations = [
        m for m in got if m["name"] == "headrace.task.duration" and m["tags"]["task"] == "square"
    ]
    own = [m for m in durations if m["rate"] == 1]  # the mapped task itself
    elements = [m for m in durations if m["rate"] < 1]
    assert len(own) == 1 and len(elements) == 100  # a sample of the 150 elements, at rate 100/150
    assert round(sum(1 / m["rate"] for m in elements)) == 150  # the agent counts every element
    exact = [
        (ti.ended_at - ti.started_at).total_seconds() * 1000
        for ti in stored.values()
        if ti.map_index >= 0 and ti.ended_at and ti.started_at
    ]
    for m in elements:  # real durations (6 significant digits on the wire), not made up
        assert any(math.isclose(m["value"], e, rel_tol=1e-5, abs_tol=1e-3) for e in exact), m
    small = [
        m for m in got if m["name"] == "headrace.task.duration" and m["tags"]["task"] == "cube"
    ]
    assert len(small) == 41 and {m["rate"] for m in small} == {
        1.0
    }  # few elements: every one, unsampled
    assert sorted(m["tags"]["task"] for m in got if m["name"] == "headrace.task.finished") == [
        "cube",
        "square",
    ]


@task
def cube(i: int) -> int:
    return i * i * i


@task(retries=Retry(attempts=2, delay=0))
def shaky(ctx: Context, i: int) -> int:
    key = f"{ctx.run_id}/{i}"
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if i % 50 == 0 and ATTEMPTS[key] == 1:
        raise ConnectionError(f"element {i}: first try fails")
    if i == 7:
        raise ValueError("element 7 always fails")
    return i


def test_mapped_elements_count_their_retries_and_a_failed_map_its_sample(
    tmp_path: Path, listener: Listener
) -> None:
    """Elements' retries are counted as they happen (0, 50, 100, 150 fail once; 7 fails
    twice: 5 retries); a failed mapped task (element 7) still sends its sample."""

    @pipeline(name="shaky_map")
    def shaky_map() -> None:
        shaky.map(i=list(range(160)))

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        metrics=MetricsSettings(statsd=listener.url),
    )
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        result = runner.run(shaky_map)
    assert result.state == "failed"
    got = listener.lines()
    retries = [m for m in got if m["name"] == "headrace.task.retries"]
    assert {m["tags"]["task"] for m in retries} == {"shaky"}
    assert sum(m["value"] for m in retries) == 5
    durations = [m for m in got if m["name"] == "headrace.task.duration" and m["rate"] < 1]
    assert len(durations) == 100 and {m["rate"] for m in durations} == {100 / 160}
    finished = [m for m in got if m["name"] == "headrace.task.finished"]
    assert [(m["tags"]["task"], m["tags"]["state"]) for m in finished] == [("shaky", "failed")]
