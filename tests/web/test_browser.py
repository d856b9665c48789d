"""The web UI in a real browser: Debian's Chromium driven by Playwright against ``headrace web``.

The server is the real CLI (``headrace web`` under uvicorn on a free loopback port) over a
real SQLite store, with a token and one user configured; runs started from the UI are
driven by the same Runner as the CLI (process executor) in the server's background
threads. Screenshots of the grid, graph, run and pipeline pages are saved to
``.headrace/artifacts/web-screenshots`` (or ``$HEADRACE_SCREENSHOTS``); the path is printed.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; never ``playwright install``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace.web.auth import hash_password

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the playwright package"
)

OPS = Path(__file__).parent / "ops"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-token-0123456789abcdef"
CLI = [sys.executable, "-c", "from headrace.cli import main; main()"]


@dataclass
class Server:
    url: str
    folder: Path
    shots: Path

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30, **kw
        )

    def run(self, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/runs/{run_id}").json()

    def wait(self, check: Callable[[], bool], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def wait_run(self, run_id: str, seconds: float = 60) -> str:
        self.wait(
            lambda: self.run(run_id)["run"]["state"] in ("success", "failed"),
            f"run {run_id}",
            seconds,
        )
        return str(self.run(run_id)["run"]["state"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    folder = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {
        **os.environ,
        "HEADRACE_STATE_URL": f"sqlite:///{folder / 'state.db'}",
        "HEADRACE_HOME": str(folder),
        "HEADRACE_WEB_TOKEN": TOKEN,
        "HEADRACE_WEB_USERS": f"alice:{hash_password('wonderland')}",
    }
    proc = subprocess.Popen(
        [*CLI, "web", "--port", str(port), "--pipelines", str(OPS), "--refresh", "1"],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    shots = Path(
        os.environ.get("HEADRACE_SCREENSHOTS") or Path.cwd() / ".headrace/artifacts/web-screenshots"
    )
    shots.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/api/health", timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.communicate()[0].decode(errors="replace")) from None
            time.sleep(0.2)
    try:
        yield Server(url, folder, shots)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
        print(f"\nscreenshots of the web UI: {shots}\n--- server output ---\n{output[-3000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A logged-in page (user alice, through the login form)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.goto(server.url + "/pipelines/web_ops")
    assert "/login" in tab.url  # pages need a session when authentication is configured
    tab.fill('input[name="user"]', "alice")
    tab.fill('input[name="password"]', "wonderland")
    tab.click("#login")
    tab.wait_for_url(server.url + "/pipelines/web_ops")
    yield tab
    context.close()


def _trigger(page: Any, server: Server, **params: str) -> str:
    page.goto(server.url + "/pipelines/web_ops")
    for name, value in params.items():
        page.fill(f'input[name="param.{name}"]', value)
    page.click("#trigger")
    page.wait_for_url(f"{server.url}/runs/**")
    assert "started" in page.inner_text(".flash")
    return str(page.url.rsplit("/runs/", 1)[1].split("?")[0])


def _ran(folder: Path) -> list[str]:
    file = folder / "ran.txt"
    return file.read_text().split() if file.exists() else []


def test_trigger_from_the_pipeline_page_runs_to_success(page: Any, server: Server) -> None:
    work = server.folder / "trigger"
    work.mkdir()
    run_id = _trigger(page, server, n="15", dir=str(work), flaky="true")
    assert server.wait_run(run_id) == "success"
    assert server.run(run_id)["run"]["params"]["n"] == 15
    page.reload()
    assert page.inner_text("h1 .state") == "success"
    assert "×15" in page.inner_text("table")
    assert "2 attempts" in page.inner_text('tr:has(td[data-task="prepare.numbers"])')
    page.screenshot(path=str(server.shots / "run.png"), full_page=True)
    page.goto(server.url + "/pipelines/web_ops")
    page.screenshot(path=str(server.shots / "pipeline.png"), full_page=True)
    page.goto(server.url + "/actions")
    assert "alice" in page.inner_text("#actions") and "trigger" in page.inner_text("#actions")


def test_retry_of_a_failed_task_runs_its_downstream(page: Any, server: Server) -> None:
    work = server.folder / "retry"
    work.mkdir()
    flag = work / "broken"
    flag.touch()
    run_id = _trigger(page, server, fail_file=str(flag), dir=str(work))
    assert server.wait_run(run_id) == "failed"
    assert _ran(work) == ["load"]
    flag.unlink()
    page.reload()
    page.screenshot(path=str(server.shots / "run_failed.png"), full_page=True)
    page.click('tr:has(td[data-task="load"]) button[data-action="retry"]')
    page.wait_for_url(f"{server.url}/runs/{run_id}?flash=*")
    assert server.wait_run(run_id) == "success"
    assert _ran(work) == ["load", "load", "publish"]
    tasks = {t["task_id"]: t["state"] for t in server.run(run_id)["tasks"] if t["map_index"] < 0}
    assert tasks["publish"] == "success"


def test_backfill_of_five_days_makes_five_runs(page: Any, server: Server) -> None:
    page.goto(server.url + "/pipelines/web_ops")
    page.fill('input[name="start"]', "2024-03-01")
    page.fill('input[name="end"]', "2024-03-05")
    page.click("#backfill")
    page.wait_for_url(f"{server.url}/pipelines/web_ops?flash=*")
    assert "backfill of web_ops from 2024-03-01 to 2024-03-05 started" in page.inner_text(".flash")

    def backfilled() -> list[dict[str, Any]]:
        runs = server.api("GET", "/api/runs", params={"pipeline": "web_ops", "limit": 100}).json()[
            "runs"
        ]
        return [r for r in runs if r["trigger"] == "backfill"]

    server.wait(
        lambda: len(backfilled()) == 5 and all(r["state"] == "success" for r in backfilled()),
        "5 backfill runs",
        seconds=90,
    )
    assert sorted(r["logical_date"][:10] for r in backfilled()) == [
        f"2024-03-0{d}" for d in range(1, 6)
    ]
    flag = server.folder / "grid-broken"
    flag.touch()  # one failed run, so the grid shows failed and upstream_failed squares too
    failed = server.api(
        "POST", "/api/pipelines/web_ops/runs", json={"params": {"fail_file": str(flag)}}
    )
    assert server.wait_run(failed.json()["run_id"]) == "failed"
    page.goto(server.url + "/pipelines/web_ops/grid")
    assert page.locator('tr[data-task="publish"] [data-state]').count() >= 7
    page.screenshot(path=str(server.shots / "grid.png"), full_page=True)
    page.goto(server.url + "/pipelines/web_ops/graph")
    assert page.locator("svg g.node").count() == 7
    page.screenshot(path=str(server.shots / "graph.png"), full_page=True)


def test_unauthenticated_action_is_refused(browser: Any, server: Server) -> None:
    context = browser.new_context()
    try:
        response = context.request.post(server.url + "/api/pipelines/web_ops/pause")
        assert response.status == 401
        form = context.request.post(
            server.url + "/actions/pause", form={"pipeline": "web_ops", "paused": "1"}
        )
        assert form.status == 401
    finally:
        context.close()
    assert server.api("GET", "/api/actions").json()["actions"][0]["action"] != "pause"


def test_form_without_csrf_token_is_refused(page: Any, server: Server) -> None:
    page.goto(server.url + "/pipelines/web_ops")
    # A forged form, as another site would post it: the session cookie but no CSRF token.
    page.evaluate("""() => {
        const f = document.createElement('form'); f.method = 'post'; f.action = '/actions/pause';
        for (const [k, v] of [['pipeline', 'web_ops'], ['paused', '1']]) {
            const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i);
        }
        document.body.appendChild(f); f.submit();
    }""")
    page.wait_for_url(server.url + "/actions/pause")
    assert "CSRF" in page.inner_text("main")
    page.goto(server.url + "/pipelines/web_ops")
    assert page.inner_text("#pause") == "Pause schedule"  # still not paused
    page.click("#pause")  # the real form carries the token
    page.wait_for_url(f"{server.url}/pipelines/web_ops?flash=*")
    assert page.inner_text("#pause") == "Unpause schedule"
    page.click("#pause")
    page.wait_for_url(f"{server.url}/pipelines/web_ops?flash=*")


def test_double_resume_runs_each_task_once(page: Any, server: Server) -> None:
    work = server.folder / "double"
    work.mkdir()
    flag = work / "broken"
    flag.touch()
    run_id = _trigger(page, server, fail_file=str(flag), dir=str(work), pause="1.5")
    assert server.wait_run(run_id) == "failed"
    flag.unlink()
    (work / "ran.txt").unlink()
    other = page.context.new_page()
    for tab in (page, other):
        tab.goto(f"{server.url}/runs/{run_id}")
    # Two clicks at once, from two tabs.
    page.click("#resume", no_wait_after=True)
    other.click("#resume", no_wait_after=True)
    for tab in (page, other):
        tab.wait_for_load_state()
        tab.wait_for_url(lambda url: "flash=" in url or url.endswith("/actions/resume"))
    assert server.wait_run(run_id) == "success"
    assert sorted(_ran(work)) == ["load", "publish"]
    texts = [tab.inner_text("main") for tab in (page, other)]
    assert sum("resumed" in t for t in texts) == 1, texts
    assert sum("taken by another resume" in t or "already running" in t for t in texts) == 1, texts
    other.close()


def test_mark_tasks_success_makes_the_run_succeed(page: Any, server: Server) -> None:
    work = server.folder / "mark"
    work.mkdir()
    flag = work / "broken"
    flag.touch()
    run_id = _trigger(page, server, fail_file=str(flag))
    assert server.wait_run(run_id) == "failed"
    page.reload()
    for task in ("load", "publish"):
        page.click(f'tr:has(td[data-task="{task}"]) button[data-action="mark-success"]')
        page.wait_for_url(f"{server.url}/runs/{run_id}?flash=*")
        assert f"task {task} marked success" in page.inner_text(".flash")
    assert page.inner_text("h1 .state") == "success"
    assert server.run(run_id)["run"]["state"] == "success"
    page.goto(server.url + "/actions")
    rows = page.inner_text("#actions")
    assert f"{run_id}/publish" in rows and "mark" in rows


def test_runs_page_searches_and_pages_in_the_browser(page: Any, server: Server) -> None:
    flag = server.folder / "search-broken"
    flag.touch()
    for _ in range(3):  # failed runs to find, and enough runs for two pages of two
        started = server.api(
            "POST", "/api/pipelines/web_ops/runs", json={"params": {"fail_file": str(flag)}}
        )
        assert server.wait_run(started.json()["run_id"]) == "failed"
    page.goto(server.url + "/")
    page.select_option('select[name="state"]', "failed")
    page.fill('input[name="q"]', "warehouse not ready")
    page.click('form.search button[type="submit"]')
    page.wait_for_url("**/?*state=failed*")
    failed = server.api(
        "GET", "/api/runs", params={"state": "failed", "q": "warehouse not ready"}
    ).json()
    cells = page.locator("table tbody tr td.id").all_inner_texts()
    assert failed["total"] >= 1 and cells == [r["run_id"] for r in failed["runs"]]
    page.goto(server.url + "/?limit=2")
    total = server.api("GET", "/api/runs").json()["total"]
    assert f"page 1 of {-(-total // 2)}" in page.inner_text(".pager")
    page.click('a[rel="next"]')
    assert "page 2 of" in page.inner_text(".pager")
    assert page.locator("table tbody tr").count() == min(2, total - 2)
