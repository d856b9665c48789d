"""The pipeline pages (overview, grid, graph), run search and pagination, the quarantine page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from headrace.engine import Runner, load_pipelines

OPS = Path(__file__).parent / "ops" / "web_ops.py"
BEARER = {"Authorization": "Bearer test-token-0123456789abcdef"}


def _two_runs(store, tmp: Path) -> tuple[str, str]:
    from headrace.config import Settings

    settings = Settings(home=tmp / "home", state_url="unused")
    pipe = load_pipelines(OPS)["web_ops"]
    runner = Runner(store, executor="inprocess", settings=settings)
    flag = tmp / "broken"
    flag.touch()
    failed = runner.run(pipe, datetime(2024, 1, 1, tzinfo=UTC), params={"fail_file": str(flag)})
    good = runner.run(pipe, datetime(2024, 1, 2, tzinfo=UTC))
    return failed.run_id, good.run_id


def test_run_page_collapses_mapped_elements_in_natural_order(ops) -> None:
    http, store, tmp = ops
    _, good = _two_runs(store, tmp)
    html = http.get(f"/runs/{good}", headers=BEARER).text
    assert "×12" in html and "12 success" in html
    labels = re.findall(r"prepare\.square\[(\d+)\]", html)
    assert labels[:12] == [str(i) for i in range(12)]  # square[2] before square[10]


def test_run_timeline_shows_the_failed_try_and_the_retry_wait(ops) -> None:
    http, store, tmp = ops
    from headrace.config import Settings

    pipe = load_pipelines(OPS)["web_ops"]
    runner = Runner(
        store, executor="inprocess", settings=Settings(home=tmp / "home", state_url="unused")
    )
    run = runner.run(pipe, datetime(2024, 1, 3, tzinfo=UTC), params={"flaky": True})
    html = http.get(f"/runs/{run.run_id}", headers=BEARER).text
    row = html[html.index('data-task="prepare.numbers"') :]
    row = row[: row.index("</tr>")]
    spans = re.findall(r'data-span="(\w+)" style="left: ([\d.]+)%; width: ([\d.]+)%"', row)
    assert [kind for kind, _, _ in spans] == ["attempt", "wait"]
    wait = re.search(r"retry wait (\d+\.\d\d)s before attempt 2", row)
    assert wait and float(wait[1]) >= 0.35  # Retry(delay=0.4)
    assert float(spans[1][2]) > 5  # the wait is a visible part of the run's span
    assert "2 attempts" in row


def test_graph_is_server_side_svg_with_groups_branches_and_mapped_counts(ops) -> None:
    http, store, tmp = ops
    _two_runs(store, tmp)
    html = http.get("/pipelines/web_ops/graph", headers=BEARER).text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "<script" not in html and "cdn" not in html.lower()
    tasks = re.findall(r'<g class="node" data-task="([^"]+)" data-state="([^"]*)"', svg)
    assert dict(tasks) == {
        "prepare.numbers": "success",
        "prepare.square": "success",
        "prepare.total": "success",
        "pick": "success",
        "load": "success",
        "skip_report": "skipped",
        "publish": "success",
    }
    assert "square ×12" in svg and "▸ prepare" in svg and "pick: success (branch)" in svg
    assert svg.count('class="edge"') == 7


def test_grid_shows_runs_by_tasks_with_states_and_details(ops) -> None:
    http, store, tmp = ops
    failed, good = _two_runs(store, tmp)
    html = http.get("/pipelines/web_ops/grid", headers=BEARER).text
    rows = re.findall(r'<tr data-task="([^"]+)">(.*?)</tr>', html, flags=re.S)
    assert [tid for tid, _ in rows] == [
        "prepare.numbers",
        "prepare.square",
        "prepare.total",
        "pick",
        "load",
        "skip_report",
        "publish",
    ]
    cells = {tid: re.findall(r'data-state="(\w+)"', body) for tid, body in rows}
    assert cells["load"] == ["failed", "success"]  # oldest run first
    assert cells["publish"] == ["upstream_failed", "success"]
    assert "warehouse not ready" in html and "elements: 12 success" in html


def test_pipeline_page_shows_doc_schedule_params_sla_and_source(ops) -> None:
    http, _, _ = ops
    html = http.get("/pipelines/web_ops", headers=BEARER).text
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "Squares numbers, sums them and publishes the total." in text
    assert "Owner data-team" in text and "demo" in text and "@daily" in text
    assert re.search(r"Next run \d{4}-\d\d-\d\d", text)
    assert "publish 2:00:00" in text
    for name, kind in (("n", "int"), ("pause", "float"), ("fail_file", "str")):
        assert f"{name} {kind}" in text
    assert "def web_ops():" in html


def test_run_search_filters_and_paginates(ops) -> None:
    http, store, tmp = ops
    failed, good = _two_runs(store, tmp)
    found = http.get("/", params={"q": "WAREHOUSE not ready"}, headers=BEARER).text
    assert failed in found and good not in found
    dated = http.get(
        "/", params={"since": "2024-01-02", "until": "2024-01-02"}, headers=BEARER
    ).text
    assert good in dated and failed not in dated
    first = http.get("/", params={"limit": 1}, headers=BEARER).text
    second = http.get("/", params={"limit": 1, "page": 2}, headers=BEARER).text
    assert good in first and failed not in first and "page 1 of 2" in first
    assert failed in second and "page 2 of 2" in second and 'rel="prev"' in second


def test_quarantine_page_lists_held_back_rows_with_reasons(client, demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}/quarantine").text
    assert "2 of 5 rows quarantined" in html
    assert (
        "broken" in html
        and "also broken" in html
        and 'reason: <span class="mono">email does not match' in html
    )
    assert "check results" in html  # says where the rows come from


def test_api_runs_pages_and_searches_like_the_page(ops) -> None:
    http, store, tmp = ops
    failed, good = _two_runs(store, tmp)
    first = http.get("/api/runs", params={"limit": 1}, headers=BEARER).json()
    second = http.get("/api/runs", params={"limit": 1, "offset": 1}, headers=BEARER).json()
    assert (first["total"], [r["run_id"] for r in first["runs"]]) == (2, [good])
    assert [r["run_id"] for r in second["runs"]] == [failed]
    found = http.get(
        "/api/runs", params={"q": "not ready", "since": "2024-01-01T00:00:00"}, headers=BEARER
    ).json()
    assert [r["run_id"] for r in found["runs"]] == [failed] and found["total"] == 1
