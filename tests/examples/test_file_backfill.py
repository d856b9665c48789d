"""examples/file_backfill.py: daily CSV files, replace-partition backfill, bad lines kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "file_backfill.py"


def run_example(home: Path, *args: str, ok: bool = True) -> str:
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
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done.stdout


def orders(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "file_backfill.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT order_id, CAST(ordered_at AS DATE)::TEXT FROM orders ORDER BY order_id"
        ).fetchall()


def test_backfill_keeps_bad_lines_and_rerun_replaces_the_day(tmp_path: Path):
    out = run_example(tmp_path)
    assert "2024-01-01: create -> success, 3 lines: 3 loaded (0 replaced), 0 kept aside" in out
    assert "2024-01-02: create -> success, 4 lines: 3 loaded (0 replaced), 1 kept aside" in out
    assert "2024-01-03: create -> success, 3 lines: 2 loaded (0 replaced), 1 kept aside" in out
    assert "orders per day: 2024-01-01 3, 2024-01-02 3, 2024-01-03 2" in out
    # malformed lines are shown with their file and line number (header = line 1)
    assert "kept: orders_2024-01-02.csv:4: expected 4 fields, found 3: '6,14,3.10'" in out
    assert "kept: orders_2024-01-03.csv:2: column 'amount': 'twelve' is not double" in out
    assert [i for i, _ in orders(tmp_path)] == [1, 2, 3, 4, 5, 7, 9, 10]

    # a second backfill of the same days has nothing to do
    assert "backfill: 0 succeeded, 3 skipped, 0 failed" in run_example(tmp_path)

    # the partner re-delivers day 2 corrected: rerunning that day replaces its partition
    day2 = tmp_path / "landing" / "orders_2024-01-02.csv"
    day2.write_text(day2.read_text().replace("6,14,3.10\n", "6,14,3.10,2024-01-02 12:00:00\n"))
    out = run_example(tmp_path, "--start", "2024-01-02", "--end", "2024-01-02", "--rerun")
    assert "2024-01-02: rerun -> success, 4 lines: 4 loaded (3 replaced), 0 kept aside" in out
    assert "orders per day: 2024-01-01 3, 2024-01-02 4, 2024-01-03 2" in out
    rows = orders(tmp_path)
    assert [i for i, _ in rows] == [1, 2, 3, 4, 5, 6, 7, 9, 10]  # no duplicates
    assert [i for i, day in rows if day == "2024-01-02"] == [4, 5, 6, 7]
    with duckdb.connect(str(tmp_path / "file_backfill.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT file, line FROM orders_quarantine ORDER BY line").fetchall()
    assert [(Path(f).name, n) for f, n in kept] == [
        ("orders_2024-01-03.csv", 2),
        ("orders_2024-01-02.csv", 4),
    ]


def test_a_missing_day_fails_and_names_the_file(tmp_path: Path):
    run_example(tmp_path)
    out = run_example(tmp_path, "--start", "2024-01-04", "--end", "2024-01-04", ok=False)
    assert "backfill: 0 succeeded, 0 skipped, 1 failed" in out
    assert "2024-01-04: create -> failed" in out
    assert "orders_2024-01-04.csv; the partner has not delivered this day yet" in out
