"""Record a run in the run-state store by hand, then inspect it with the CLI.

The engine does this for every run; doing it directly shows what is stored:
a run keyed by (pipeline, logical date), its task instances with states,
attempts, durations and rows, each attempt's log, and data-quality results.
Last, ``headrace cleanup --state --dry-run`` shows what retention would delete.

Run it:  python examples/state_store.py [FOLDER]
(FOLDER defaults to a temporary directory; the store is FOLDER/state.db.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headrace.cli import run_app
from headrace.state import CheckResultRecord, RunState, TaskState, open_store


def record_run(state_url: str) -> str:
    """Write one failed-then-retried run of a small ETL pipeline; return its run id."""
    day = datetime(2024, 3, 1, tzinfo=UTC)
    t0 = datetime(2024, 3, 2, 1, 0, tzinfo=UTC)
    with open_store(state_url) as store:
        run, created = store.create_run(
            "customer_etl", day, day, day + timedelta(days=1), params={"source": "demo"}
        )
        again, created_again = store.create_run("customer_etl", day, day, day + timedelta(days=1))
        print(
            f"created={created}, second trigger created={created_again}, same run: {again.run_id == run.run_id}"
        )
        store.update_run(run.run_id, state=RunState.RUNNING, started_at=t0, pid=os.getpid())
        store.ensure_task_instances(run.run_id, [("extract", -1), ("clean", -1), ("load", -1)])
        store.update_task_instances(
            [
                (run.run_id, "extract", -1, {"state": TaskState.SUCCESS, "attempt": 1, "rows": 1200,
                 "started_at": t0, "ended_at": t0 + timedelta(seconds=2)}),
                (run.run_id, "clean", -1, {"state": TaskState.SUCCESS, "attempt": 1, "rows": 1193,
                 "started_at": t0 + timedelta(seconds=2), "ended_at": t0 + timedelta(seconds=3)}),
            ]
        )  # fmt: skip
        store.append_log(run.run_id, "extract", -1, 1, "read 1200 rows past updated_at=2024-02-29")
        store.record_check_results(
            [
                CheckResultRecord(run.run_id, "clean", "email_valid", "quarantine", "failed",
                                  1200, 7, column="email", details={"percent": 0.58}),
            ]
        )  # fmt: skip
        # The load fails once, is retried, and succeeds on its second attempt.
        store.update_task_instance(
            run.run_id, "load", state=TaskState.UP_FOR_RETRY, attempt=1,
            started_at=t0 + timedelta(seconds=3), error="ConnectionError: warehouse busy",
        )  # fmt: skip
        store.append_log(run.run_id, "load", -1, 1, "merging 1193 rows ... connection refused")
        store.update_task_instance(
            run.run_id, "load", state=TaskState.SUCCESS, attempt=2, rows=1193, error=None,
            started_at=t0 + timedelta(seconds=8), ended_at=t0 + timedelta(seconds=10),
        )  # fmt: skip
        store.append_log(run.run_id, "load", -1, 2, "merged 1193 rows (7 quarantined)")
        store.update_run(run.run_id, state=RunState.SUCCESS, ended_at=t0 + timedelta(seconds=10))
        return run.run_id


def main(folder: Path) -> int:
    state_url = f"sqlite:///{folder / 'state.db'}"
    run_id = record_run(state_url)
    # The CLI reads the store location from the environment, like every headrace command.
    os.environ["HEADRACE_STATE_URL"] = state_url
    for argv in (
        ["runs"],
        ["show", run_id],
        ["logs", run_id, "load"],
        # retention: what deleting runs older than 30 days from the store would remove
        ["cleanup", "--older-than", "30d", "--state", "--dry-run"],
    ):
        print(f"\n$ headrace {' '.join(argv)}")
        code = run_app(argv)
        if code:
            return code
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
