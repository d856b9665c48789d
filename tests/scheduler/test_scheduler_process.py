"""Real `headrace scheduler` processes: a short cron, and two schedulers on one PostgreSQL store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headrace.state import open_store
from headrace.state.store_base import RunState

PIPELINE = textwrap.dedent(
    """
    import os
    from datetime import datetime, timedelta
    from pathlib import Path
    from headrace import pipeline, task, Context

    OUT = Path(os.environ["SCHED_OUT"])
    START = datetime.fromisoformat(os.environ["SCHED_START"])
    END = datetime.fromisoformat(os.environ["SCHED_END"]) if os.environ.get("SCHED_END") else None

    @task
    def tick(ctx: Context) -> str:
        OUT.mkdir(exist_ok=True)
        stamp = ctx.logical_date.strftime("%H%M%S")
        (OUT / f"{stamp}_{os.getpid()}_{ctx.run_id}").touch()
        return stamp

    @pipeline(schedule="* * * * * */2", start_date=START, end_date=END, catchup=True,
              max_active_runs=2)
    def every_two_seconds():
        tick()
    """
)

CLI = [sys.executable, "-c", "from headrace.cli import main; main()", "scheduler"]


def _even_second(moment: datetime) -> datetime:
    moment = moment.replace(microsecond=0)
    return moment - timedelta(seconds=moment.second % 2)


def _env(
    tmp_path: Path, state_url: str, start: datetime, end: datetime | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "HEADRACE_STATE_URL": state_url,
        "HEADRACE_HOME": str(tmp_path / ".headrace"),
        "SCHED_OUT": str(tmp_path / "out"),
        "SCHED_START": start.isoformat(),
    }
    if end is not None:
        env["SCHED_END"] = end.isoformat()
    return env


def _wait_for(store, count: int, timeout: float = 90.0) -> list:
    deadline = time.monotonic() + timeout
    runs: list = []
    while time.monotonic() < deadline:
        runs = [
            r
            for r in store.list_runs("every_two_seconds", limit=100)
            if r.state == RunState.SUCCESS
        ]
        if len(runs) >= count:
            return runs
        time.sleep(0.2)
    return runs


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out


def test_scheduler_process_triggers_runs_from_a_short_cron(tmp_path: Path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    start = _even_second(datetime.now(UTC))
    file = tmp_path / "every_two.py"
    file.write_text(PIPELINE)
    proc = subprocess.Popen(
        [*CLI, str(file), "--poll", "0.3"],
        env=_env(tmp_path, state_url, start),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with open_store(state_url) as store:
            runs = _wait_for(store, 3)
            out = _stop(proc)
            assert proc.returncode == 0, out
            assert len(runs) >= 3, out
            all_runs = store.list_runs("every_two_seconds", limit=100)
    finally:
        if proc.poll() is None:
            proc.kill()
    dates = sorted(r.logical_date for r in all_runs)
    assert dates[0] == start  # the first interval after start_date
    assert all(
        b - a == timedelta(seconds=2) for a, b in zip(dates, dates[1:], strict=False)
    )  # no gap, no repeat
    assert {r.trigger for r in all_runs} == {"scheduled"}
    assert all(
        r.data_interval_end - r.data_interval_start == timedelta(seconds=2) for r in all_runs
    )
    done = [r for r in all_runs if r.state == RunState.SUCCESS]
    markers = Counter(p.name.split("_")[0] for p in (tmp_path / "out").iterdir())
    assert all(markers[r.logical_date.strftime("%H%M%S")] == 1 for r in done)
    # each run was driven by its own worker process, not by the scheduler
    assert all(r.pid not in (None, proc.pid) for r in done)
    assert "started every_two_seconds" in out


def test_two_schedulers_on_one_postgres_store_never_run_an_interval_twice(
    tmp_path: Path, pg_schema
):
    url, schema = pg_schema
    state_url = f"{url}?options=-csearch_path%3D{schema}"
    start = _even_second(datetime.now(UTC)) - timedelta(seconds=12)
    end = start + timedelta(seconds=10)  # six intervals, all due within two seconds
    file = tmp_path / "every_two.py"
    file.write_text(PIPELINE)
    env = _env(tmp_path, state_url, start, end)
    argv = [*CLI, str(file), "--poll", "0.1", "--inline", "--executor", "inprocess"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        with open_store(state_url) as store:
            runs = _wait_for(store, 6)
            time.sleep(1.0)  # give a wrongly duplicating scheduler the chance to do it
            outputs = [_stop(p) for p in procs]
            all_runs = store.list_runs("every_two_seconds", limit=100)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert len(runs) == 6, outputs
    assert sorted(r.logical_date for r in all_runs) == [
        start + timedelta(seconds=2 * i) for i in range(6)
    ]
    markers = Counter(p.name.split("_")[0] for p in (tmp_path / "out").iterdir())
    assert sorted(markers.values()) == [1] * 6, markers  # every interval executed exactly once
    assert all(p.returncode == 0 for p in procs), outputs
