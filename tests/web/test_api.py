"""The JSON API over a SQLite store filled by real runs."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.state import open_store
from headrace.web.application import create_app


def test_runs_lists_newest_first_with_filters(client: TestClient, demo) -> None:
    body = client.get("/api/runs").json()
    assert body["total"] == 2
    assert [r["run_id"] for r in body["runs"]] == [demo.good_run, demo.failed_run]
    assert [r["state"] for r in body["runs"]] == ["success", "failed"]
    assert body["runs"][0]["duration_seconds"] > 0

    failed = client.get("/api/runs", params={"state": "failed", "pipeline": "web_demo"}).json()
    assert [r["run_id"] for r in failed["runs"]] == [demo.failed_run]
    assert failed["total"] == 1
    limited = client.get("/api/runs", params={"limit": 1}).json()
    assert (len(limited["runs"]), limited["total"]) == (1, 2)


def test_unknown_filters_answer_with_the_closest_name(client: TestClient) -> None:
    bad_state = client.get("/api/runs", params={"state": "faild"})
    assert bad_state.status_code == 400
    assert "Did you mean 'failed'?" in bad_state.json()["detail"]
    bad_pipeline = client.get("/api/runs", params={"pipeline": "web_dem"})
    assert bad_pipeline.status_code == 404
    assert "Did you mean 'web_demo'?" in bad_pipeline.json()["detail"]
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


def test_run_detail_has_tasks_retries_errors_and_sla_misses(client: TestClient, demo) -> None:
    body = client.get(f"/api/runs/{demo.failed_run}").json()
    assert body["run"]["state"] == "failed"
    assert body["run"]["params"] == {"fail_publish": True}
    tasks = {t["task_id"]: t for t in body["tasks"]}
    assert set(tasks) == {"extract.fetch", "extract.clean", "publish", "notify"}
    assert tasks["extract.fetch"]["attempt"] == 2
    assert tasks["extract.fetch"]["group"] == "extract"
    assert tasks["extract.clean"]["rows"] == 3  # 5 in, 2 quarantined
    assert tasks["publish"]["state"] == "failed"
    assert tasks["publish"]["error_kind"] == "ValueError"
    assert tasks["notify"]["state"] == "upstream_failed"
    assert tasks["notify"]["group"] is None
    # The password of a URL inside an error is never served.
    assert "s3cret" not in str(body)
    assert "postgresql://bob:***@db.internal/crm" in tasks["publish"]["error"]
    (miss,) = body["sla_misses"]
    assert (miss["task_id"], miss["sla_seconds"]) == ("publish", 1800.0)


def test_unknown_run_is_404_with_the_stores_message(client: TestClient, demo) -> None:
    typo = demo.failed_run[:-1] + ("x" if demo.failed_run[-1] != "x" else "y")
    for path in (f"/api/runs/{typo}", f"/api/runs/{typo}/logs", f"/api/runs/{typo}/checks"):
        response = client.get(path)
        assert response.status_code == 404, path
        detail = response.json()["detail"]
        assert f"Unknown run id {typo!r}" in detail
        assert f"Did you mean {demo.failed_run!r}?" in detail


def test_logs_per_task_and_attempt(client: TestClient, demo) -> None:
    logs = client.get(f"/api/runs/{demo.failed_run}/logs").json()
    keys = {(log["task_id"], log["attempt"]) for log in logs}
    assert {("extract.fetch", 1), ("extract.fetch", 2), ("publish", 1)} <= keys
    fetch = client.get(f"/api/runs/{demo.failed_run}/logs", params={"task": "extract.fetch"}).json()
    assert {log["task_id"] for log in fetch} == {"extract.fetch"}
    assert any("fails once on purpose" in log["text"] and log["attempt"] == 1 for log in fetch)
    assert any("fetched 5 rows on attempt 2" in log["text"] for log in fetch)
    unknown = client.get(f"/api/runs/{demo.failed_run}/logs", params={"task": "publsh"})
    assert unknown.status_code == 404
    assert "Did you mean 'publish'?" in unknown.json()["detail"]


def test_checks_with_counts_and_samples(client: TestClient, demo) -> None:
    checks = client.get(f"/api/runs/{demo.failed_run}/checks").json()
    by_name = {c["expectation"]: c for c in checks}
    assert set(by_name) == {"not_null(id)", "matches_regex(email)", "accepted_values(status)"}
    email = by_name["matches_regex(email)"]
    assert (email["severity"], email["status"], email["failed"], email["total"]) == (
        "quarantine",
        "failed",
        2,
        5,
    )
    assert [row["email"] for row in email["details"]["sample"]] == ["broken", "also broken"]
    assert by_name["not_null(id)"]["status"] == "passed"


def test_pipelines_from_the_store_and_the_folder(client: TestClient, demo) -> None:
    body = client.get("/api/pipelines").json()
    (demo_pipeline,) = body["pipelines"]
    assert demo_pipeline["name"] == "web_demo"
    assert demo_pipeline["runs"] == 2
    assert demo_pipeline["last_run"]["run_id"] == demo.good_run
    assert demo_pipeline["schedule"] == "@daily"
    assert set(demo_pipeline["tasks"]) == {"extract.fetch", "extract.clean", "publish", "notify"}
    assert body["errors"] == []


def test_a_broken_pipeline_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "from headrace import pipeline\nraise RuntimeError('boom at import')\n\n\n"
        "@pipeline\ndef broken(): ...\n"  # a pipeline file: every command imports it
    )
    settings = Settings(home=tmp_path, state_url=f"sqlite:///{tmp_path / 'state.db'}")
    with TestClient(create_app(settings, pipelines_dir=tmp_path)) as http:
        body = http.get("/api/pipelines").json()
    assert body["pipelines"] == []
    (error,) = body["errors"]
    assert error["file"].endswith("broken.py")
    assert "boom at import" in error["error"]
    assert error["kind"] == "DefinitionError"
    assert error["location"] == f"{tmp_path / 'broken.py'}:2"  # a field: no parsing of the message


def test_health_and_openapi(client: TestClient, demo) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["runs"] == 2
    assert health["store"].endswith("state.db")
    spec = client.get("/openapi.json").json()
    assert {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/logs",
        "/api/runs/{run_id}/checks",
        "/api/pipelines",
        "/api/health",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 404  # Swagger UI needs a CDN: off


def test_app_opens_and_closes_its_own_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, state_url=f"sqlite:///{tmp_path / 'own.db'}")
    app = create_app(settings)
    with TestClient(app) as http:
        assert http.get("/api/runs").json() == {"runs": [], "total": 0}
    with open_store(settings.state_url) as store:  # the file exists and is a valid store
        assert store.count_runs() == 0


def test_pipelines_never_run_are_listed_from_the_folder(tmp_path: Path) -> None:
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello_pipeline.py"
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "hello_pipeline.py").write_text(hello.read_text())
    settings = Settings(home=tmp_path, state_url=f"sqlite:///{tmp_path / 'state.db'}")
    with TestClient(create_app(settings, pipelines_dir=folder)) as http:
        body = http.get("/api/pipelines").json()
        page = http.get("/pipelines").text
    (hello_pipeline,) = body["pipelines"]
    assert (hello_pipeline["name"], hello_pipeline["runs"], hello_pipeline["last_run"]) == (
        "hello",
        0,
        None,
    )
    assert hello_pipeline["tasks"][0] == "fetch_greetings"
    assert hello_pipeline["doc"].startswith("Shouts a few greetings")
    assert (
        hello_pipeline["description"] == hello_pipeline["doc"].splitlines()[0]
    )  # one line for listings
    assert "never run" in page
