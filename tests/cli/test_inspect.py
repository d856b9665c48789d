"""``headrace runs``, ``show`` and ``logs`` against a real SQLite store filled through the store API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.cli.inspect_commands import one_line
from headrace.state import CheckResultRecord, RunState, SqlStateStore, TaskState, open_store

DAY = datetime(2024, 3, 1, tzinfo=UTC)
T0 = datetime(2024, 3, 2, 1, 0, tzinfo=UTC)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "pipelines/etl.py", line 41, in load\n'
    "    warehouse.merge(rows)\n"
    "ConnectionError: warehouse 10.0.0.1:5432 refused the connection"
)


@dataclass
class Cli:
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        """Run the CLI; returns (exit code, stdout, stderr with its line wrapping undone)."""
        self.capsys.readouterr()
        code = run_app(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, " ".join(err.split())


@pytest.fixture
def state_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI at a SQLite store in a fresh folder (not created yet)."""
    path = tmp_path / "home" / "state.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def store(state_db: Path) -> SqlStateStore:
    """A store with a failed customer_etl run, a successful one and a queued 'other' run."""
    opened = open_store(f"sqlite:///{state_db}")
    failed, _ = opened.create_run("customer_etl", DAY, DAY, DAY + timedelta(days=1), {"limit": 5})
    opened.ensure_task_instances(
        failed.run_id, [("extract", -1), ("clean", -1), ("load", -1), ("fan", 0), ("fan", 1)]
    )
    opened.update_run(
        failed.run_id, state=RunState.FAILED, started_at=T0, ended_at=T0 + timedelta(seconds=75)
    )
    opened.update_task_instances(
        [
            (failed.run_id, "extract", -1, {"state": TaskState.SUCCESS, "attempt": 1,
             "started_at": T0, "ended_at": T0 + timedelta(seconds=2.5), "rows": 1200}),
            (failed.run_id, "clean", -1, {"state": TaskState.SUCCESS, "attempt": 1,
             "started_at": T0 + timedelta(seconds=3), "ended_at": T0 + timedelta(seconds=4),
             "rows": 1190}),
            (failed.run_id, "load", -1, {"state": TaskState.FAILED, "attempt": 3,
             "started_at": T0 + timedelta(seconds=5), "ended_at": T0 + timedelta(seconds=75),
             "error": TRACEBACK}),
            (failed.run_id, "fan", 1, {"state": TaskState.UP_FOR_RETRY, "attempt": 1,
             "next_try_at": T0 + timedelta(minutes=5)}),
        ]
    )  # fmt: skip
    for attempt in (1, 2, 3):
        opened.append_log(failed.run_id, "load", -1, attempt, f"connecting, attempt {attempt}")
        opened.append_log(failed.run_id, "load", -1, attempt, f"refused {attempt}")
    opened.append_log(failed.run_id, "extract", -1, 1, "read 1200 rows")
    opened.append_log(failed.run_id, "fan", 1, 1, "element one")
    opened.record_check_results(
        [
            CheckResultRecord(
                failed.run_id, "clean", "not_null", "fail", "passed", 1190, 0, "customer_id"
            ),
            CheckResultRecord(
                failed.run_id, "clean", "regex", "quarantine", "failed", 1190, 7, "email"
            ),
        ]
    )
    ok, _ = opened.create_run("customer_etl", DAY - timedelta(days=1), DAY - timedelta(days=1), DAY)
    opened.update_run(
        ok.run_id, state=RunState.SUCCESS, started_at=T0, ended_at=T0 + timedelta(seconds=9)
    )
    opened.create_run("other", DAY + timedelta(days=3), DAY, DAY)
    opened.close()
    return opened


def run_ids(store: SqlStateStore, pipeline: str) -> list[str]:
    with open_store(store.url) as again:
        return [r.run_id for r in again.list_runs(pipeline=pipeline)]


# ---------------------------------------------------------------- runs


def test_runs_on_a_missing_store_says_so_and_creates_nothing(cli: Cli, state_db: Path) -> None:
    code, out, _ = cli("runs")
    assert code == 0 and "No runs yet." in out
    assert not state_db.exists()


def test_runs_lists_newest_first_with_state_and_duration(cli: Cli, store: SqlStateStore) -> None:
    failed_id, ok_id = run_ids(store, "customer_etl")
    code, out, _ = cli("runs")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()[:2] == "01"]
    assert [line.split()[1:4] for line in lines] == [
        ["other", "2024-03-04", "queued"],
        ["customer_etl", "2024-03-01", "failed"],
        ["customer_etl", "2024-02-29", "success"],
    ]
    assert failed_id in lines[1] and "2024-03-02 01:00:00" in lines[1] and "1m15s" in lines[1]
    assert ok_id in lines[2] and "9.00s" in lines[2]


def test_runs_filters_by_pipeline_state_and_limit(cli: Cli, store: SqlStateStore) -> None:
    failed_id, ok_id = run_ids(store, "customer_etl")
    _, out, _ = cli("runs", "--pipeline", "customer_etl")
    assert failed_id in out and ok_id in out and "other" not in out
    _, out, _ = cli("runs", "--state", "failed")
    assert failed_id in out and ok_id not in out and "Runs (1" in out
    _, out, _ = cli("runs", "-s", "failed,success", "-s", "queued", "-n", "2")
    assert "Runs (2" in out and ok_id not in out  # the oldest falls off the limit
    _, out, _ = cli("runs", "-p", "other", "-s", "failed")
    assert "No runs match." in out


def test_runs_rejects_unknown_state_and_pipeline_with_suggestions(
    cli: Cli, store: SqlStateStore
) -> None:
    code, _, err = cli("runs", "--state", "runing")
    assert code == 2 and "Unknown run state 'runing'" in err and "Did you mean 'running'?" in err
    code, _, err = cli("runs", "--pipeline", "customer_et")
    assert code == 3 and "pipeline 'customer_et': no runs in the state store" in err
    assert "Did you mean 'customer_etl'?" in err


# ---------------------------------------------------------------- show


def test_show_prints_header_tasks_checks_and_one_line_errors(
    cli: Cli, store: SqlStateStore
) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    code, out, _ = cli("show", failed_id)
    assert code == 0
    assert f"Run            {failed_id}" in out
    assert "customer_etl" in out and "2024-03-01 (UTC)" in out and "limit=5" in out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(" ") and line.strip()
    }
    assert rows["extract"][1:3] == ["success", "1"] and rows["extract"][-2:] == ["2.50s", "1,200"]
    assert rows["load"][1:3] == ["failed", "3"] and "1m10s" in rows["load"]
    assert rows["fan[0]"][1:3] == ["queued", "0"]
    assert rows["fan[1]"][1] == "up_for_retry" and "01:05:00" in rows["fan[1]"][-1]
    # The error is its last line only: no traceback in the overview.
    assert "load: ConnectionError: warehouse 10.0.0.1:5432 refused the connection" in out
    assert "Traceback" not in out and "line 41" not in out
    assert f"headrace show {failed_id} --verbose" in out
    check_lines = [line for line in out.splitlines() if "quarantine" in line]
    assert check_lines and "email" in check_lines[0] and "7 / 1,190" in check_lines[0]


def test_show_verbose_prints_the_full_error(cli: Cli, store: SqlStateStore) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    code, out, _ = cli("show", failed_id, "--verbose")
    assert code == 0
    assert "load: error (attempt 3)" in out
    assert TRACEBACK in out


def test_show_accepts_a_unique_prefix_and_suggests_on_typos(cli: Cli, store: SqlStateStore) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    all_ids = run_ids(store, "customer_etl") + run_ids(store, "other")
    # The shortest prefix that names only this run.
    prefix = next(
        failed_id[:n] for n in range(11, 19)
        if sum(i.startswith(failed_id[:n]) for i in all_ids) == 1
    )  # fmt: skip
    code, out, _ = cli("show", prefix)
    assert code == 0 and failed_id in out
    code, _, err = cli("show", failed_id + "x")
    assert (
        code == 3
        and f"Unknown run id '{failed_id}x'" in err
        and f"Did you mean '{failed_id}'?" in err
    )
    code, _, err = cli("show", "01")
    assert code == 1 and "is ambiguous" in err


def test_show_on_a_missing_store_is_a_clear_error(cli: Cli, state_db: Path) -> None:
    code, _, err = cli("show", "01abc")
    assert code == 3 and "Unknown run id '01abc'" in err and "no runs yet" in err


# ---------------------------------------------------------------- logs


def test_logs_prints_every_attempt_in_order(cli: Cli, store: SqlStateStore) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    code, out, _ = cli("logs", failed_id)
    assert code == 0
    text = [line for line in out.splitlines() if line.strip()]
    expected = []
    for attempt in (1, 2, 3):
        expected += [
            f"load · attempt {attempt}",
            f"connecting, attempt {attempt}",
            f"refused {attempt}",
        ]
    expected += ["extract · attempt 1", "read 1200 rows", "fan[1] · attempt 1", "element one"]
    assert [line.rstrip("─ ").strip() for line in text] == expected


def test_logs_filters_by_task_mapped_index_and_attempt(cli: Cli, store: SqlStateStore) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    _, out, _ = cli("logs", failed_id, "load", "--attempt", "2")
    assert "connecting, attempt 2" in out and "refused 2" in out
    assert "attempt 1" not in out and "attempt 3" not in out and "read 1200" not in out
    _, out, _ = cli("logs", failed_id, "fan[1]")
    assert "element one" in out and "load" not in out
    _, out, _ = cli("logs", failed_id, "fan[0]")
    assert "No logs match." in out


def test_logs_for_an_unknown_task_suggests_the_closest(cli: Cli, store: SqlStateStore) -> None:
    failed_id = run_ids(store, "customer_etl")[0]
    code, _, err = cli("logs", failed_id, "lod")
    assert (
        code == 3
        and "task 'lod'" in err
        and "has no such task" in err
        and "Did you mean 'load'?" in err
    )


# ---------------------------------------------------------------- formatting


def test_one_line_keeps_the_message_line_and_cuts_it() -> None:
    assert one_line(TRACEBACK) == "ConnectionError: warehouse 10.0.0.1:5432 refused the connection"
    assert one_line("x" * 50, width=10) == "x" * 9 + "…"
    assert one_line(None) == "" and one_line("\n \n") == ""


def test_runs_and_show_on_a_postgres_store(
    cli: Cli, pg_schema: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import quote

    pg_url, schema = pg_schema
    url = f"{pg_url}?options={quote(f'-csearch_path={schema}')}"
    monkeypatch.setenv("HEADRACE_STATE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    with open_store(url) as pg_store:
        run, _ = pg_store.create_run("pg_pipeline", DAY, DAY, DAY + timedelta(days=1))
        pg_store.ensure_task_instances(run.run_id, [("only", -1)])
        pg_store.update_task_instance(
            run.run_id, "only", state=TaskState.SUCCESS, attempt=1, rows=3
        )
    code, out, _ = cli("runs")
    assert code == 0 and run.run_id in out and "pg_pipeline" in out
    code, out, _ = cli("show", run.run_id)
    assert code == 0 and "only" in out and "success" in out
