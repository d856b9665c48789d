"""``headrace checks RUN_ID`` on a real SQLite state store filled through the store API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from headrace.cli import run_app
from headrace.quality import apply_checks, matches_regex, not_null, row_count_between, unique
from headrace.state import open_store


@pytest.fixture
def stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("HEADRACE_STATE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    table = pa.table(
        {
            "customer_id": pa.array([1, 2, 2, None], pa.int64()),
            "email": ["a@x.io", "bad [red]", "b@x.io", "c@x.io"],
        }
    )
    outcome = apply_checks(
        table,
        [
            not_null("customer_id"),
            unique("customer_id", severity="warn"),
            matches_regex("email", "@", severity="quarantine"),
            row_count_between(max=100),
        ],
        pipeline="crm",
        task="validate",
    )
    store = open_store(url)
    try:
        day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        run, _ = store.create_run("crm", day, day, day + dt.timedelta(days=1))
        store.record_check_results(outcome.records(run.run_id))
    finally:
        store.close()
    return run.run_id


def test_checks_table(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["checks", stored_run]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "1/4" in lines["not_null(customer_id)"] and "25.00%" in lines["not_null(customer_id)"]
    assert "warn" in lines["unique(customer_id)"] and "2/4" in lines["unique(customer_id)"]
    assert (
        "quarantine" in lines["matches_regex(email)"] and "failed" in lines["matches_regex(email)"]
    )
    assert "passed" in lines["row_count_between"] and "0/1" in lines["row_count_between"]
    assert "1 passed, 3 failed (1 with severity fail)" in out
    assert "_hr_row" not in out  # samples only on request


def test_checks_samples_and_filters(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["checks", stored_run, "--samples", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "row_count_between" not in out
    assert '{"_hr_row": 1, "customer_id": 2, "email": "bad [red]"}' in out  # markup-like text kept
    assert "validate / matches_regex(email): email does not match @" in out
    assert run_app(["checks", stored_run, "--task", "other"]) == 0
    assert "no check results for task 'other'" in capsys.readouterr().out


def test_unknown_run(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["checks", "no-such-run"]) == 3  # not found
    assert "no-such-run" in capsys.readouterr().err
