"""Lineage recorded by every load, read back by ``headrace lineage`` and the web graph:
two pipelines chained through a PostgreSQL table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.state import open_store
from headrace.web.application import create_app

CHAIN = Path(__file__).parent / "pipelines" / "chain.py"
HEADRACE = Path(sys.executable).with_name("headrace")


def test_lineage_command_walks_across_pipelines(
    chained: tuple[Settings, dict[str, str]], pg_schema
) -> None:
    settings, env = chained
    _, schema = pg_schema
    done = subprocess.run(
        [str(HEADRACE), "lineage", "people_clean", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["dataset"]["name"] == "wh.main.people_clean"
    up = out["upstream"]
    assert {j["name"] for j in up["jobs"]} == {"publish.clean_people", "ingest.raw_people"}
    names = {d["name"] for d in up["datasets"]}
    assert f"postgres.{schema}.people" in names or any(
        n.endswith(f"{schema}.people") for n in names
    )
    assert str(CHAIN.parent / "people.csv") in names  # the landed file, two steps up
    assert out["downstream"]["jobs"] == []

    done = subprocess.run(
        [str(HEADRACE), "lineage", f"{schema}.people"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "upstream: 1 job(s)" in text and "ingest.raw_people" in text
    assert "downstream: 1 job(s)" in text and "publish.clean_people" in text

    missing = subprocess.run(
        [str(HEADRACE), "lineage", "people_clen"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 1 and "people_clean" in missing.stderr  # did you mean


def test_web_graph_around_a_dataset_and_a_pipeline(
    chained: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = chained
    with (
        open_store(settings.state_url) as store,
        TestClient(create_app(settings, store=store)) as http,
    ):
        page = http.get("/lineage", params={"dataset": "people_clean"})
        assert page.status_code == 200
        svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
        assert svg.count('class="node job"') == 2 and svg.count('class="node dataset"') == 3
        assert svg.count('class="edge"') == 4  # file -> ingest -> pg -> publish -> duckdb
        api = http.get("/api/lineage", params={"dataset": "people_clean"}).json()
        assert {j["name"] for j in api["jobs"]} == {"publish.clean_people", "ingest.raw_people"}
        page = http.get("/lineage/pipelines/publish")
        assert (
            page.status_code == 200
            and "publish.clean_people" in page.text
            and "ingest.raw_people" in page.text
        )
        assert http.get("/lineage/pipelines/nope").status_code == 404
        assert http.get("/lineage", params={"dataset": "nothing_like_it"}).status_code == 404


def test_column_lineage_of_a_sql_transform(chained: tuple[Settings, dict[str, str]]) -> None:
    settings, _ = chained
    with open_store(settings.state_url) as store:
        run = store.list_runs("publish")[0]
        (ti,) = [t for t in store.get_task_instances(run.run_id) if t.task_id == "clean_people"]
    (out,) = ti.result_json["lineage"]["outputs"]
    assert out["columns"]["contact"]["inputs"] and sorted(
        i["field"] for i in out["columns"]["contact"]["inputs"]
    ) == ["email", "name"]
    assert out["columns"]["id"]["subtype"] == "IDENTITY"
    assert {f["name"]: f.get("description") for f in out["fields"]}["contact"] == "Name and e-mail"
