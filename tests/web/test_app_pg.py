"""The web app over the PostgreSQL state store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from headrace.config import Settings
from headrace.state import open_store
from headrace.state.store_base import StateStore
from headrace.web.application import create_app


@pytest.fixture
def pg_store(pg_schema: tuple[str, str], tmp_path) -> Iterator[tuple[StateStore, Settings]]:
    url, schema = pg_schema
    settings = Settings(home=tmp_path / "home", state_url=url)
    with open_store(url, schema=schema) as store:
        yield store, settings


def test_api_pages_and_metrics_on_postgresql(pg_store, fill_store) -> None:
    store, settings = pg_store
    failed, good = fill_store(store, settings)
    with TestClient(create_app(settings, store=store)) as http:
        runs = http.get("/api/runs").json()
        detail = http.get(f"/api/runs/{failed}").json()
        page = http.get(f"/runs/{failed}").text
        missing = http.get(f"/api/runs/{failed[:-2]}zz")
        metrics = http.get("/metrics").text
    assert [r["run_id"] for r in runs["runs"]] == [good, failed]
    assert {t["task_id"]: t["attempt"] for t in detail["tasks"]}["extract.fetch"] == 2
    assert detail["sla_misses"][0]["task_id"] == "publish"
    assert "&lt;script&gt;" in page and "<script>alert(" not in page and "s3cret" not in page
    assert missing.status_code == 404 and "Unknown run id" in missing.json()["detail"]
    samples = {
        (s.name, s.labels.get("state")): s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "headrace_runs"
    }
    assert (samples[("headrace_runs", "success")], samples[("headrace_runs", "failed")]) == (1, 1)


def test_metrics_durations_on_postgresql_match_the_store(pg_store, fill_store) -> None:
    store, settings = pg_store
    failed, good = fill_store(store, settings)
    with TestClient(create_app(settings, store=store)) as http:
        metrics = http.get("/metrics").text
    samples = {
        (s.name, s.labels.get("task"), s.labels.get("le")): s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
    }
    durations = [
        (ti.ended_at - ti.started_at).total_seconds()
        for run in (failed, good)
        for ti in store.get_task_instances(run)
        if ti.task_id == "extract.fetch"
    ]
    assert samples[("headrace_task_duration_seconds_count", "extract.fetch", None)] == 2
    assert samples[("headrace_task_duration_seconds_sum", "extract.fetch", None)] == pytest.approx(
        sum(durations)
    )
    assert samples[("headrace_task_duration_seconds_bucket", "extract.fetch", "+Inf")] == 2
