"""examples/scheduled_pipeline.py: the brief's policies, and a short backfill of it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "scheduled_pipeline.py"


def run_example(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_policies_match_the_brief(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path))
    from headrace.engine import load_pipelines

    p = load_pipelines(EXAMPLE)["scheduled_customer_etl"]
    assert (p.schedule, p.catchup, p.max_active_runs) == ("0 2 * * *", False, 1)
    for t in p.tasks.values():
        assert t.retries.attempts == 4 and t.retries.delay == timedelta(minutes=5)
        assert t.retries.backoff == 2.0 and t.retries.max_delay == timedelta(hours=1)
        assert t.timeout == timedelta(hours=2) and t.sla == timedelta(hours=3)
    assert p.tasks["cleanup_temp_files"].trigger_rule == "all_done"
    assert p.upstream["cleanup_temp_files"] == ("count_loaded",)


def test_short_backfill_loads_each_day_once_and_cleans_up(tmp_path: Path):
    out = run_example(tmp_path, "--start", "2024-01-01", "--end", "2024-01-03")
    assert "backfill: 3 succeeded, 0 skipped, 0 failed" in out
    loaded = {
        d: int(n) for d, n in re.findall(r"(2024-01-0\d): create -> success, loaded (\d+)", out)
    }
    assert sorted(loaded) == ["2024-01-01", "2024-01-02", "2024-01-03"]

    # the source's own count per interval [day 02:00, next day 02:00)
    import sqlite3

    with sqlite3.connect(tmp_path / "scheduled_demo_crm.db") as conn:
        expected = dict(
            conn.execute(
                "SELECT date(updated_at, '-2 hours') AS d, count(*) FROM customers "
                "WHERE d BETWEEN '2024-01-01' AND '2024-01-03' GROUP BY d"
            ).fetchall()
        )
    assert loaded == expected
    with duckdb.connect(str(tmp_path / "scheduled_warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT CAST(load_date AS VARCHAR), count(*), count(*) FILTER (WHERE email <> lower(trim(email))) "
            "FROM customers_daily GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert [(d, n) for d, n, _ in rows] == sorted(expected.items())
    assert all(bad == 0 for _, _, bad in rows)
    # the shell cleanup removed the day's staged files
    assert list((tmp_path / "staging_files").glob("customers_*")) == []

    again = run_example(tmp_path, "--start", "2024-01-01", "--end", "2024-01-04")
    assert "backfill: 1 succeeded, 3 skipped, 0 failed" in again
    with duckdb.connect(str(tmp_path / "scheduled_warehouse.duckdb"), read_only=True) as con:
        [(row_count, distinct_ids)] = con.execute(
            "SELECT count(*), count(DISTINCT customer_id) FROM customers_daily"
        ).fetchall()
    assert row_count == distinct_ids  # no day loaded twice
