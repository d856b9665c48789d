"""examples/queue_process_pool.py: CPU-heavy jobs in a process pool report progress."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "queue_process_pool.py"


def expected_digest(part: int, rows: int) -> str:
    """The example's fingerprint of part-<part>.csv, computed independently."""
    digest = hashlib.sha256()
    for i in range(rows):
        buffer = io.StringIO()
        csv.writer(buffer).writerow([part, i, f"user{i}@example.com", i * 7 % 1000])
        row = next(csv.reader(io.StringIO(buffer.getvalue())))
        row_hash = hashlib.sha256("\x1f".join(row).encode()).digest()
        for _ in range(20):
            row_hash = hashlib.sha256(row_hash).digest()
        digest.update(row_hash)
    return digest.hexdigest()


def test_queue_process_pool_demo(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--files", "3", "--rows", "6000",
         "--redis-url", url, "--prefix", prefix],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert [r["file"] for r in results] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert all(r["rows"] == 6000 for r in results)
    assert [r["sha256"] for r in results] == [expected_digest(n, 6000) for n in range(3)]
    assert report["main_pid"] not in {r["pid"] for r in results}  # hashed in the pool

    # Progress from the pool processes reached the worker: 5,000 rows (83%), then 100%.
    progress = re.findall(r"job (\S+) \((\S+)\) progress: (.*)", out.stdout)
    per_file: dict[str, list[str]] = {}
    for _, file, payload in progress:
        per_file.setdefault(Path(file).name, []).append(payload)
    assert per_file == {
        f"part-{n}.csv": ["{'rows': 5000, 'percent': 83}", "{'rows': 6000, 'percent': 100}"]
        for n in range(3)
    }
