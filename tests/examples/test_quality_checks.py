"""examples/quality_checks.py runs: severities, quarantine, reconcile, SQL tests, stored results."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from headrace.state import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quality_checks.py"


def test_quality_checks_example(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HEADRACE_STATE_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "rows in 8: passed 5, quarantined 3" in out
    assert (
        "quarantined customer 6: invalid email; status is not one of 'active', 'inactive' "
        "(matches_regex(email); accepted_values(status))"
    ) in out
    assert "reconciled: extracted 8 = loaded 5 + quarantined 3" in out
    assert "task 'sql_tests': 2 of 2 expectations passed" in out
    assert (
        "validate stopped: - not_null(email) on column 'email': 1 of 8 rows (12.50%) failed" in out
    )
    assert "0 passed, 6 failed (2 with severity fail)." in out  # not_null(email) mostly=0.8 passed
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT list(customer_id ORDER BY customer_id) FROM customers"
        ).fetchall()[0][0] == [1, 4, 5, 7, 8]
        reasons = con.execute(
            "SELECT customer_id, _hr_reason FROM customers_quarantine ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in reasons] == [2, 3, 6]
    (run_id,) = set(re.findall(r"\b01[0-9a-z]{16}\b", out))
    with open_store(tmp_path / "state.db") as store:
        results = store.get_check_results(run_id)
    assert len(results) == 8 + 3 + 2 + 1
    by_key = {(r.task_id, r.expectation): r for r in results}
    assert by_key[("clean", "matches_regex(email)")].failed == 2
    mostly = by_key[("clean", "not_null(email)")]  # 7 of 8 present >= mostly 0.8
    assert (mostly.status, mostly.failed) == ("passed", 1)
    assert by_key[("load", "unique(customer_id)")].status == "passed"
    assert by_key[("sql_tests", "one_row_per_email")].status == "passed"
