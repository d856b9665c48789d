"""``backfill`` and ``scheduler`` stop at the first configuration error, with one message."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import open_store

PIPELINE = textwrap.dedent("""
    from datetime import datetime
    from headrace import Context, Retry, pipeline, task

    @task(retries=Retry(attempts=3))
    def extract(ctx: Context) -> int:
        ctx.connection("crm")  # not configured: a ConfigError in every interval
        return 1

    @pipeline(schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False)
    def needs_crm():
        extract()
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEADRACE_STATE_URL", raising=False)
    monkeypatch.delenv("HEADRACE_CONN_CRM", raising=False)
    (tmp_path / "flows.py").write_text(PIPELINE)
    return tmp_path


def test_backfill_stops_at_the_first_configuration_error(home: Path, capsys) -> None:
    code = run_app(
        [
            "backfill",
            "flows.py",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-10",
            "--executor",
            "inprocess",
        ]
    )
    err = capsys.readouterr().err
    assert code == 4, err
    message = " ".join(err.split())
    assert message.count("error:") == 1
    assert "stopped at a configuration error" in message
    assert "connection crm: unknown connection; set HEADRACE_CONN_CRM=<url>" in message
    assert "9 interval(s) not started" in message
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        runs = store.list_runs()
    assert [r.logical_date.date() for r in runs] == [
        datetime(2024, 1, 1).date()
    ]  # one run, not ten


def test_scheduler_stops_at_the_first_configuration_error(home: Path, capsys) -> None:
    code = run_app(["scheduler", "flows.py", "--once", "--inline", "--executor", "inprocess"])
    out, err = capsys.readouterr()
    assert code == 4, out + err
    message = " ".join(err.split())
    assert "scheduler stopped at a configuration error" in message
    assert "pipeline needs_crm" in message and "connection crm: unknown connection" in message
