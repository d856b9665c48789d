"""Prometheus metrics read from a state store filled by real runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.observe.metrics import DURATION_BUCKETS, StoreCollector
from headrace.state import SlaMissRecord, open_store
from headrace.state.store_base import StateStore, TaskState
from headrace.web.application import create_app

DEMO = Path(__file__).resolve().parents[1] / "web" / "pipelines" / "web_demo.py"
DAY = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[StateStore, Settings, list[str]]]:
    """A store with 3 runs of web_demo (1 failed, 2 successful) and one SLA miss."""
    settings = Settings(home=tmp_path / "home", state_url=f"sqlite:///{tmp_path / 'state.db'}")
    demo = load_pipelines(DEMO)["web_demo"]
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        runs = [
            runner.run(demo, DAY, params={"fail_publish": True}).run_id,
            runner.run(demo, DAY + timedelta(days=1)).run_id,
            runner.run(demo, DAY + timedelta(days=2)).run_id,
        ]
        store.record_sla_miss(
            SlaMissRecord(
                "web_demo",
                runs[0],
                "publish",
                DAY,
                DAY + timedelta(days=1, hours=1),
                timedelta(hours=1),
                DAY + timedelta(days=1, hours=2),
            )
        )
        yield store, settings, runs


def scrape(
    store: StateStore, collector: StoreCollector | None = None
) -> dict[tuple[str, tuple], float]:
    """Samples of one scrape, parsed back from the text format: (name, sorted labels) -> value."""
    registry = CollectorRegistry()
    registry.register(collector or StoreCollector(store))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_match_the_store(filled) -> None:
    store, _, runs = filled
    samples = scrape(store)

    assert samples[("headrace_state_store_up", ())] == 1.0
    run = lambda state: samples[("headrace_runs", (("pipeline", "web_demo"), ("state", state)))]  # noqa: E731
    assert (run("success"), run("failed"), run("running"), run("queued")) == (2.0, 1.0, 0.0, 0.0)

    instances = [ti for r in runs for ti in store.get_task_instances(r)]
    for state in ("success", "failed", "upstream_failed"):
        expected = sum(1 for ti in instances if ti.state.value == state)
        assert (
            samples[("headrace_task_instances", (("pipeline", "web_demo"), ("state", state)))]
            == expected
        )
    assert (
        samples[
            ("headrace_task_instances", (("pipeline", "web_demo"), ("state", "upstream_failed")))
        ]
        == 1
    )

    # fetch fails once per run: one retry each.
    assert (
        samples[
            ("headrace_task_retries_total", (("pipeline", "web_demo"), ("task", "extract.fetch")))
        ]
        == 3
    )
    assert (
        "headrace_task_retries_total",
        (("pipeline", "web_demo"), ("task", "publish")),
    ) not in samples

    fetch = (("pipeline", "web_demo"), ("task", "extract.fetch"))
    assert samples[("headrace_task_duration_seconds_count", fetch)] == 3
    durations = [
        (ti.ended_at - ti.started_at).total_seconds()
        for ti in instances
        if ti.task_id == "extract.fetch" and ti.started_at and ti.ended_at
    ]
    assert samples[("headrace_task_duration_seconds_sum", fetch)] == pytest.approx(sum(durations))
    assert (
        samples[("headrace_task_duration_seconds_bucket", tuple(sorted((*fetch, ("le", "+Inf")))))]
        == 3
    )
    for bound in DURATION_BUCKETS:
        le = tuple(sorted((*fetch, ("le", str(float(bound))))))
        assert samples[("headrace_task_duration_seconds_bucket", le)] == sum(
            d <= bound for d in durations
        )
    publish = (("pipeline", "web_demo"), ("task", "publish"))
    assert samples[("headrace_task_duration_seconds_count", publish)] == 3  # failed ones count too
    notify = (("pipeline", "web_demo"), ("task", "notify"))
    assert (
        samples[("headrace_task_duration_seconds_count", notify)] == 2
    )  # upstream_failed never ran

    # Two bad emails quarantined per run.
    key = (
        ("expectation", "matches_regex(email)"),
        ("pipeline", "web_demo"),
        ("task", "extract.clean"),
    )
    assert samples[("headrace_quarantined_rows_total", key)] == 6
    checks = (
        ("pipeline", "web_demo"),
        ("severity", "warn"),
        ("status", "failed"),
        ("task", "extract.clean"),
    )
    assert samples[("headrace_check_results_total", checks)] == 3
    assert (
        samples[("headrace_sla_misses_total", (("pipeline", "web_demo"), ("task", "publish")))] == 1
    )


def test_a_changed_run_is_read_again(filled) -> None:
    store, _, runs = filled
    collector = StoreCollector(store)
    before = scrape(store, collector)
    # What a resume does: the failed run's task succeeds on a second attempt, the run ends again.
    store.update_run(runs[0], state="running", ended_at=None)
    store.update_task_instance(runs[0], "publish", state=TaskState.RUNNING, attempt=2)
    during = scrape(store, collector)
    store.update_task_instance(
        runs[0], "publish", state=TaskState.SUCCESS, ended_at=datetime.now(UTC)
    )
    store.update_run(runs[0], state="success", ended_at=datetime.now(UTC))
    after = scrape(store, collector)

    succeeded = ("headrace_runs", (("pipeline", "web_demo"), ("state", "success")))
    running = ("headrace_runs", (("pipeline", "web_demo"), ("state", "running")))
    retries = ("headrace_task_retries_total", (("pipeline", "web_demo"), ("task", "publish")))
    assert (before[succeeded], during[running], after[succeeded]) == (2, 1, 3)
    assert retries not in before and during[retries] == 1 and after[retries] == 1


def test_totals_follow_deleted_runs_and_match_a_fresh_collector(filled) -> None:
    store, _, runs = filled
    collector = StoreCollector(store)
    scrape(store, collector)
    assert store.delete_runs([runs[1]]) == 1
    kept = scrape(store, collector)  # incremental: the deleted run's figures are taken out
    assert kept == scrape(store)  # the same as reading everything afresh
    succeeded = ("headrace_runs", (("pipeline", "web_demo"), ("state", "success")))
    tasks = ("headrace_task_instances", (("pipeline", "web_demo"), ("state", "success")))
    assert kept[succeeded] == 1
    assert kept[tasks] == len(
        [
            t
            for r in runs
            if r != runs[1]
            for t in store.get_task_instances(r)
            if t.state == TaskState.SUCCESS
        ]
    )


def test_an_unreadable_store_reports_down(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    collector = StoreCollector(store)
    store.close()
    samples = scrape(store, collector)
    assert samples == {("headrace_state_store_up", ()): 0.0}


def test_the_web_app_serves_metrics(filled) -> None:
    store, settings, _ = filled
    with TestClient(create_app(settings, store=store)) as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["headrace_task_duration_seconds"].type == "histogram"
    assert families["headrace_task_retries"].type == "counter"
    assert sum(s.value for s in families["headrace_runs"].samples) == 3


class _RunByRun:
    """The store without ``finished_figures``: the collector reads every run one by one."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        if name == "finished_figures":
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_databases_sums_match_reading_run_by_run(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    if backend == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'state.db'}", None
    else:
        url, schema = request.getfixturevalue("pg_schema")
    settings = Settings(home=tmp_path / "home", state_url=url)
    demo = load_pipelines(DEMO)["web_demo"]
    with open_store(url, schema=schema) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        runs = [runner.run(demo, DAY + timedelta(days=i), params={"fail_publish": i % 2 == 0}).run_id
                for i in range(4)]  # fmt: skip
        # Attempts as a resume or a rerun leave them: 0 (never ran) beside 3 (two retries).
        store.update_task_instance(runs[2], "notify", attempt=0)
        store.update_task_instance(runs[3], "notify", attempt=3)
        summed = StoreCollector(store)
        first = scrape(store, summed)
        assert (
            first[("headrace_task_retries_total", (("pipeline", "web_demo"), ("task", "notify")))]
            == 2
        )
        assert first == scrape(_RunByRun(store))  # type: ignore[arg-type]
        assert summed._summed is not None and set(summed._summed) == set(
            runs
        )  # the database summed them
        # A summed run resumed, another deleted: the sums are taken again, still equal.
        store.update_run(runs[0], state="running", ended_at=None)
        assert store.delete_runs([runs[1]]) == 1
        assert scrape(store, summed) == scrape(_RunByRun(store))  # type: ignore[arg-type]
        assert summed._summed is not None and runs[0] not in summed._summed
