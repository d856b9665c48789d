"""examples/csv_queue.py runs end to end against the real Redis."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csv_queue.py"


def test_csv_queue_demo(redis_prefix: tuple[str, str], tmp_path: Path) -> None:
    url, prefix = redis_prefix
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "demo", "--rows", "1100", "--workdir", str(tmp_path),
         "--redis-url", url, "--prefix", prefix],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])

    # 1100 rows: every 7th has a bad email (157), every 13th a bad date (84), 12 both.
    processed = results["process-csv"]
    assert processed["errorCount"] == 157 + 84 - 12
    assert processed["processedCount"] == 1100 - processed["errorCount"]
    assert len(processed["errors"]) == 10
    assert processed["errors"][0] == {
        "row": 7, "line": 8, "error": "Invalid email",
        "data": {"id": "7", "first_name": "First7", "last_name": "Last7", "email": "invalid-7.example.com",
                 "phone": "(555) 007-0007", "created_at": "2024-03-08T10:07:00"},
    }  # fmt: skip
    assert processed["errors"][1]["row"] == 13
    assert processed["errors"][1]["error"] == "Invalid created_at 'not a date'"
    assert "Job csv-" in out.stdout and 'progress: {"rows": 1000}' in out.stdout

    with open(processed["outputFile"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == processed["processedCount"]
    assert rows[0]["email"] == "user.1@example.com"
    assert rows[0]["phone"] == "5550010001"
    assert rows[0]["full_name"] == "First1 Last1"
    assert rows[0]["created_at"] == "2024-03-02T10:01:00.000Z"

    assert results["validate-data"] == {
        "valid": False, "rows": 1100, "invalidEmails": 157, "missingColumns": [],
    }  # fmt: skip
    assert results["aggregate-data"]["groups"] == 2  # example.com and the bad ones (no domain)
    with open(results["aggregate-data"]["outputFile"], newline="") as fh:
        domains = {r["domain"]: int(r["rows"]) for r in csv.DictReader(fh)}
    assert domains == {"example.com": 1100 - 157, "": 157}  # no domain: written as empty

    daily = results["daily-etl"]
    assert daily["pattern"] == "0 2 * * *"
    assert daily["nextRun"].endswith("T02:00:00+00:00")
