"""The HTML pages: runs, one run, logs, pipelines; everything escaped, secrets masked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.state import open_store
from headrace.web.application import create_app


def _rows(html: str) -> list[str]:
    """The text of each table row, tags stripped, whitespace collapsed."""
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def test_runs_page_lists_runs_with_states_and_durations(client: TestClient, demo) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    rows = _rows(html)
    good = next(r for r in rows if demo.good_run in r)
    failed = next(r for r in rows if demo.failed_run in r)
    assert "web_demo 2024-01-02 success manual" in good
    assert re.search(r"\d+\.\d\ds", good)  # a duration such as 0.21s
    assert "web_demo 2024-01-01 failed" in failed
    assert 'class="state s-failed"' in html and 'class="state s-success"' in html
    assert rows.index(good) < rows.index(failed)  # newest logical date first
    assert 'http-equiv="refresh"' not in html  # nothing unfinished: no reload


def test_runs_page_filters(client: TestClient, demo) -> None:
    html = client.get("/", params={"state": "success"}).text
    assert demo.good_run in html and demo.failed_run not in html
    missing = client.get("/", params={"pipeline": "web_dem"})
    assert missing.status_code == 404
    assert "Did you mean &#39;web_demo&#39;?" in missing.text


def test_run_page_groups_tasks_with_a_timeline(client: TestClient, demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}").text
    rows = _rows(html)
    group = rows.index("▸ extract")
    # The group header comes right before its two tasks, which ran first.
    assert rows[group + 1].startswith("extract.fetch success 2 ")
    assert rows[group + 2].startswith("extract.clean success 1 ")
    assert " 3 " in rows[group + 2]  # rows loaded after quarantine
    publish = next(r for r in rows if r.startswith("publish failed 1"))
    assert "ValueError: bad row" in publish
    assert any(r.startswith("notify upstream_failed 0") for r in rows)
    bars = re.findall(r'class="b-(\w+)" style="left: ([\d.]+)%; width: ([\d.]+)%"', html)
    assert len(bars) == 3  # notify never started: no bar
    assert all(float(left) >= 0 and float(left) + float(width) <= 100.01 for _, left, width in bars)
    assert {state for state, _, _ in bars} == {"success", "failed"}


def test_run_page_escapes_hostile_errors_and_masks_passwords(client: TestClient, demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}").text
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "s3cret" not in html
    assert "postgresql://bob:***@db.internal/crm" in html


def test_run_page_shows_checks_and_sla_misses(client: TestClient, demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}").text
    rows = _rows(html)
    assert "Checks (2 failed of 3)" in " ".join(re.sub(r"<[^>]+>", " ", html).split())
    email = next(r for r in rows if "matches_regex(email)" in r and "quarantine" in r)
    assert "failed 2 / 5 (40.0%)" in email
    assert "sample of 2 failing rows" in email
    assert (
        "1 2 broken active" in rows and "4 5 also broken active" in rows
    )  # _hr_row, id, email, status
    sla = next(r for r in rows if r.startswith("publish 0:30:00"))
    assert "2024-01-02 00:30:00" in sla


def test_logs_page_per_task_and_attempt_escaped(client: TestClient, demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}/logs").text
    headings = re.findall(r'<h2 class="mono">(.*?)</h2>', html)
    assert headings == [
        "extract.fetch · attempt 1",
        "extract.fetch · attempt 2",
        "publish · attempt 1",
    ]
    assert "publishing &lt;b&gt;3&lt;/b&gt; rows" in html
    assert "<b>3</b>" not in html and "s3cret" not in html
    one = client.get(f"/runs/{demo.failed_run}/logs", params={"task": "publish"}).text
    assert re.findall(r'<h2 class="mono">(.*?)</h2>', one) == ["publish · attempt 1"]


def test_unknown_run_page_is_404_naming_the_closest(client: TestClient, demo) -> None:
    typo = demo.good_run[:-1] + ("x" if demo.good_run[-1] != "x" else "y")
    response = client.get(f"/runs/{typo}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"Did you mean &#39;{demo.good_run}&#39;?" in response.text


def test_pipelines_page(client: TestClient, demo) -> None:
    rows = _rows(client.get("/pipelines").text)
    row = next(r for r in rows if r.startswith("web_demo"))
    assert f"2 {demo.good_run} success @daily 4" in row


def test_pages_of_unfinished_runs_reload(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, state_url=f"sqlite:///{tmp_path / 'state.db'}")
    day = datetime(2024, 6, 1, tzinfo=UTC)
    with open_store(settings.state_url) as store:
        run, _ = store.create_run("live", day, day, day + timedelta(days=1))
        store.update_run(run.run_id, state="running", started_at=datetime.now(UTC))
        store.ensure_task_instances(run.run_id, [("step", -1)])
        with TestClient(create_app(settings, store=store, refresh_seconds=7)) as http:
            runs_html = http.get("/").text
            run_html = http.get(f"/runs/{run.run_id}").text
    assert '<meta http-equiv="refresh" content="7">' in runs_html
    assert '<meta http-equiv="refresh" content="7">' in run_html
    assert "…" in _rows(runs_html)[1]  # duration still counting
