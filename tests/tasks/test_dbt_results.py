"""dbt test results reach ``headrace checks`` and the logs carry no ANSI colour codes.

``fake_dbt/dbt`` stands in for the dbt executable: it prints dbt's console output with
its colours and writes dbt's real ``target/run_results.json`` and ``manifest.json``.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace import pipeline
from headrace.cli import run_app
from headrace.engine import Runner
from headrace.state.store_base import RunState, TaskState
from headrace.tasks import dbt_task

FAKE_DBT = Path(__file__).parent / "fake_dbt" / "dbt"
DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # This interpreter runs the stand-in, whatever python3 is on PATH.
    body = FAKE_DBT.read_text().split("\n", 1)[1]
    (bindir / "dbt").write_text(f"#!{sys.executable}\n{body}")
    (bindir / "dbt").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "shop"
    folder.mkdir()
    return folder


def _tests(project: Path, *tests: dict) -> None:
    (project / "tests.json").write_text(json.dumps(list(tests)))


def _pipeline(project: Path):
    @pipeline(name="dbt_checks")
    def dbt_checks():
        dbt_task("test --select customers", task_id="run_dbt_tests", project_dir=project)()

    return dbt_checks


def test_passing_and_warning_tests_are_recorded_as_check_results(
    project: Path, store, settings
) -> None:
    _tests(
        project,
        {"name": "not_null_customers_customer_id", "model": "customers", "column": "customer_id"},
        {
            "name": "accepted_values_customers_state",
            "model": "customers",
            "column": "state",
            "failures": 3,
            "severity": "warn",
        },
    )
    result = Runner(store, executor="inprocess", settings=settings).run(_pipeline(project), DAY)

    assert result.state == RunState.SUCCESS
    checks = {c.expectation: c for c in store.get_check_results(result.run_id)}
    assert set(checks) == {
        "dbt not_null_customers_customer_id",
        "dbt accepted_values_customers_state",
    }
    assert checks["dbt not_null_customers_customer_id"].status == "passed"
    assert checks["dbt not_null_customers_customer_id"].column == "customer_id"
    warned = checks["dbt accepted_values_customers_state"]
    assert (warned.status, warned.severity, warned.failed) == ("failed", "warn", 3)
    assert "Done. PASS=1 WARN=1" in result.result_of("run_dbt_tests")
    logs = "\n".join(r.text for r in store.get_logs(result.run_id))
    assert "\x1b" not in logs and "[PASS in 0.03s]" in logs


def test_failing_tests_fail_the_task_once_and_show_in_headrace_checks(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _tests(
        project,
        {"name": "unique_customers_email", "model": "customers", "column": "email", "failures": 2},
        {"name": "not_null_customers_email", "model": "customers", "column": "email"},
    )
    (tmp_path / "flows.py").write_text(
        "from headrace import pipeline\nfrom headrace.tasks import dbt_task\n\n"
        "@pipeline(defaults={'retries': 2})\ndef dbt_flow():\n"
        f"    dbt_task('test', task_id='run_dbt_tests', project_dir={str(project)!r})()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "250")

    assert run_app(["run", "flows.py", "--date", "2024-01-02", "--executor", "inprocess"]) == 1
    from headrace.state import open_store

    with open_store(f"sqlite:///{tmp_path / 'home' / 'state.db'}") as store:
        run = store.list_runs("dbt_flow")[0]
        ti = store.get_task_instances(run.run_id)[0]
    assert ti.state == TaskState.FAILED and ti.attempt == 1  # a data failure is not retried
    assert (
        ti.error_kind == "DbtTestsFailed"
        and "unique_customers_email" in (ti.error or "")
        and "\x1b" not in (ti.error or "")
    )
    capsys.readouterr()

    assert run_app(["checks", run.run_id]) == 0
    out = capsys.readouterr().out
    assert "dbt unique_customers_email" in out and "dbt not_null_customers_email" in out
    assert "1 passed, 1 failed" in out
