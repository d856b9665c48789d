"""The web UI and its JSON API over a state store holding a real run.

What it does, in order:
1. runs ``examples/hello_pipeline.py`` (a retry, a mapped task) into a state store
   in FOLDER, as ``headrace run`` would;
2. serves that store with the web app (the same one ``headrace web`` serves) on a
   free port of 127.0.0.1, in a background thread;
3. fetches the runs page, the run page, the JSON API and ``/metrics`` over HTTP and
   prints what they hold;
4. acts through the API with the token (what the buttons of the UI do): retries one
   task of the run with everything downstream of it, waits for it, and prints the
   audit log; an action without the token is refused;
5. stops the server (or keeps serving with ``--keep``, for a look in a browser).

Run it:  python examples/web_ui.py [FOLDER] [--keep]
(FOLDER defaults to a temporary directory.) Over your own runs, simply:
``headrace web`` (http://127.0.0.1:8321/); actions need ``HEADRACE_WEB_TOKEN`` or
``HEADRACE_WEB_USERS`` set.
"""

from __future__ import annotations

import re
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.state import open_store
from headrace.web import create_app
from headrace.web.auth import WebAuth

HELLO = Path(__file__).resolve().parent / "hello_pipeline.py"
TOKEN = "example-token-change-me-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_rows(html: str) -> list[str]:
    """Table rows of a page as plain text: what a person reads on it."""
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def main(folder: Path, keep: bool) -> None:
    settings = Settings(home=folder / "home", state_url=f"sqlite:///{folder / 'state.db'}")
    with open_store(settings.state_url) as store:
        hello = load_pipelines(HELLO)["hello"]
        result = Runner(store, executor="inprocess", settings=settings).run(
            hello, logical_date=datetime(2024, 1, 1, tzinfo=UTC)
        )
        print(f"ran pipeline hello: run {result.run_id} {result.state}")

        port = free_port()
        # The CLI reads the token from HEADRACE_WEB_TOKEN (WebAuth.from_env); here it is given.
        app = create_app(
            settings,
            store=store,
            pipelines_dir=HELLO.parent,
            auth=WebAuth(token=TOKEN),
            executor="inprocess",
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:  # uvicorn sets it once the socket listens
            if not thread.is_alive():
                raise SystemExit(f"the web server did not start on port {port}")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        print(f"serving {base}/ over the state store {folder / 'state.db'}")
        try:
            refused = httpx.post(f"{base}/api/runs/{result.run_id}/resume", timeout=10)
            print(
                f"POST /api/runs/{result.run_id}/resume without the token -> {refused.status_code}"
            )
            with httpx.Client(
                base_url=base, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:
                runs = http.get("/api/runs").json()
                print(f"GET /api/runs: {runs['total']} run(s)")
                for run in runs["runs"]:
                    print(
                        f"  {run['run_id']} {run['pipeline']} {run['state']} in {run['duration_seconds']}s"
                    )

                detail = http.get(f"/api/runs/{result.run_id}").json()
                print(f"GET /api/runs/{result.run_id}: {len(detail['tasks'])} task instances")
                for ti in sorted(detail["tasks"], key=lambda t: (t["task_id"], t["map_index"])):
                    label = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
                    print(f"  {label}: {ti['state']}, attempts {ti['attempt']}")

                logs = http.get(
                    f"/api/runs/{result.run_id}/logs", params={"task": "fetch_greetings"}
                ).json()
                print(
                    f"GET /api/runs/{result.run_id}/logs?task=fetch_greetings: {len(logs)} log block(s)"
                )
                for log in logs:
                    print(f"  attempt {log['attempt']}: {log['text'].strip().splitlines()[-1]}")

                page = http.get("/")
                print(f"GET / -> {page.status_code} {page.headers['content-type']}")
                for row in page_rows(page.text):
                    print(f"  | {row}")
                run_page = http.get(f"/runs/{result.run_id}")
                print(f"GET /runs/{result.run_id} -> {run_page.status_code}, task rows:")
                for row in page_rows(run_page.text)[1:]:
                    print(f"  | {row}")

                missing = http.get("/api/runs/01nosuchrun0000000")
                print(
                    f"GET /api/runs/01nosuchrun0000000 -> {missing.status_code}: {missing.json()['detail']}"
                )

                retry = http.post(
                    f"/api/runs/{result.run_id}/tasks/fetch_greetings/retry",
                    json={"downstream": True},
                )
                while http.get(f"/api/runs/{result.run_id}").json()["run"]["state"] not in (
                    "success",
                    "failed",
                ):
                    time.sleep(0.1)
                # Printed once the run is over: the in-process executor captures stdout while tasks run.
                print(
                    f"POST .../tasks/fetch_greetings/retry -> {retry.status_code}: {retry.json()['message']}"
                )
                print(
                    f"  run {result.run_id} is {http.get(f'/api/runs/{result.run_id}').json()['run']['state']} again"
                )
                for action in http.get("/api/actions").json()["actions"]:
                    print(
                        f"  audit: {action['at'][:19]} {action['actor']} {action['action']} {action['target']} "
                        f"{action['outcome']}"
                    )
                grid = http.get("/pipelines/hello/grid")
                print(
                    f"GET /pipelines/hello/grid -> {grid.status_code}; /pipelines/hello/graph -> "
                    f"{http.get('/pipelines/hello/graph').status_code} (server-drawn SVG)"
                )

                metrics = http.get("/metrics").text
                print("GET /metrics (some lines):")
                for line in metrics.splitlines():
                    if line.startswith(
                        ("headrace_runs{", "headrace_task_retries_total")
                    ) and not line.endswith(" 0.0"):
                        print(f"  {line}")
            if keep:
                print("serving until Ctrl+C")
                while thread.is_alive():
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        print("server stopped")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--keep"]
    target = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="headrace-web-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target, keep="--keep" in sys.argv[1:])
