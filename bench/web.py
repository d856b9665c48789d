"""Server-side render time of the web UI over a large store: runs page, grid, run page, /metrics.

The store holds ``--runs`` runs (default 10,000) of one 20-task pipeline, written with
bulk inserts (not the engine): every run has its task instances, one log line per task
and two check results; 5% of the runs failed with an error. The same data goes into a
SQLite file and a fresh PostgreSQL schema. Each page is requested through the whole
FastAPI app in process (routing, middleware, store queries, template rendering); the
figure is the median of ``--repeat`` requests after one warm-up request.

Pages: ``/`` (runs page: 50 runs and the total), ``/pipelines/bench_web/grid`` (the last
25 runs × 20 tasks), ``/runs/<id>`` (one run: 20 tasks, logs, checks), ``/metrics``
(warm: the collector caches finished runs; the first, cold scrape is reported apart).

Run:  PYTHONPATH=src .venv/bin/python bench/web.py [--runs 10000] [--postgres URL]
The last line is one JSON object: ``runs_page_ms``, ``grid_ms``, ``run_page_ms``,
``metrics_ms`` (the slower of SQLite and PostgreSQL for each) and the per-backend figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from headrace.config import Settings
from headrace.state import SqlStateStore, open_store
from headrace.state.schema import check_results, runs, task_instances, task_logs
from headrace.web import create_app

PIPELINE = "bench_web"
TASKS = [f"t{i:02d}" for i in range(1, 21)]
DAY = datetime(2000, 1, 1, tzinfo=UTC)
CHUNK = 5000


def pipeline_file(folder: Path) -> Path:
    """A 20-task chain pipeline named ``bench_web`` (the grid's task order comes from it)."""
    lines = ["from datetime import datetime", "from headrace import pipeline, task", ""]
    for tid in TASKS:
        lines += ["@task", f"def {tid}(x: int = 0) -> int:", "    return x + 1", ""]
    lines += [
        '@pipeline(schedule="@hourly", start_date=datetime(2000, 1, 1))',
        f"def {PIPELINE}():",
        "    v = t01()",
    ]
    lines += [f"    v = {tid}(v)" for tid in TASKS[1:]]
    path = folder / "bench_web.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def rows(n_runs: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(table name, rows) chunks of the synthetic store, runs before their children."""
    now = datetime.now(UTC)
    for start in range(0, n_runs, CHUNK // 4):
        run_rows, ti_rows, log_rows, check_rows = [], [], [], []
        for i in range(start, min(start + CHUNK // 4, n_runs)):
            run_id = f"run{i:08d}"
            logical = DAY + timedelta(hours=i)
            failed = i % 20 == 7
            began = logical + timedelta(hours=1)
            run_rows.append(
                {
                    "run_id": run_id,
                    "pipeline": PIPELINE,
                    "logical_date": logical,
                    "data_interval_start": logical,
                    "data_interval_end": logical + timedelta(hours=1),
                    "state": "failed" if failed else "success",
                    "params": {"full_refresh": False},
                    "trigger": "scheduled",
                    "created_at": began,
                    "started_at": began,
                    "ended_at": began + timedelta(seconds=40),
                    "pid": 1,
                    "hostname": "bench",
                    "heartbeat_at": began,
                    "error": "task(s) did not succeed: t12" if failed else None,
                    "source_file": None,
                }
            )
            for k, tid in enumerate(TASKS):
                t0 = began + timedelta(seconds=2 * k)
                state = (
                    "success"
                    if not failed or k < 11
                    else ("failed" if k == 11 else "upstream_failed")
                )
                ti_rows.append(
                    {
                        "run_id": run_id,
                        "task_id": tid,
                        "map_index": -1,
                        "state": state,
                        "attempt": 1,
                        "started_at": t0 if k <= 11 or not failed else None,
                        "ended_at": t0 + timedelta(seconds=1.5) if k <= 11 or not failed else None,
                        "next_try_at": None,
                        "error": "RuntimeError: source not ready" if state == "failed" else None,
                        "error_kind": "RuntimeError" if state == "failed" else None,
                        "result_kind": "json",
                        "result_json": k,
                        "result_path": None,
                        "rows": 1000 + k,
                        "pid": 1,
                        "hostname": "bench",
                    }
                )
                log_rows.append(
                    {
                        "run_id": run_id,
                        "task_id": tid,
                        "map_index": -1,
                        "attempt": 1,
                        "text": f"{tid} processed {1000 + k} rows\n",
                        "created_at": t0,
                    }
                )
            for name in ("not_null(id)", "unique(id)"):
                check_rows.append(
                    {
                        "run_id": run_id,
                        "task_id": "t05",
                        "expectation": name,
                        "severity": "fail",
                        "status": "passed",
                        "total": 1000,
                        "failed": 0,
                        "column": "id",
                        "details": {},
                        "created_at": now,
                    }
                )
        yield "runs", run_rows
        yield "task_instances", ti_rows
        yield "task_logs", log_rows
        yield "check_results", check_rows


def fill(store: SqlStateStore, n_runs: int) -> float:
    """Bulk-insert the synthetic store; seconds taken."""
    tables = {
        "runs": runs,
        "task_instances": task_instances,
        "task_logs": task_logs,
        "check_results": check_results,
    }
    began = time.perf_counter()
    with store.engine.begin() as conn:
        for name, chunk in rows(n_runs):
            conn.execute(insert(tables[name]), chunk)
    if store.backend == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - began


def timed(http: TestClient, path: str, repeat: int) -> float:
    """Median milliseconds of ``repeat`` GETs of ``path`` after one warm-up."""
    first = http.get(path)
    assert first.status_code == 200, (path, first.status_code, first.text[:300])
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = http.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return statistics.median(samples)


def measure(store: SqlStateStore, folder: Path, n_runs: int, repeat: int) -> dict[str, float]:
    settings = Settings(home=folder / "home", state_url="sqlite:///unused.db")
    app = create_app(settings, store=store, pipelines_dir=folder, refresh_seconds=0)
    figures: dict[str, float] = {}
    with TestClient(app) as http:
        began = time.perf_counter()
        assert http.get("/metrics").status_code == 200
        figures["metrics_cold_ms"] = (time.perf_counter() - began) * 1000
        figures["runs_page_ms"] = timed(http, "/", repeat)
        figures["runs_page_filtered_ms"] = timed(
            http, f"/?pipeline={PIPELINE}&state=failed&q=t12&page=3", repeat
        )
        figures["grid_ms"] = timed(http, f"/pipelines/{PIPELINE}/grid?runs=25", repeat)
        figures["run_page_ms"] = timed(http, f"/runs/run{n_runs // 2:08d}", repeat)
        figures["metrics_ms"] = timed(http, "/metrics", repeat)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL URL ('' to skip); a fresh schema is used and dropped",
    )
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pipeline_file(folder)
        backends = [("sqlite", f"sqlite:///{folder / 'state.db'}", None)]
        if args.postgres:
            backends.append(("postgresql", args.postgres, f"bench_web_{int(time.time())}"))
        for name, url, schema in backends:
            store = open_store(url, schema=schema)
            try:
                seconds = fill(store, args.runs)
                print(
                    f"{name}: {args.runs:,} runs × {len(TASKS)} tasks bulk-inserted in {seconds:.1f}s",
                    flush=True,
                )
                results[name] = measure(store, folder, args.runs, args.repeat)
                print(
                    f"{name}: " + ", ".join(f"{k}={v:.1f}" for k, v in results[name].items()),
                    flush=True,
                )
            finally:
                if schema is not None:
                    with store.engine.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                store.close()
    keys = (
        "runs_page_ms",
        "grid_ms",
        "run_page_ms",
        "metrics_ms",
        "metrics_cold_ms",
        "runs_page_filtered_ms",
    )
    summary: dict[str, Any] = {k: round(max(r[k] for r in results.values()), 1) for k in keys}
    summary["runs"] = args.runs
    summary["backends"] = {b: {k: round(v, 1) for k, v in r.items()} for b, r in results.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
