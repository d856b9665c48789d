"""Actions through the app (FastAPI's client, a real SQLite store, the real Runner in background threads).

The same actions are driven from Chromium in ``test_browser.py``; these cover the rules
(authentication, CSRF, the audit log, masking) and each action's effect quickly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from headrace.state.store_base import StateStore
from headrace.web.application import create_app

TOKEN = "test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def wait_finished(store: StateStore, run_id: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = store.get_run(run_id).state.value
        if state in ("success", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} not finished after {seconds}s")


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on the page: {page[:300]}"
    return found[1]


def login(http: TestClient, user: str = "alice", password: str = "wonderland") -> str:
    """Log in through the form; return the CSRF token of the session's pages."""
    csrf = csrf_of(http.get("/login").text)
    done = http.post(
        "/login",
        data={"user": user, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/"
    return csrf_of(http.get("/pipelines/web_ops").text)


def test_everything_needs_authentication_when_it_is_configured(ops) -> None:
    http, _, _ = ops
    assert http.get("/api/runs").status_code == 401
    page = http.get("/pipelines/web_ops", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert http.post("/api/pipelines/web_ops/runs", json={}).status_code == 401
    assert (
        http.post(
            "/api/pipelines/web_ops/runs", json={}, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert http.get("/api/health").status_code == 200


def test_trigger_over_the_api_runs_and_is_audited_with_secrets_masked(ops) -> None:
    http, store, tmp = ops
    done = http.post(
        "/api/pipelines/web_ops/runs",
        headers=BEARER,
        json={"params": {"n": "5", "api_token": "hunter2", "dir": str(tmp)}},
    )
    assert done.status_code == 200, done.text
    run_id = done.json()["run_id"]
    assert wait_finished(store, run_id) == "success"
    assert store.get_run(run_id).params["n"] == 5  # converted to the default's type
    actions = http.get("/api/actions", headers=BEARER).json()["actions"]
    assert (
        actions[0]["actor"] == "token"
        and actions[0]["action"] == "trigger"
        and actions[0]["outcome"] == "ok"
    )
    assert actions[0]["detail"]["params"]["api_token"] == "***"
    assert "hunter2" not in http.get("/actions", headers=BEARER).text


def test_form_without_csrf_token_is_refused_and_with_it_works(ops) -> None:
    http, store, tmp = ops
    csrf = login(http)
    refused = http.post("/actions/pause", data={"pipeline": "web_ops", "paused": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert store.is_paused("web_ops") is False
    wrong = http.post(
        "/actions/pause", data={"pipeline": "web_ops", "paused": "1", "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    done = http.post(
        "/actions/pause",
        data={"pipeline": "web_ops", "paused": "1", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303 and store.is_paused("web_ops") is True
    # A JSON call riding on the session cookie needs the header as well.
    assert http.post("/api/pipelines/web_ops/unpause").status_code == 403
    assert (
        http.post("/api/pipelines/web_ops/unpause", headers={"X-CSRF-Token": csrf}).status_code
        == 200
    )
    assert store.is_paused("web_ops") is False
    actions, _ = store.list_actions()
    assert [(a.actor, a.action) for a in actions[:2]] == [("alice", "unpause"), ("alice", "pause")]


def test_wrong_password_and_login_without_csrf_are_refused(ops) -> None:
    http, _, _ = ops
    assert http.post("/login", data={"user": "alice", "password": "wonderland"}).status_code == 403
    csrf = csrf_of(http.get("/login").text)
    bad = http.post(
        "/login",
        data={"user": "alice", "password": "nope", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert "failed=1" in bad.headers["location"]
    assert http.get("/api/runs").status_code == 401


def test_retry_of_a_failed_task_runs_it_and_its_downstream(ops) -> None:
    http, store, tmp = ops
    flag = tmp / "broken"
    flag.touch()
    run_id = http.post(
        "/api/pipelines/web_ops/runs",
        headers=BEARER,
        json={"params": {"fail_file": str(flag), "dir": str(tmp)}},
    ).json()["run_id"]
    assert wait_finished(store, run_id) == "failed"
    assert store.get_task_instance(run_id, "publish").state.value == "upstream_failed"
    flag.unlink()
    done = http.post(
        f"/api/runs/{run_id}/tasks/load/retry", headers=BEARER, json={"downstream": True}
    )
    assert done.status_code == 200, done.text
    assert wait_finished(store, run_id) == "success"
    assert (tmp / "ran.txt").read_text().split() == ["load", "load", "publish"]
    unknown = http.post(f"/api/runs/{run_id}/tasks/lod/retry", headers=BEARER, json={})
    assert unknown.status_code == 409 and "Did you mean 'load'" in unknown.json()["detail"]


def test_mark_a_task_and_the_run_state_follows(ops) -> None:
    http, store, tmp = ops
    flag = tmp / "broken"
    flag.touch()
    run_id = http.post(
        "/api/pipelines/web_ops/runs", headers=BEARER, json={"params": {"fail_file": str(flag)}}
    ).json()["run_id"]
    assert wait_finished(store, run_id) == "failed"
    for task in ("load", "publish"):
        out = http.post(
            f"/api/runs/{run_id}/tasks/{task}/mark", headers=BEARER, json={"state": "success"}
        )
        assert out.status_code == 200, out.text
    assert store.get_run(run_id).state.value == "success"


def test_backfill_over_the_api_creates_one_run_per_day(ops) -> None:
    http, store, _ = ops
    out = http.post(
        "/api/pipelines/web_ops/backfill",
        headers=BEARER,
        json={"start": "2024-02-01", "end": "2024-02-03"},
    )
    assert out.status_code == 200, out.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = store.list_runs("web_ops", limit=10)
        if len(runs) == 3 and all(r.state.value == "success" for r in runs):
            break
        time.sleep(0.1)
    assert sorted(r.logical_date.day for r in runs) == [1, 2, 3]
    assert {r.trigger for r in runs} == {"backfill"}


def test_every_action_is_in_the_openapi_document(ops) -> None:
    http, _, _ = ops
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/api/pipelines/{pipeline}/runs",
        "/api/runs/{run_id}/resume",
        "/api/runs/{run_id}/tasks/{task_id}/retry",
        "/api/runs/{run_id}/tasks/{task_id}/mark",
        "/api/pipelines/{pipeline}/backfill",
        "/api/pipelines/{pipeline}/pause",
        "/api/pipelines/{pipeline}/unpause",
        "/api/actions",
    ):
        assert path in paths, path


def test_without_authentication_the_ui_reads_but_refuses_actions(demo) -> None:
    app = create_app(demo.settings, store=demo.store)
    with TestClient(app) as http:
        assert http.get("/").status_code == 200
        refused = http.post(f"/api/runs/{demo.failed_run}/resume")
        assert refused.status_code == 403 and "HEADRACE_WEB_TOKEN" in refused.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("first", ["web", "cli"])
def test_a_click_and_a_cli_resume_never_run_a_task_twice(ops, first: str) -> None:
    http, store, tmp = ops
    flag = tmp / "broken"
    flag.touch()
    run_id = http.post(
        "/api/pipelines/web_ops/runs",
        headers=BEARER,
        json={"params": {"fail_file": str(flag), "dir": str(tmp), "pause": 2.5}},
    ).json()["run_id"]
    assert wait_finished(store, run_id) == "failed"
    flag.unlink()
    (tmp / "ran.txt").unlink()
    clicked = http.post(f"/api/runs/{run_id}/resume", headers=BEARER) if first == "web" else None
    cli = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from headrace.cli import main; main()",
            "resume",
            run_id,
            "--executor",
            "inprocess",
        ],
        env={
            **os.environ,
            "HEADRACE_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
            "HEADRACE_HOME": str(tmp / "home"),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if first == "cli":
        deadline = time.monotonic() + 30
        while store.get_run(run_id).pid != cli.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        clicked = http.post(f"/api/runs/{run_id}/resume", headers=BEARER)
    output = cli.communicate(timeout=60)[0]
    assert clicked is not None
    assert wait_finished(store, run_id) == "success"
    assert sorted((tmp / "ran.txt").read_text().split()) == ["load", "publish"], output
    if first == "web":
        assert clicked.status_code == 200
        # Refused while the web drives the run; on a slow machine the CLI may start after it ended.
        assert (
            cli.returncode == 1 and "is already running" in output
        ) or "nothing ran" in output, output
    else:
        assert cli.returncode == 0, output
        assert clicked.status_code == 409 and "already running" in clicked.json()["detail"]
